"""`cvops project backup --out az://container/prefix` and `cvops project restore --from az://...` on Azurite and the
local Custom Vision service: the same layout in Blob Storage, resumed by the blobs' recorded SHA-256, and restored by
the service pulling each image by SAS URL (no image byte through this machine)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from backup_helpers import run_cvops, seed_project
from flow_helpers import settings_env, unique

from cvops import clients
from pipelines import backup_folders as bf

pytestmark = [pytest.mark.emulator, pytest.mark.azurite]


def test_backup_to_blob_resumes_by_recorded_hash_and_restores_by_sas_urls(local_cv, start_local_cv, azurite,
                                                                           blob_service, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seeded = seed_project(local_cv, unique("blobbackup"), classification_type="Multilabel", per_class=3, per_combo=1,
                          untagged=4)
    total = seeded.tagged + seeded.untagged
    container = unique("backups")
    out = f"az://{container}/scenes/2026-12-07"
    env = settings_env(local_cv, azurite)
    result, first = run_cvops(env, "project", "backup", "--project", seeded.project_id, "--out", out)
    assert result.exit_code == 0 and first["verified"], result.stderr
    assert (first["downloaded"], first["images"]) == (total, total)
    names = {b.name for b in blob_service.get_container_client(container).list_blobs()}
    assert {"scenes/2026-12-07/project.json", "scenes/2026-12-07/manifest.jsonl"} <= names
    manifest = [json.loads(line) for line in blob_service.get_container_client(container).download_blob(
        "scenes/2026-12-07/manifest.jsonl").readall().decode().splitlines()]
    assert {r["sha256"]: tuple(r["tags"]) for r in manifest} == seeded.sha256

    # A blob overwritten by someone else (no recorded hash) is downloaded again; nothing else is.
    victim = f"scenes/2026-12-07/{manifest[0]['path']}"
    blob_service.get_container_client(container).upload_blob(victim, b"not the image", overwrite=True)
    result, second = run_cvops(env, "project", "backup", "--project", seeded.project_id, "--out", out)
    assert result.exit_code == 0 and second["verified"], result.stderr
    assert (second["downloaded"], second["already_there"]) == (1, total - 1)

    # The AutoML export reads a Blob backup too: URLs under the backup's own prefix, each naming one of its blobs.
    result, automl = run_cvops(env, "dataset", "export", "--format", "automl", "--from", out, "--out",
                               str(tmp_path / "automl"), "--datastore", "ds")
    assert result.exit_code == 0, result.stderr
    schema = json.loads((Path(__file__).parent / "schemas" / "automl_image_classification.schema.json").read_text())
    validator = jsonschema.Draft202012Validator({**schema, "$ref": "#/multilabel"})
    lines = [json.loads(line) for line in (tmp_path / "automl" / "train" / "train.jsonl").read_text().splitlines()]
    assert len(lines) == seeded.tagged and automl["untagged_left_out"] == seeded.untagged
    for line in lines:
        validator.validate(line)
        assert line["image_url"].removeprefix("azureml://datastores/ds/paths/") in names
        assert line["image_details"]["width"] == "160px"

    target = start_local_cv()
    result, restored = run_cvops(settings_env(target, azurite), "project", "restore", "--from", out, "--name", "moved")
    assert result.exit_code == 0, result.stderr
    assert restored["upload"]["mode"] == "urls" and restored["upload"]["image_bytes_sent"] == 0
    assert restored["upload"]["created"] == total and restored["mismatches"] == []
    client = clients.training_client(target.endpoint, target.training_key)
    assert {t.name: t.image_count for t in client.get_tags(restored["project_id"])} == seeded.per_tag


def test_a_restore_from_blob_refuses_an_image_whose_recorded_hash_differs(local_cv, start_local_cv, azurite,
                                                                           blob_service, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seeded = seed_project(local_cv, unique("blobbad"), classification_type="Multiclass", per_class=2)
    container = unique("backups")
    env = settings_env(local_cv, azurite)
    assert run_cvops(env, "project", "backup", "--project", seeded.project_id, "--out", f"az://{container}")[0].exit_code == 0
    blob = next(b.name for b in blob_service.get_container_client(container).list_blobs(name_starts_with=bf.IMAGES))
    blob_service.get_container_client(container).upload_blob(blob, b"x", overwrite=True, metadata={"sha256": "0" * 64})
    target = start_local_cv()
    result, _ = run_cvops(settings_env(target, azurite), "project", "restore", "--from", f"az://{container}")
    assert result.exit_code != 0 and f"{blob}: its SHA-256 or size differs from the manifest" in result.stderr
    assert clients.training_client(target.endpoint, target.training_key).get_projects() == []
