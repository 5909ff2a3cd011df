"""Every answer of the local service validates against the official spec's schema for that operation and status.

The official SDK drives a whole project life cycle (and a set of refused calls) against the running service; a
response hook records each raw answer, which is then validated against the spec of the API version it was sent to.
Run for the SDK's own versions (Training v3.4-preview, Prediction v3.1) and for the older v3.3 / v3.0.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageTagCreateEntry,
    ImageUrlCreateBatch,
    ImageUrlCreateEntry,
    PredictionQueryToken,
)
from msrest.authentication import ApiKeyCredentials
from msrest.exceptions import HttpOperationError
from spec_schemas import error_codes, find_operation, validate_response

from devkit import scenes
from emulator.models import load_domains

# The operations the local service implements (the brief's list); each must be seen and valid in every run.
COVERED = {
    "GetDomains", "GetDomain", "GetProjects", "GetProject", "CreateProject", "UpdateProject", "DeleteProject",
    "GetTags", "GetTag", "CreateTag", "UpdateTag", "DeleteTag", "CreateImagesFromData", "CreateImagesFromFiles",
    "CreateImagesFromUrls", "GetTaggedImages", "GetUntaggedImages", "GetImages", "GetImageCount",
    "GetTaggedImageCount", "GetUntaggedImageCount", "GetImagesByIds", "DeleteImages", "CreateImageTags",
    "DeleteImageTags", "TrainProject", "GetIterations", "GetIteration", "UpdateIteration", "DeleteIteration",
    "GetIterationPerformance", "GetImagePerformances", "GetImagePerformanceCount", "QuickTestImage",
    "QuickTestImageUrl", "QueryPredictions", "DeletePrediction", "PublishIteration", "UnpublishIteration",
    "ExportIteration", "GetExports", "ClassifyImage", "ClassifyImageWithNoStore", "ClassifyImageUrl",
    "ClassifyImageUrlWithNoStore",
}

# The 2024 renames of the v3.3 / v3.1 files (e.g. Projects_Create) back to the classic names used above.
RENAMED = {
    "ImageClassifier_ClassifyImage": "ClassifyImage", "ImageClassifier_ClassifyImageWithoutSaving":
    "ClassifyImageWithNoStore", "ImageClassifier_ClassifyImageUrl": "ClassifyImageUrl",
    "ImageClassifier_ClassifyImageUrlWithoutSaving": "ClassifyImageUrlWithNoStore",
}


@dataclass
class Recorded:
    method: str
    path: str
    status: int
    body: object


def recording(client, log: list[Recorded]):
    def hook(response, *args, **kwargs):
        content = response.content
        body = response.json() if content else None
        log.append(Recorded(response.request.method, urlsplit(response.url).path, response.status_code, body))
        return response

    client.config.hooks.append(hook)
    client.config.retry_policy.retries = 0
    return client


def expect_error(call, *args, **kwargs):
    with pytest.raises(HttpOperationError):
        call(*args, **kwargs)


def run_life_cycle(trainer: CustomVisionTrainingClient, predictor: CustomVisionPredictionClient, resource_id: str):
    """Call every covered operation at least once, successful and refused."""
    domains = trainer.get_domains()
    trainer.get_domain(domains[0].id)
    expect_error(trainer.get_domain, "00000000-0000-0000-0000-000000000009")
    project = trainer.create_project(f"contract-{time.monotonic_ns()}", description="contract test")
    trainer.get_projects()
    trainer.get_project(project.id)
    project.description = "changed"
    trainer.update_project(project.id, project)
    beach = trainer.create_tag(project.id, "beach", description="sand")
    forest = trainer.create_tag(project.id, "forest")
    spare = trainer.create_tag(project.id, "spare")
    expect_error(trainer.create_tag, project.id, "beach")
    spare.description = "unused"
    trainer.update_tag(project.id, spare.id, spare)
    trainer.get_tag(project.id, spare.id)
    trainer.delete_tag(project.id, spare.id)
    entries = [ImageFileCreateEntry(name=f"{label}{i}.jpg", contents=scenes.generate(label, 300 + i), tag_ids=[tag.id])
               for label, tag in (("beach", beach), ("forest", forest)) for i in range(5)]
    files = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
    trainer.create_images_from_files(project.id, ImageFileCreateBatch(
        images=[ImageFileCreateEntry(name="dup.jpg", contents=entries[0].contents),
                ImageFileCreateEntry(name="bad.jpg", contents=scenes.text_file())]))  # a 207
    untagged = trainer.create_images_from_data(project.id, scenes.generate("city", 1)).images[0].image
    url = files.images[0].image.original_image_uri
    trainer.create_images_from_urls(project.id, ImageUrlCreateBatch(images=[
        ImageUrlCreateEntry(url=url), ImageUrlCreateEntry(url="http://example.invalid/x.jpg")]))
    trainer.create_image_tags(project.id, [ImageTagCreateEntry(image_id=untagged.id, tag_id=beach.id)])
    trainer.delete_image_tags(project.id, image_ids=[untagged.id], tag_ids=[beach.id])
    trainer.get_tagged_images(project.id, take=3)
    trainer.get_untagged_images(project.id)
    trainer.get_images(project.id, tagging_status="All")
    trainer.get_image_count(project.id)
    trainer.get_tagged_image_count(project.id)
    trainer.get_untagged_image_count(project.id)
    trainer.get_images_by_ids(project.id, image_ids=[untagged.id])
    trainer.delete_images(project.id, image_ids=[untagged.id])
    trainer.get_tags(project.id)
    iteration = trainer.train_project(project.id)
    expect_error(trainer.train_project, project.id)
    while trainer.get_iteration(project.id, iteration.id).status == "Training":
        time.sleep(0.1)
    trainer.get_iterations(project.id)
    trainer.update_iteration(project.id, iteration.id, "first")
    trainer.get_iteration_performance(project.id, iteration.id, threshold=0.3)
    trainer.get_image_performances(project.id, iteration.id)
    trainer.get_image_performance_count(project.id, iteration.id)
    trainer.get_tags(project.id, iteration_id=iteration.id)
    quick = trainer.quick_test_image(project.id, scenes.generate("beach", 42))
    trainer.quick_test_image_url(project.id, url=url, store=False)
    trainer.query_predictions(project.id, PredictionQueryToken(max_count=10))
    trainer.delete_prediction(project.id, [quick.id])
    expect_error(trainer.export_iteration, project.id, iteration.id, "ONNX")
    trainer.get_exports(project.id, iteration.id)
    expect_error(trainer.publish_iteration, project.id, iteration.id, "model", "not-a-resource-id")
    trainer.publish_iteration(project.id, iteration.id, "model", resource_id)
    predictor.classify_image(project.id, "model", scenes.generate("forest", 43))
    predictor.classify_image_with_no_store(project.id, "model", scenes.generate("forest", 44))
    predictor.classify_image_url(project.id, "model", url=url)
    predictor.classify_image_url_with_no_store(project.id, "model", url=url)
    expect_error(predictor.classify_image, project.id, "missing", scenes.generate("forest", 45))
    expect_error(predictor.classify_image, project.id, "model", scenes.text_file())
    expect_error(trainer.delete_iteration, project.id, iteration.id)
    trainer.unpublish_iteration(project.id, iteration.id)
    trainer.delete_iteration(project.id, iteration.id)
    trainer.delete_project(project.id)
    expect_error(trainer.get_project, project.id)


@pytest.mark.parametrize(("training_version", "prediction_version"), [("v3.4-preview", "v3.1"), ("v3.3", "v3.0")])
def test_every_answer_matches_the_spec_schema(local_cv, training_version, prediction_version):
    log: list[Recorded] = []
    trainer = recording(CustomVisionTrainingClient(
        local_cv.endpoint, ApiKeyCredentials(in_headers={"Training-key": local_cv.training_key})), log)
    predictor = recording(CustomVisionPredictionClient(
        local_cv.endpoint, ApiKeyCredentials(in_headers={"Prediction-key": local_cv.prediction_key})), log)
    trainer.config.base_url = "{Endpoint}/customvision/" + training_version + "/training"
    predictor.config.base_url = "{Endpoint}/customvision/" + prediction_version + "/prediction"
    run_life_cycle(trainer, predictor, local_cv.prediction_resource_id)

    seen, problems = set(), []
    for call in log:
        api, version = ("training", training_version) if "/training" in call.path else ("prediction",
                                                                                        prediction_version)
        try:
            operation = validate_response(api, version, call.method, call.path, call.status, call.body)
        except Exception as exc:  # collect them all: one run shows every mismatch
            problems.append(f"{call.method} {call.path} {call.status}: {str(exc).splitlines()[0]}")
            continue
        seen.add(_classic_name(api, version, call.method, call.path, operation))
    assert not problems, "\n".join(problems)
    assert COVERED - seen == set()
    assert {c.status for c in log} >= {200, 204, 207, 400, 404}


def _classic_name(api: str, version: str, method: str, path: str, operation_id: str) -> str:
    if version in ("v3.4-preview", "v3.0") or (api == "training" and "_" not in operation_id):
        return RENAMED.get(operation_id, operation_id)
    if api == "prediction":
        return RENAMED[operation_id]
    # v3.3 renamed ids: the v3.4-preview spec (same paths and methods) gives the classic name
    return find_operation("training", "v3.4-preview", method, path.replace("/v3.3/", "/v3.4-preview/"))[0]


def test_every_error_code_the_service_uses_is_in_the_spec_enum():
    # The moderation stand-ins' codes are their own APIs' (test_contract_moderation.py checks them).
    sources = "\n".join(p.read_text() for p in _emulator_dir().rglob("*.py") if not p.name.startswith("moderation_"))
    used = set(re.findall(r'code="([A-Za-z]+)"', sources)) | set(re.findall(r'code = "([A-Za-z]+)"', sources))
    used |= {"ErrorUnknown", "ErrorPredictionServiceUnavailable"}
    assert len(used) > 40
    assert used - error_codes("training", "v3.4-preview") == set()
    prediction_codes = {"NotFoundProject", "NotFoundIteration", "BadRequestImageFormat", "BadRequestImageSizeBytes",
                        "BadRequestImageUrl", "BadRequestImageStream", "BadRequestPredictionInvalidApplicationName",
                        "ErrorPredictionServiceUnavailable"}
    assert prediction_codes - error_codes("prediction", "v3.1") == set()


def test_domains_include_every_domain_of_the_spec_example_with_its_name():
    import json

    from spec_schemas import SPECS
    example = json.loads((SPECS / "customvision-training/v3.3/examples/GetDomains.json").read_text())
    ours = {d["id"]: d for d in load_domains()}
    for domain in example["responses"]["200"]["body"]:
        assert ours[domain["id"]]["name"] == domain["name"]
        assert ours[domain["id"]]["type"] == domain["type"]


@pytest.mark.parametrize("version", ["v3.3", "v3.4-preview"])
def test_create_project_and_tag_examples_give_answers_of_the_same_shape(local_cv, version):
    import json

    import requests
    from spec_schemas import SPECS
    headers = {"Training-Key": local_cv.training_key}
    base = f"{local_cv.endpoint}/customvision/{version}/training"
    example = json.loads((SPECS / f"customvision-training/{version}/examples/CreateProject.json").read_text())
    params = {k: example["parameters"][k] for k in ("name", "description", "domainId")}
    params["name"] += f" {time.monotonic_ns()}"
    project = requests.post(f"{base}/projects", params=params, headers=headers, timeout=10)
    assert project.status_code == 200
    expected = example["responses"]["200"]["body"]
    assert set(expected) <= set(project.json())
    assert project.json()["settings"]["domainId"] == expected["settings"]["domainId"]
    validate_response("training", version, "POST", urlsplit(project.url).path, 200, project.json())
    tag_example = json.loads((SPECS / "customvision-training/v3.3/examples/CreateTag.json").read_text())
    tag = requests.post(f"{base}/projects/{project.json()['id']}/tags", headers=headers, timeout=10,
                        params={k: tag_example["parameters"][k] for k in ("name", "description")})
    body = tag.json()
    assert {k: v for k, v in body.items() if k != "id"} == {
        k: v for k, v in tag_example["responses"]["200"]["body"].items() if k != "id"}


def _emulator_dir():
    from pathlib import Path

    import emulator
    return Path(emulator.__file__).parent
