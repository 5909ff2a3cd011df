"""`cvops project copy` between two local Custom Vision services (two "resources"): ExportProject / ImportProject, then
the counts compared; an import that loses images (the local service's --import-drop-images fault) is named, and
--fallback completes the copy by backup + restore."""

from __future__ import annotations

import pytest
from backup_helpers import NoAzurite, run_cvops, seed_project
from flow_helpers import settings_env, unique

from cvops import clients

pytestmark = [pytest.mark.emulator]


def _copy(source, target, project_id: str, *extra: str):
    env = {**settings_env(source, NoAzurite()), "CVOPS_TARGET_TRAINING_ENDPOINT": target.endpoint,
           "CVOPS_TARGET_TRAINING_KEY": target.training_key}
    return run_cvops(env, "project", "copy", "--project", project_id, *extra)


def test_a_copy_whose_import_succeeds_has_the_sources_counts(local_cv, start_local_cv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seeded = seed_project(local_cv, unique("copy"), classification_type="Multilabel", per_class=3, per_combo=1,
                          untagged=4)
    target = start_local_cv()
    result, doc = _copy(local_cv, target, seeded.project_id, "--name", "copied")
    assert result.exit_code == 0, result.stderr
    assert doc["import_status"] == "Succeeded" and doc["mismatches"] == [] and doc["fallback"] is None
    assert (doc["found"]["tagged"], doc["found"]["untagged"]) == (seeded.tagged, seeded.untagged)
    client = clients.training_client(target.endpoint, target.training_key)
    assert {t.name: t.image_count for t in client.get_tags(doc["target_project_id"])} == seeded.per_tag
    assert target.training_key not in result.output


def test_an_import_that_loses_images_is_named_and_fallback_completes_it(local_cv, start_local_cv, tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    seeded = seed_project(local_cv, unique("lossy"), classification_type="Multiclass", per_class=3, untagged=4)
    lossy = start_local_cv(extra_args=["--import-drop-images", "5"])
    result, doc = _copy(local_cv, lossy, seeded.project_id)
    assert result.exit_code == 1
    assert doc["import_status"] == "Succeeded"  # the service says nothing is wrong
    assert "untagged images: the source has 4, the copy 0" in result.stderr
    assert "tagged images: the source has 12, the copy 11" in result.stderr
    assert "run again with --fallback DIR" in result.stderr

    other = start_local_cv(extra_args=["--import-drop-images", "5"])
    result, doc = _copy(local_cv, other, seeded.project_id, "--fallback", str(tmp_path / "fb"))
    assert result.exit_code == 0, result.stderr
    assert doc["mismatches"] == [] and doc["fallback"]["upload"]["created"] == 5
    assert doc["fallback"]["upload"]["duplicates"] == 11  # what the import did bring is not doubled
    client = clients.training_client(other.endpoint, other.training_key)
    assert client.get_image_count(doc["target_project_id"], tagging_status="All") == 16
