"""Each way the flow can fail ends with one clear line on stderr and the exit code a pipeline can branch on
(1 failed outcome, 2 bad input/settings, 3 service refusal), against the real local service and Azurite."""

from __future__ import annotations

import itertools
import zipfile

import pytest
import yaml
from click.testing import CliRunner
from flow_helpers import World, settings_env, unique, upload_folder_per_tag, write_spec

from devkit import scenes
from pipelines import config
from pipelines.cli import cli
from pipelines.service import Service
from pipelines.training import train


def invoke(env, *args):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("cvops: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# without a service -------------------------------------------------------------------------------------------------
def test_a_missing_setting_is_named_with_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "p.yaml", "p", training={"folder": "imgs"})
    env = {name: "" for name in config.NAMES}
    result = invoke(env, "project", "apply", str(spec))
    assert result.exit_code == 2
    assert "VISION_TRAINING_ENDPOINT is not set" in one_error_line(result)


def test_a_wrong_spec_field_is_named_with_exit_2(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"project": {"name": "p", "classification_type": "Multiclass",
                                                                 "domain": "Generic"}, "tags": [{"name": "a"}]}))
    result = invoke({}, "project", "apply", str(tmp_path / "p.yaml"))
    assert result.exit_code == 2
    assert "p.yaml: project.domain: 'Generic' is not one of" in one_error_line(result)


def test_lint_errors_are_listed_by_path_with_exit_1(tmp_path):
    good = scenes.dataset(["beach"], 5, seed=1, size=(64, 48))
    for item in good:
        (tmp_path / "beach").mkdir(exist_ok=True)
        (tmp_path / "beach" / item.name).write_bytes(item.data)
    (tmp_path / "beach" / "broken.jpg").write_bytes(scenes.truncated_jpeg(1))
    (tmp_path / "beach" / "notes.jpg").write_bytes(scenes.text_file())
    result = invoke({}, "images", "lint", str(tmp_path), "--json")
    assert result.exit_code == 1
    assert "lint errors" in one_error_line(result)
    assert {"beach/broken.jpg", "beach/notes.jpg"} <= {
        f["subject"].replace(str(tmp_path) + "/", "") for f in yaml.safe_load(result.stdout)["findings"]
        if f["severity"] == "error"}


# against the local service ------------------------------------------------------------------------------------------
@pytest.fixture
def world(local_cv, azurite, blob_service, tmp_path, monkeypatch) -> World:
    monkeypatch.chdir(tmp_path)
    name, training = unique("fail"), unique("failtrain")
    spec = write_spec(tmp_path / "p.yaml", name, training={"container": training, "prefix": "s/"})
    return World(settings_env(local_cv, azurite), spec, name, training, "", blob_service)


@pytest.fixture(scope="module")
def chance_project(local_cv, azurite, blob_service, tmp_path_factory):
    """A trained, unpublished project whose folders each hold every class: its metrics are at chance level."""
    tmp = tmp_path_factory.mktemp("chance")
    name, training = unique("chance"), unique("chancetrain")
    client = blob_service.create_container(training)
    items = scenes.dataset(scenes.CLASSES, 6, seed=9, size=(96, 72))
    for item, tag in zip(items, itertools.cycle(scenes.CLASSES), strict=False):
        client.upload_blob(f"s/{tag}/{item.name}", item.data)
    spec = write_spec(tmp / "p.yaml", name, training={"container": training, "prefix": "s/"},
                      gates={"min_map": 0.9})
    w = World(settings_env(local_cv, azurite), spec, name, training, "", blob_service)
    for args in (("project", "apply", str(spec)), ("images", "upload", "--spec", str(spec)),
                 ("train", "--spec", str(spec), "--wait", "--timeout", "120")):
        assert w.run(*args)[0].exit_code == 0
    return w


def test_a_wrong_key_is_a_service_refusal_naming_the_key_with_exit_3(world):
    env = {**world.env, "VISION_TRAINING_KEY": "0" * 32}
    result = invoke(env, "project", "apply", str(world.spec_path))
    assert result.exit_code == 3
    assert "training key" in one_error_line(result).lower()


def test_a_publish_gate_that_fails_refuses_with_the_numbers_and_exit_1(chance_project):
    result, data = chance_project.run("publish", "--spec", str(chance_project.spec_path))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "not publishing Iteration 1: mAP 0." in line and "(minimum 0.900) FAILED" in line
    assert data["outcome"] == "refused"


def test_predicting_with_nothing_published_is_a_service_refusal_with_exit_3(chance_project, tmp_path):
    image = tmp_path / "x.jpg"
    image.write_bytes(scenes.generate("beach", 1, size=(64, 48)))
    result, _ = chance_project.run("predict", "--spec", str(chance_project.spec_path), str(image))
    assert result.exit_code == 3
    assert "NotFoundIteration" in one_error_line(result)


def test_export_to_a_platform_the_local_service_cannot_produce_is_a_service_refusal_with_exit_3(chance_project,
                                                                                               tmp_path):
    # The project is on General (compact): the local service exports it to ONNX only (issue 10); TensorFlow is refused
    # by ExportIteration with what it can produce, and nothing is written.
    result, _ = chance_project.run("export", "--spec", str(chance_project.spec_path), "--platform", "TensorFlow",
                                   "--out", str(tmp_path / "m.zip"))
    assert result.exit_code == 3
    line = one_error_line(result)
    assert "BadRequestNotSupported" in line or "cannot produce TensorFlow" in line
    assert not (tmp_path / "m.zip").exists()
    result, _ = chance_project.run("export", "--spec", str(chance_project.spec_path), "--platform", "ONNX",
                                   "--out", str(tmp_path / "m.zip"))
    assert result.exit_code == 0, result.output
    assert zipfile.ZipFile(tmp_path / "m.zip").namelist() == ["model.onnx", "labels.txt"]


def test_changing_multiclass_to_multilabel_with_images_is_refused_with_the_reason(chance_project, tmp_path):
    data = yaml.safe_load(chance_project.spec_path.read_text())
    data["project"]["classification_type"] = "Multilabel"
    (tmp_path / "ml.yaml").write_text(yaml.safe_dump(data))
    result, _ = chance_project.run("project", "apply", str(tmp_path / "ml.yaml"))
    assert result.exit_code == 2
    assert "the service cannot change it to Multilabel" in one_error_line(result)


def test_training_that_outlives_the_timeout_ends_non_zero_and_says_it_keeps_training(chance_project):
    settings = config.resolve(chance_project.env)
    service = Service(settings)
    project_id = service.project(chance_project.name).id
    ticks = itertools.count(step=1000.0)  # every look at the clock is 1000 s later: the wait times out at once
    result = train(service, project_id, force=True, wait=True, timeout=5, clock=lambda: next(ticks),
                   sleep=lambda s: None)
    assert (result.outcome, result.ok) == ("timeout", False)
    assert "it keeps training" in result.error


def test_too_few_images_per_tag_is_refused_by_the_service_with_what_to_do(world):
    upload_folder_per_tag(world.blob_service, world.training, "s/", 2, seed=3)
    spec = str(world.spec_path)
    assert world.run("project", "apply", spec)[0].exit_code == 0
    assert world.run("images", "upload", "--spec", spec)[0].exit_code == 0
    result, _ = world.run("train", "--spec", spec, "--wait")
    assert result.exit_code == 3
    assert "at least 5 images" in one_error_line(result)


def test_a_folder_named_for_an_unknown_tag_stops_the_upload_before_sending_anything(world):
    upload_folder_per_tag(world.blob_service, world.training, "s/", 1, seed=4, classes=("beach",))
    world.blob_service.get_container_client(world.training).upload_blob(
        "s/lake/1.jpg", scenes.generate("beach", 5, size=(96, 72)))
    spec = str(world.spec_path)
    assert world.run("project", "apply", spec)[0].exit_code == 0
    result, _ = world.run("images", "upload", "--spec", spec)
    assert result.exit_code == 2
    assert "tags the project does not have: 'lake' (1 images)" in one_error_line(result)


def test_refused_images_are_listed_and_only_they_are_sent_again_once_fixed(world, training_client):
    n = upload_folder_per_tag(world.blob_service, world.training, "s/", 5, seed=7)
    container = world.blob_service.get_container_client(world.training)
    container.upload_blob("s/beach/broken.jpg", scenes.truncated_jpeg(2))
    container.upload_blob("s/city/notes.jpg", scenes.text_file())
    spec = str(world.spec_path)
    assert world.run("project", "apply", spec)[0].exit_code == 0

    result, up = world.run("images", "upload", "--spec", spec)
    assert result.exit_code == 1
    assert "2 of 22 images were not uploaded" in one_error_line(result)
    assert {(f["key"], f["status"]) for f in up["failures"]} == {("beach/broken.jpg", "ErrorImageFormat"),
                                                                ("city/notes.jpg", "ErrorImageFormat")}
    assert all(f["path"].startswith(f"az://{world.training}/s/") and f["reason"] for f in up["failures"])
    assert up["created"] == n

    # The operator replaces the two files; the rerun sends exactly those two, nothing else.
    container.upload_blob("s/beach/broken.jpg", scenes.generate("beach", 99, size=(96, 72)), overwrite=True)
    container.upload_blob("s/city/notes.jpg", scenes.generate("city", 98, size=(96, 72)), overwrite=True)
    result, up = world.run("images", "upload", "--spec", spec)
    assert result.exit_code == 0, result.stderr
    assert (up["created"], up["skipped_already_uploaded"], up["failed"]) == (2, n, 0)
    project = next(p for p in training_client.get_projects() if p.name == world.name)
    assert training_client.get_image_count(project.id) == n + 2


def test_apply_changes_a_tag_description_in_place(local_cv, azurite, tmp_path, training_client):
    """A second apply with a changed tag description updates the tag (same id), and a third changes nothing."""
    env = settings_env(local_cv, azurite)
    name = unique("retag")
    spec = write_spec(tmp_path / "p.yaml", name, training={"folder": str(tmp_path)})
    assert invoke(env, "project", "apply", str(spec)).exit_code == 0
    data = yaml.safe_load(spec.read_text())
    data["tags"][1]["description"] = "woods and trees"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))

    result = invoke(env, "project", "apply", str(spec))
    assert result.exit_code == 0, result.stderr
    project = next(p for p in training_client.get_projects() if p.name == name)
    forest = next(t for t in training_client.get_tags(project.id) if t.name == "forest")
    assert forest.description == "woods and trees"
    assert forest.type == "Regular"
    again = invoke(env, "project", "apply", str(spec), "--json")
    assert again.exit_code == 0 and '"update_tag"' not in again.stdout


def test_an_error_line_never_carries_a_sas_signature_or_account_key(capsys):
    """Errors from the SDKs or HTTP can echo a SAS URL or a connection string; the one line on stderr is redacted."""
    import click

    from pipelines.cli import _fail

    with pytest.raises(click.exceptions.Exit):
        _fail(None, "internal error: GET https://fake.blob.core.windows.net/c/m.zip?sv=2024&sig=SECRETSIG failed; "
                    "AccountKey=SECRETKEY==", 70)
    err = capsys.readouterr().err
    assert "SECRETSIG" not in err and "SECRETKEY" not in err
    assert "m.zip" in err


def test_classify_backlog_of_a_container_the_app_does_not_route_is_refused_with_exit_2():
    # The app refuses backlog messages naming any container but its incoming one: queueing them would only fill the
    # results with refusals, so the command says so before listing anything.
    env = {"CVOPS_INCOMING_CONTAINER": "incoming", "AZURE_STORAGE_CONNECTION_STRING":
           "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/a;"}
    result = invoke(env, "classify-backlog", "--container", "archive")
    assert result.exit_code == 2
    assert "--container 'archive' is not the Function App's incoming container 'incoming'" in one_error_line(result)
