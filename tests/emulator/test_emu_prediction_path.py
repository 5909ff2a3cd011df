"""What an upload or a prediction costs the service: its image decoded once (for the checks and the features), the
model and its tags loaded once per iteration; and what is refused from the image header alone, before any decode."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry
from cv_samples import project_with_images, raw, unique_name, wait_trained
from msrest.authentication import ApiKeyCredentials
from PIL import Image

from devkit import scenes
from devkit.local_services import LOCAL_PREDICTION_RESOURCE_ID


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its few bytes of pixel data do not have."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def published_in_process(in_process_cv):
    """A trained, published project on an in-process service (so the test can watch what the service does)."""
    trainer = CustomVisionTrainingClient(in_process_cv.url,
                                         ApiKeyCredentials(in_headers={"Training-key": in_process_cv.training_key}))
    predictor = CustomVisionPredictionClient(in_process_cv.url,
                                             ApiKeyCredentials(in_headers={"Prediction-key": in_process_cv.prediction_key}))
    trainer.config.retry_policy.retries = predictor.config.retry_policy.retries = 0
    project, tags = project_with_images(trainer, {"beach": 5, "forest": 5}, seed=5)
    iteration = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
    assert iteration.status == "Completed"
    name = unique_name("m")
    trainer.publish_iteration(project.id, iteration.id, name, LOCAL_PREDICTION_RESOURCE_ID)
    return in_process_cv, trainer, predictor, project, tags, name


def _count_decodes(monkeypatch) -> list[str]:
    """Record the decoder of every compressed-image decode Pillow starts in this process from now on ("raw", how
    Pillow turns arrays into images for the features' colour conversion, is not one)."""
    decodes: list[str] = []
    real = Image._getdecoder

    def counting(mode, decoder_name, *args, **kwargs):
        if decoder_name != "raw":
            decodes.append(decoder_name)
        return real(mode, decoder_name, *args, **kwargs)

    monkeypatch.setattr(Image, "_getdecoder", counting)
    return decodes


def test_an_upload_and_a_prediction_each_decode_their_image_once(published_in_process, monkeypatch):
    _, trainer, predictor, project, tags, name = published_in_process
    photo = scenes.generate("beach", 99, size=(1600, 1200))
    decodes = _count_decodes(monkeypatch)
    predictor.classify_image(project.id, name, io.BytesIO(photo))
    assert decodes == ["jpeg"]
    decodes.clear()
    entry = ImageFileCreateEntry(name="new.jpg", contents=photo, tag_ids=[tags["beach"].id])
    assert trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=[entry])).is_batch_successful
    assert decodes == ["jpeg"]


def test_predictions_load_the_model_and_tags_once_not_the_training_snapshot_each_time(published_in_process):
    service, _, predictor, project, _, name = published_in_process
    blobs = service.app.backend.blobs
    read: list[str] = []
    real_get_json = blobs.get_json
    blobs.get_json = lambda key: read.append(key) or real_get_json(key)
    try:
        for seed in range(3):
            predictor.classify_image_with_no_store(project.id, name, io.BytesIO(scenes.generate("forest", seed)))
    finally:
        blobs.get_json = real_get_json
    assert [k.rsplit("/", 1)[1] for k in read] == ["model.json", "snapshot.json"]  # the first call, then cached


def test_a_header_claiming_a_huge_image_is_refused_as_too_large_before_decoding(local_cv, published):
    for claimed in ((12_000, 3_000), (20_000, 20_000)):  # the second is over Pillow's decompression-bomb limit
        answer = raw(local_cv, "POST", f"/{published.project.id}/classify/iterations/{published.publish_name}/image",
                     api="prediction", data=png_claiming(*claimed), headers={"Content-Type": "application/octet-stream"})
        assert (answer.status_code, answer.json()["code"]) == (400, "BadRequestImageDimensions"), answer.text
