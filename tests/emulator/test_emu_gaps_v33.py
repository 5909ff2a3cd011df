"""Training v3.3 answers hold only what v3.3's spec defines, even for data created through v3.4-preview.

v3.4-preview added the image status ErrorImageDimensions and the export platform OpenVino; a v3.3 client must see
neither (older generated clients reject enum values they do not know). tests/contract checks a whole life cycle on a
General project; this covers what that run never produces: a too-narrow image, a compact domain that exports to
OpenVino, and metadata, each validated against the v3.3 schema.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from cv_samples import png, unique_name, wait_trained
from msrest.authentication import ApiKeyCredentials

from devkit import scenes
from emulator.responses import for_version
from tests.contract.spec_schemas import validate_response

GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"  # classification; exports to OpenVino in v3.4-preview


@pytest.fixture
def v33(local_cv):
    """The SDK pointed at Training v3.3, keeping every raw answer to validate against v3.3's spec."""
    client = CustomVisionTrainingClient(local_cv.endpoint,
                                        ApiKeyCredentials(in_headers={"Training-key": local_cv.training_key}))
    client.config.base_url = "{Endpoint}/customvision/v3.3/training"
    client.config.retry_policy.retries = 0
    client.answers = []

    def keep(response, *args, **kwargs):
        client.answers.append((response.request.method, urlsplit(response.url).path, response.status_code,
                               response.json() if response.content else None))
        return response

    client.config.hooks.append(keep)
    return client


def assert_all_valid_v33(client) -> None:
    assert client.answers
    for method, path, status, body in client.answers:
        validate_response("training", "v3.3", method, path, status, body)


def test_too_narrow_image_is_error_image_size_in_v33_and_error_image_dimensions_in_v34(training_client, v33):
    project = training_client.create_project(unique_name("v33"))
    batch = ImageFileCreateBatch(images=[ImageFileCreateEntry(name="ok.png", contents=png(40, 40)),
                                         ImageFileCreateEntry(name="narrow.png", contents=png(520, 20))],
                                 metadata={"camera": "7"})
    old = v33.create_images_from_files(project.id, batch)
    assert [i.status for i in old.images] == ["OK", "ErrorImageSize"]
    assert old.images[0].image.metadata == {"camera": "7"}  # v3.3's Image has metadata too
    new = training_client.create_images_from_files(project.id, batch)
    assert [i.status for i in new.images] == ["OKDuplicate", "ErrorImageDimensions"]
    assert v33.get_images(project.id)[0].metadata == {"camera": "7"}
    assert_all_valid_v33(v33)


def test_openvino_is_invisible_to_v33_and_survives_a_v33_update(training_client, v33):
    project = training_client.create_project(unique_name("v33"), domain_id=GENERAL_COMPACT,
                                             target_export_platforms=["ONNX", "OpenVino"])
    seen = v33.get_project(project.id)
    assert seen.settings.target_export_platforms == ["ONNX"]
    assert project.id in {p.id for p in v33.get_projects()}
    seen.description = "edited by an old client"
    v33.update_project(project.id, seen)
    assert training_client.get_project(project.id).settings.target_export_platforms == ["ONNX", "OpenVino"]

    tags = [training_client.create_tag(project.id, label) for label in ("beach", "forest")]
    training_client.create_images_from_files(project.id, ImageFileCreateBatch(images=[
        ImageFileCreateEntry(name=f"{t.name}{i}.jpg", contents=scenes.generate(t.name, 60 + i), tag_ids=[t.id])
        for t in tags for i in range(5)]))
    iteration = wait_trained(training_client, project.id, training_client.train_project(project.id).id)
    assert iteration.exportable_to == ["ONNX"]  # advertised: only what ExportIteration produces (issue 10)
    assert all("OpenVino" not in i.exportable_to for i in v33.get_iterations(project.id))
    # Were OpenVino exportable, a v3.3 answer must still leave it out (for_version is what the service applies):
    shaped = for_version("training", "v3.3", "GetIteration", {"exportableTo": ["ONNX", "OpenVino"], "exportable": True})
    assert shaped == {"exportableTo": ["ONNX"], "exportable": True}

    with pytest.raises(CustomVisionErrorException) as refused:
        v33.create_project(unique_name("v33"), domain_id=GENERAL_COMPACT, target_export_platforms=["OpenVino"])
    assert refused.value.error.code == "BadRequestProjectUnsupportedExportPlatform"
    assert "v3.4-preview" in refused.value.error.message
    assert_all_valid_v33(v33)
