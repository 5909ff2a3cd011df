"""`cvops dataset export --format automl`: a project backup (from the local Custom Vision service) as Azure ML AutoML
for images' JSON Lines and MLTable. Every line validates against the schema written from Microsoft's "Data schemas to
train computer vision models with automated ML" page (tests/pipelines/schemas/, with its source), for Multiclass and
Multilabel; what AutoML refuses is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from backup_helpers import NoAzurite, run_cvops, seed_project
from flow_helpers import settings_env, unique

from cvops import clients
from pipelines import automl_dataset as ad

pytestmark = [pytest.mark.emulator]
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "automl_image_classification.schema.json").read_text())


def _validator(task: str) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/{task}"})


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _backup(local_cv, tmp_path, name: str, **kwargs) -> tuple[object, dict[str, str]]:
    seeded = seed_project(local_cv, unique(name), **kwargs)
    env = settings_env(local_cv, NoAzurite())
    result, _ = run_cvops(env, "project", "backup", "--project", seeded.project_id, "--out", str(tmp_path / "b"))
    assert result.exit_code == 0, result.stderr
    return seeded, env


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_the_json_lines_validate_against_microsofts_schema_and_the_mltable_reads_them(local_cv, tmp_path, task):
    multilabel = task == "multilabel"
    seeded, env = _backup(local_cv, tmp_path, f"automl-{task}", classification_type=task.capitalize(), per_class=4,
                          per_combo=2 if multilabel else 0, untagged=4)
    result, doc = run_cvops(env, "dataset", "export", "--format", "automl", "--from", str(tmp_path / "b"),
                            "--out", str(tmp_path / "out"), "--datastore", "workspaceblobstore")
    assert result.exit_code == 0, result.stderr
    assert doc["task"] == ("image_classification_multilabel" if multilabel else "image_classification")
    assert (doc["images"], doc["untagged_left_out"]) == (seeded.tagged, seeded.untagged)
    rows = _lines(tmp_path / "out" / "train" / "train.jsonl")
    validator = _validator(task)
    for row in rows:
        validator.validate(row)
    assert len(rows) == seeded.tagged
    other = _validator("multiclass" if multilabel else "multilabel")  # the schema tells the two apart
    assert not any(other.is_valid(r) for r in rows)
    labels = [tuple(r["label"]) if multilabel else (r["label"],) for r in rows]
    assert {t: sum(t in lab for lab in labels) for t in seeded.per_tag} == seeded.per_tag
    if multilabel:
        assert sum(len(lab) > 1 for lab in labels) == 12  # 6 pairs x 2
    # Every URL names a file of the backup under the prefix (the backup folder's name) in the datastore.
    for r in rows:
        path = r["image_url"].removeprefix("azureml://datastores/workspaceblobstore/paths/b/")
        assert (tmp_path / "b" / path).is_file()
        assert r["image_details"] == {"format": "jpg", "width": "160px", "height": "120px"}
    mltable = yaml.safe_load((tmp_path / "out" / "train" / "MLTable").read_text())
    assert mltable == {"paths": [{"file": "./train.jsonl"}], "transformations": [
        {"read_json_lines": {"encoding": "utf8", "invalid_lines": "error", "include_path_column": False}},
        {"convert_column_types": [{"columns": "image_url", "column_type": "stream_info"}]}]}


def test_a_validation_split_keeps_every_tag_on_both_sides_and_is_the_same_on_a_rerun(local_cv, tmp_path):
    _, env = _backup(local_cv, tmp_path, "automl-split", classification_type="Multiclass", per_class=8)
    args = ["dataset", "export", "--format", "automl", "--from", str(tmp_path / "b"), "--out", str(tmp_path / "o"),
            "--datastore", "ds", "--prefix", "backups/scenes", "--validation-fraction", "0.25"]
    result, _ = run_cvops(env, *args)
    assert result.exit_code == 0, result.stderr
    train = _lines(tmp_path / "o" / "train" / "train.jsonl")
    validation = _lines(tmp_path / "o" / "validation" / "validation.jsonl")
    assert (len(train), len(validation)) == (24, 8)
    assert {r["label"] for r in validation} == {r["label"] for r in train} == {"beach", "forest", "mountain", "city"}
    assert not {r["image_url"] for r in train} & {r["image_url"] for r in validation}
    assert all(r["image_url"].startswith("azureml://datastores/ds/paths/backups/scenes/images/") for r in train)
    assert "./validation.jsonl" in (tmp_path / "o" / "validation" / "MLTable").read_text()
    before = (tmp_path / "o" / "validation" / "validation.jsonl").read_bytes()
    assert run_cvops(env, *args)[0].exit_code == 0
    assert (tmp_path / "o" / "validation" / "validation.jsonl").read_bytes() == before


def test_what_automl_refuses_is_refused_before_anything_is_written(local_cv, tmp_path):
    seeded, env = _backup(local_cv, tmp_path, "automl-refused", classification_type="Multiclass", per_class=2)
    client = clients.training_client(local_cv.endpoint, local_cv.training_key)
    client.create_tag(seeded.project_id, "desert")  # a tag with no image
    assert run_cvops(env, "project", "backup", "--project", seeded.project_id, "--out", str(tmp_path / "b"))[0].exit_code == 0
    result, _ = run_cvops(env, "dataset", "export", "--format", "automl", "--from", str(tmp_path / "b"),
                          "--out", str(tmp_path / "out"), "--datastore", "ds")
    assert result.exit_code != 0
    assert "8 labelled images; AutoML for images needs at least 10" in result.stderr
    assert "tag(s) with no image: 'desert'" in result.stderr
    assert not any((tmp_path / "out").rglob("*")), "something was written"


def test_a_gif_is_refused_naming_the_image():
    images = [ad.Labelled(f"images/{i}.jpg", str(i), ("a",), "JPEG", 10, 10) for i in range(10)]
    images.append(ad.Labelled("images/x.gif", "x", ("a",), "GIF", 10, 10))
    assert ad.problems(images, ["a"]) == [
        "1 image(s) in a format AutoML does not read (it reads JPEG, PNG, BMP, TIFF): images/x.gif (GIF)"]
    assert ad.problems(images[:10], ["a"]) == []
