"""The demo's transition stage, small: a trained project on a real local service and Azurite is backed up, restored as
a second project, trained again and evaluated on the same holdout (accuracy within 0.02 of the original's), and the
backup is written as AutoML JSON Lines + MLTable. Every step is the `cvops` child process the demo runs."""

from __future__ import annotations

import json
import os
import uuid

import yaml
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

from devkit import scenes
from devkit.demo import CLASSES, SCENES_SPEC, Demo, DemoSize
from devkit.demo_transition import RESTORED_SUFFIX, holdout_accuracy, print_transition, run_transition


def test_holdout_accuracy_reads_the_evaluations_holdout_and_none_without_one():
    assert holdout_accuracy({"holdout": {"accuracy": 0.875}}) == 0.875
    assert holdout_accuracy({"holdout": None, "service": {}}) is None


def test_transition_stage_restores_a_second_project_with_the_same_holdout_accuracy_and_writes_automl(
        tmp_path, azurite, blob_service, start_local_cv, capsys):
    cv = start_local_cv()
    run_id = uuid.uuid4().hex[:8]
    name = f"scenes-{run_id}"
    spec_doc = yaml.safe_load(SCENES_SPEC.read_text())
    spec_doc["project"]["name"] = spec_doc["publish"]["name"] = name
    spec_doc["data"] = {"training": {"container": f"tr-{run_id}", "prefix": "scenes/"},
                        "holdout": {"container": f"ho-{run_id}", "prefix": "scenes/"}}
    spec = tmp_path / "project.yaml"
    spec.write_text(yaml.safe_dump(spec_doc))
    for container, per_class, seed in ((f"tr-{run_id}", 8, 11), (f"ho-{run_id}", 4, 12)):
        client = blob_service.create_container(container)
        for item in scenes.dataset(CLASSES, per_class, seed):
            client.upload_blob(f"scenes/{item.labels[0]}/{item.name}", item.data)
    env = {**os.environ, "CVOPS_SPEC": "", "CVOPS_PROJECT": "", "NO_COLOR": "1",
           "VISION_TRAINING_ENDPOINT": cv.endpoint, "VISION_TRAINING_KEY": cv.training_key,
           "VISION_PREDICTION_ENDPOINT": cv.endpoint, "VISION_PREDICTION_KEY": cv.prediction_key,
           "VISION_PREDICTION_RESOURCE_ID": cv.prediction_resource_id,
           "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    demo = Demo(root=tmp_path, size=DemoSize(), env=env)
    demo.cvops("project apply", "project", "apply", str(spec))
    demo.cvops("images upload", "images", "upload", "--spec", str(spec))
    demo.cvops("train", "train", "--wait", "--spec", str(spec))

    summary = run_transition(demo.cvops, tmp_path, spec, name)

    assert summary["images"] == summary["restored_images"] == 8 * len(CLASSES)
    original, restored = summary["accuracy"]["original"], summary["accuracy"]["restored"]
    assert summary["holdout_images"] == 4 * len(CLASSES)
    assert original is not None and restored is not None and abs(original - restored) <= 0.02
    training = CustomVisionTrainingClient(cv.endpoint, ApiKeyCredentials(in_headers={"Training-key": cv.training_key}))
    projects = {p.name: p for p in training.get_projects()}
    copy = projects[name + RESTORED_SUFFIX]
    assert {t.name: t.image_count for t in training.get_tags(copy.id)} == {tag: 8 for tag in CLASSES}
    assert any(i.status == "Completed" for i in training.get_iterations(copy.id))
    out = tmp_path / "automl" / name
    lines = [json.loads(line) for part in ("train", "validation")
             for line in (out / part / f"{part}.jsonl").read_text().splitlines()]
    assert len(lines) == 8 * len(CLASSES) and {line["label"] for line in lines} == set(CLASSES)
    assert all(line["image_url"].startswith("azureml://datastores/workspaceblobstore/paths/") for line in lines)
    assert (out / "train" / "MLTable").is_file()
    print_transition(summary)
    shown = capsys.readouterr().out
    assert f"original {original:.3f}, restored {restored:.3f}" in shown
