"""Export against the real local service (issue 10, part 1): a compact-domain iteration exports to ONNX (float32 and
OnnxFloat16) through ExportIteration / GetExports, the downloadUri answers without a key, and the package is the model:
loaded the way Microsoft's export sample loads it (onnx, onnxruntime and Pillow only), it gives the service's own
answer for the same image. What the service cannot produce is refused with a 400 and an enum code, and not advertised.
"""

from __future__ import annotations

import contextlib
import io
import time
import zipfile

import numpy as np
import onnx
import onnxruntime
import pytest
import requests
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from cv_samples import raw, unique_name, wait_trained
from msrest.authentication import ApiKeyCredentials
from PIL import Image

from devkit import scenes
from functions.images import model_decode_size
from tests.contract.spec_schemas import error_codes, validate_response

GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
LABELS = ("beach", "forest", "city")
TOLERANCE = {None: 1e-4, "OnnxFloat16": 2e-2}
# A JPEG at least twice the input side on both sides is decoded by the service (and cvops' runner) at a reduced libjpeg
# scale; the sample decodes it whole, a few of 255 levels apart: the parity tolerance, not float rounding.
SCALED_TOLERANCE = {None: 1e-2, "OnnxFloat16": 2e-2}


def compact_project(trainer: CustomVisionTrainingClient, labels: tuple[str, ...], *, per_tag: int = 6,
                    classification_type: str = "Multiclass", seed: int = 0):
    project = trainer.create_project(unique_name("export"), domain_id=GENERAL_COMPACT,
                                     classification_type=classification_type)
    tags = {label: trainer.create_tag(project.id, label) for label in labels}
    entries = [ImageFileCreateEntry(name=f"{label}_{i}.jpg", contents=scenes.generate(label, seed + 100 * n + i),
                                    tag_ids=[tags[label].id]) for n, label in enumerate(labels) for i in range(per_tag)]
    result = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
    assert result.is_batch_successful, [i.status for i in result.images]
    iteration = wait_trained(trainer, project.id, trainer.train_project(project.id).id, timeout=120)
    assert iteration.status == "Completed", iteration.as_dict()
    return project, iteration


@pytest.fixture(scope="module")
def compact(training_client, local_cv):
    """A Multiclass beach/forest/city project on General (compact), trained and published."""
    project, iteration = compact_project(training_client, LABELS, seed=31)
    name = unique_name("compact")
    training_client.publish_iteration(project.id, iteration.id, name, local_cv.prediction_resource_id)
    return project, iteration, name


def wait_done(trainer: CustomVisionTrainingClient, project_id: str, iteration_id: str, flavor: str | None,
              timeout: float = 30.0):
    """The export of `flavor` once Done; every GetExports on the way lists it (a client polling never sees [])."""
    deadline = time.monotonic() + timeout
    while True:
        exports = trainer.get_exports(project_id, iteration_id)
        mine = [e for e in exports if e.platform == "ONNX" and e.flavor == flavor]
        assert len(mine) == 1, [e.as_dict() for e in exports]
        if mine[0].status == "Done":
            return mine[0]
        assert mine[0].status == "Exporting" and time.monotonic() < deadline, mine[0].as_dict()
        time.sleep(0.05)


class SampleModel:
    """What Microsoft's ONNX classification sample (Azure-Samples/customvision-export-samples) does with model.onnx:
    onnxruntime session, input size from the input's shape, channel order and range from the metadata, the whole image
    resized with Pillow."""

    def __init__(self, model: bytes) -> None:
        self.session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        (single,) = self.session.get_inputs()
        self.input_name = single.name
        self.input_size = tuple(single.shape[2:])
        self.input_type = {"tensor(float)": np.float32, "tensor(float16)": np.float16}[single.type]
        props = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
        self.is_bgr = props.get("Image.BitmapPixelFormat") == "Bgr8"
        self.is_range255 = props.get("Image.NominalPixelRange") == "NominalRange_0_255"

    def predict(self, image: bytes) -> np.ndarray:
        pixels = Image.open(io.BytesIO(image)).convert("RGB").resize(self.input_size, Image.Resampling.BICUBIC)
        array = np.array(pixels, dtype=np.float32)[np.newaxis].transpose((0, 3, 1, 2))
        if self.is_bgr:
            array = array[:, (2, 1, 0), :, :]
        if not self.is_range255:
            array = array / 255
        first = self.session.get_outputs()[0].name
        return np.asarray(self.session.run([first], {self.input_name: array.astype(self.input_type)})[0])


def download(uri: str) -> zipfile.ZipFile:
    response = requests.get(uri, timeout=30)  # no key: the downloadUri is the credential, as Azure's SAS URI is
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip", response.text
    return zipfile.ZipFile(io.BytesIO(response.content))


@pytest.mark.parametrize("flavor", [None, "OnnxFloat16"])
def test_the_exported_model_gives_the_services_answer_loaded_as_microsofts_sample_loads_it(
        training_client, prediction_client, compact, flavor):
    project, iteration, name = compact
    started = training_client.export_iteration(project.id, iteration.id, "ONNX", flavor=flavor)
    assert (started.platform, started.status, started.flavor) == ("ONNX", "Exporting", flavor)
    assert started.newer_version_available is False
    done = wait_done(training_client, project.id, iteration.id, flavor)
    assert done.download_uri.startswith("http") and not done.newer_version_available
    package = download(done.download_uri)
    assert sorted(package.namelist()) == ["labels.txt", "model.onnx"]
    labels = package.read("labels.txt").decode().splitlines()
    assert sorted(labels) == sorted(LABELS)
    model = SampleModel(package.read("model.onnx"))
    assert model.input_type == (np.float16 if flavor else np.float32)
    worst = {False: 0.0, True: 0.0}
    for label in LABELS:
        for seed, size in ((901, (320, 240)), (902, (1024, 768))):
            image = scenes.generate(label, seed, size=size)
            scaled = model_decode_size(*size, model.input_size[0]) != size
            output = model.predict(image)
            assert output.shape == (1, len(labels))
            quick = {p.tag_name: p.probability for p in
                     training_client.quick_test_image(project.id, image, iteration_id=iteration.id).predictions}
            served = {p.tag_name: p.probability for p in prediction_client.classify_image(project.id, name, image)
                      .predictions}
            assert quick == pytest.approx(served, abs=1e-6)
            np.testing.assert_allclose(output[0].astype(np.float64), [served[t] for t in labels],
                                       atol=(SCALED_TOLERANCE if scaled else TOLERANCE)[flavor])
            assert labels[int(np.argmax(output[0]))] == max(served, key=served.get)
            worst[scaled] = max(worst[scaled], max(abs(float(output[0][i]) - served[t]) for i, t in enumerate(labels)))
    print(f"sample vs service, largest difference: whole decode {worst[False]:.2e}, reduced decode {worst[True]:.2e}")


def test_exporting_the_same_platform_again_is_refused_as_azure_does_and_get_exports_keeps_it(training_client, compact):
    project, iteration, _ = compact
    with contextlib.suppress(CustomVisionErrorException):  # the parity test may have exported it already
        training_client.export_iteration(project.id, iteration.id, "ONNX")
    wait_done(training_client, project.id, iteration.id, None)
    with pytest.raises(CustomVisionErrorException) as again:
        training_client.export_iteration(project.id, iteration.id, "ONNX")
    assert again.value.response.status_code == 400
    assert again.value.error.code == "BadRequestExportAlreadyInProgress"
    assert "already queued for export" in again.value.error.message
    assert [e.status for e in training_client.get_exports(project.id, iteration.id) if e.flavor is None] == ["Done"]


@pytest.mark.parametrize(("platform", "flavor"), [
    ("TensorFlow", None), ("TensorFlow", "TensorFlowLite"), ("CoreML", None), ("DockerFile", "Linux"),
    ("VAIDK", None), ("OpenVino", None), ("ONNX", "ONNX10"), ("ONNX", "ONNX12"), ("ONNX", "Windows")])
def test_what_the_service_cannot_produce_is_refused_with_what_it_can(local_cv, compact, platform, flavor):
    project, iteration, _ = compact
    params = {"platform": platform, **({"flavor": flavor} if flavor else {})}
    response = raw(local_cv, "POST", f"/projects/{project.id}/iterations/{iteration.id}/export", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "BadRequestNotSupported" and body["code"] in error_codes("training", "v3.4-preview")
    assert "ONNX" in body["message"] and "OnnxFloat16" in body["message"]
    listed = raw(local_cv, "GET", f"/projects/{project.id}/iterations/{iteration.id}/export").json()
    assert all(e["platform"] == "ONNX" and e.get("flavor") in (None, "OnnxFloat16") for e in listed)


def test_a_compact_iteration_advertises_onnx_and_a_general_one_nothing(training_client, compact, published):
    project, iteration, _ = compact
    seen = training_client.get_iteration(project.id, iteration.id)
    assert seen.exportable is True and seen.exportable_to == ["ONNX"]
    general = training_client.get_iteration(published.project.id, published.iteration.id)
    assert general.exportable is False and general.exportable_to == []


def test_a_non_compact_iteration_is_refused_with_an_enum_code(local_cv, published):
    response = raw(local_cv, "POST", f"/projects/{published.project.id}/iterations/{published.iteration.id}/export",
                   params={"platform": "ONNX"})
    assert response.status_code == 400
    assert response.json()["code"] == "BadRequestExportValidationFailed"
    assert response.json()["code"] in error_codes("training", "v3.4-preview")


@pytest.mark.parametrize("version", ["v3.3", "v3.4-preview"])
def test_export_answers_validate_against_the_spec(local_cv, training_client, version):
    project, iteration = compact_project(training_client, ("beach", "forest"), per_tag=5, seed=71)
    path = f"/projects/{project.id}/iterations/{iteration.id}/export"
    base = f"/customvision/{version}/training{path}"
    started = raw(local_cv, "POST", path, version=version, params={"platform": "ONNX"})
    assert started.status_code == 200, started.text
    validate_response("training", version, "POST", base, 200, started.json())
    listed = raw(local_cv, "GET", path, version=version)
    validate_response("training", version, "GET", base, 200, listed.json())
    assert listed.json(), "GetExports right after ExportIteration lists the export"
    half = raw(local_cv, "POST", path, version=version, params={"platform": "ONNX", "flavor": "OnnxFloat16"})
    assert half.status_code == 200 and half.json()["flavor"] == "OnnxFloat16"
    # The spec's ExportFlavor enum predates OnnxFloat16 (an extensible, modelAsString enum; Azure accepts and answers
    # it, see emulator/README.md): everything else of the answer is the spec's.
    validate_response("training", version, "POST", base, 200, {**half.json(), "flavor": None})


def test_deleting_the_iteration_takes_its_download_away(training_client):
    project, iteration = compact_project(training_client, ("beach", "forest"), per_tag=5, seed=51)
    training_client.export_iteration(project.id, iteration.id, "ONNX")
    uri = wait_done(training_client, project.id, iteration.id, None).download_uri
    assert requests.get(uri, timeout=30).status_code == 200
    training_client.delete_iteration(project.id, iteration.id)
    assert requests.get(uri, timeout=30).status_code == 404
    guessed = uri.rsplit("/", 2)[0] + "/" + "0" * 64 + "/model.zip"
    assert requests.get(guessed, timeout=30).status_code == 404


def test_a_multilabel_export_gives_independent_per_tag_probabilities_as_the_service_does(training_client):
    project, iteration = compact_project(training_client, ("beach", "forest"), per_tag=6,
                                         classification_type="Multilabel", seed=81)
    training_client.export_iteration(project.id, iteration.id, "ONNX")
    package = download(wait_done(training_client, project.id, iteration.id, None).download_uri)
    labels = package.read("labels.txt").decode().splitlines()
    model = SampleModel(package.read("model.onnx"))
    operators = {node.op_type for node in onnx.load_from_string(package.read("model.onnx")).graph.node}
    assert "Sigmoid" in operators and "Softmax" not in operators  # one sigmoid per tag, not a softmax over tags
    for label in ("beach", "forest", "city"):
        image = scenes.generate(label, 911)
        served = {p.tag_name: p.probability for p in
                  training_client.quick_test_image(project.id, image, iteration_id=iteration.id).predictions}
        output = model.predict(image)[0].astype(np.float64)
        np.testing.assert_allclose(output, [served[t] for t in labels], atol=TOLERANCE[None])


def test_an_export_and_its_download_survive_a_restart_of_the_service(start_local_cv, tmp_path):
    service = start_local_cv(data_dir=tmp_path / "cv")
    trainer = CustomVisionTrainingClient(service.endpoint,
                                         ApiKeyCredentials(in_headers={"Training-key": service.training_key}))
    project, iteration = compact_project(trainer, ("beach", "forest"), per_tag=5, seed=61)
    trainer.export_iteration(project.id, iteration.id, "ONNX", flavor="OnnxFloat16")
    before = download(wait_done(trainer, project.id, iteration.id, "OnnxFloat16").download_uri).read("model.onnx")
    service.stop()
    service = start_local_cv(data_dir=tmp_path / "cv")
    trainer = CustomVisionTrainingClient(service.endpoint,
                                         ApiKeyCredentials(in_headers={"Training-key": service.training_key}))
    (export,) = trainer.get_exports(project.id, iteration.id)
    assert (export.status, export.flavor) == ("Done", "OnnxFloat16")
    assert download(export.download_uri).read("model.onnx") == before


def test_an_export_that_fails_is_listed_failed_and_may_be_exported_again(in_process_cv, monkeypatch):
    from emulator import compact_model

    trainer = CustomVisionTrainingClient(in_process_cv.url,
                                         ApiKeyCredentials(in_headers={"Training-key": in_process_cv.training_key}))
    project, iteration = compact_project(trainer, ("beach", "forest"), per_tag=5, seed=41)
    real = compact_model.model_bytes

    def broken(stored, *, flavor=None):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(compact_model, "model_bytes", broken)
    trainer.export_iteration(project.id, iteration.id, "ONNX")
    deadline = time.monotonic() + 10
    while (listed := trainer.get_exports(project.id, iteration.id))[0].status == "Exporting":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert [(e.status, e.download_uri) for e in listed] == [("Failed", "")]
    monkeypatch.setattr(compact_model, "model_bytes", real)
    assert trainer.export_iteration(project.id, iteration.id, "ONNX").status == "Exporting"
    assert wait_done(trainer, project.id, iteration.id, None).download_uri


@pytest.mark.parametrize("size", [(2048, 1536), (1024, 768), (1536, 2048)])
def test_a_large_photo_gets_the_services_answer_from_cvops_runner_exactly_and_from_the_sample_within_0_01(
        training_client, prediction_client, compact, size):
    """Large JPEGs are decoded at reduced scale (at least twice the input side) by the service's compact domains and
    by cvops' runner alike, so the two agree to float rounding; Microsoft's sample decodes in full, which moves a
    probability by far less than the issue's 0.01 and never the top tag."""
    from functions.exported_model import ExportedModel

    project, iteration, name = compact
    if not any(e.platform == "ONNX" and e.flavor is None for e in training_client.get_exports(project.id, iteration.id)):
        training_client.export_iteration(project.id, iteration.id, "ONNX")  # exported once per iteration, as Azure
    package = download(wait_done(training_client, project.id, iteration.id, None).download_uri)
    labels = package.read("labels.txt").decode().splitlines()
    sample = SampleModel(package.read("model.onnx"))
    runner = ExportedModel.load(package.read("model.onnx"), labels)
    worst_sample = 0.0
    for label in LABELS:
        image = scenes.generate(label, 950, size=size)
        served = {p.tag_name: p.probability for p in prediction_client.classify_image(project.id, name, image)
                  .predictions}
        ours = dict(runner.predict(image))
        assert ours == pytest.approx(served, abs=1e-6)
        theirs = sample.predict(image)[0].astype(np.float64)
        worst_sample = max(worst_sample, max(abs(theirs[i] - served[t]) for i, t in enumerate(labels)))
        assert labels[int(np.argmax(theirs))] == max(served, key=served.get)
    assert worst_sample < 0.01, worst_sample
