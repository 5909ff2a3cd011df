"""Through the official SDKs: a project on a compact domain trains an ONNX graph (emulator.compact_model) that learns
the scenes, and the service's predictions ARE that graph's output, so an exported model.onnx gives the same answer."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry
from cv_samples import unique_name, wait_trained
from msrest.authentication import ApiKeyCredentials

from devkit import scenes
from devkit.local_services import LOCAL_PREDICTION_RESOURCE_ID
from emulator import compact_model

GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
CLASSES = ("beach", "forest", "mountain", "city")


def _clients(service) -> tuple[CustomVisionTrainingClient, CustomVisionPredictionClient]:
    return (CustomVisionTrainingClient(service.url, ApiKeyCredentials(in_headers={"Training-key": service.training_key})),
            CustomVisionPredictionClient(service.url,
                                         ApiKeyCredentials(in_headers={"Prediction-key": service.prediction_key})))


def _train(trainer, images, classification_type: str | None = None):
    project = trainer.create_project(unique_name("compact"), domain_id=GENERAL_COMPACT,
                                     classification_type=classification_type)
    names = sorted({label for image in images for label in image.labels})
    tags = {name: trainer.create_tag(project.id, name) for name in names}
    for start in range(0, len(images), 64):
        batch = [ImageFileCreateEntry(name=i.name, contents=i.data, tag_ids=[tags[t].id for t in i.labels])
                 for i in images[start:start + 64]]
        assert trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=batch)).is_batch_successful
    iteration = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
    assert iteration.status == "Completed", iteration.as_dict()
    return project, iteration


def _session(service, iteration_id: str, flavor: str | None = None) -> tuple[ort.InferenceSession, list[str]]:
    stored = service.app.backend.blobs.get_json(f"iterations/{iteration_id}/model.json")
    assert compact_model.is_compact_model(stored)
    return (ort.InferenceSession(compact_model.model_bytes(stored, flavor=flavor), providers=["CPUExecutionProvider"]),
            compact_model.labels(stored))


def test_compact_domain_learns_the_scenes_and_the_service_answers_with_its_onnx_graph(in_process_cv):
    trainer, predictor = _clients(in_process_cv)
    project, iteration = _train(trainer, scenes.dataset(CLASSES, 30, seed=101))
    assert trainer.publish_iteration(project.id, iteration.id, "scenes", LOCAL_PREDICTION_RESOURCE_ID) is True
    session, labels = _session(in_process_cv, iteration.id)
    assert sorted(labels) == sorted(CLASSES)

    held_out = scenes.dataset(CLASSES, 15, seed=202)
    correct = 0
    for n, image in enumerate(held_out):
        answer = predictor.classify_image_with_no_store(project.id, "scenes", image.data).predictions
        correct += answer[0].tag_name == image.labels[0]
        if n % 6 == 0:  # the export's model gives the service's answer, number for number
            expected = session.run(None, {"data": compact_model.preprocess(image.data)})[0][0]
            got = {p.tag_name: p.probability for p in answer}
            np.testing.assert_allclose([got[name] for name in labels], expected, atol=1e-6)
    accuracy = correct / len(held_out)
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.3f}"

    quick = trainer.quick_test_image(project.id, held_out[0].data, iteration_id=iteration.id, store=False)
    expected = session.run(None, {"data": compact_model.preprocess(held_out[0].data)})[0][0]
    np.testing.assert_allclose([{p.tag_name: p.probability for p in quick.predictions}[name] for name in labels],
                               expected, atol=1e-6)
    half, _ = _session(in_process_cv, iteration.id, "OnnxFloat16")
    out16 = half.run(None, {"data": compact_model.preprocess(held_out[0].data).astype(np.float16)})[0][0]
    np.testing.assert_allclose(out16.astype(np.float64), expected, atol=2e-2)


def test_compact_multilabel_gives_independent_per_tag_probabilities(in_process_cv):
    trainer, _ = _clients(in_process_cv)
    images = scenes.dataset([("beach",), ("city",), ("beach", "city"), ("forest",)], 8, seed=5, size=(160, 120))
    project, iteration = _train(trainer, images, classification_type="Multilabel")
    session, labels = _session(in_process_cv, iteration.id)
    sums = []
    for image in scenes.dataset([("beach", "city"), ("forest",)], 2, seed=6, size=(160, 120)):
        quick = trainer.quick_test_image(project.id, image.data, iteration_id=iteration.id, store=False)
        got = {p.tag_name: p.probability for p in quick.predictions}
        expected = session.run(None, {"data": compact_model.preprocess(image.data)})[0][0]
        np.testing.assert_allclose([got[name] for name in labels], expected, atol=1e-6)
        sums.append(sum(got.values()))
    assert any(abs(s - 1.0) > 0.05 for s in sums), sums  # sigmoids per tag, not a softmax
    stored = in_process_cv.app.backend.blobs.get_json(f"iterations/{iteration.id}/model.json")
    assert [n.op_type for n in compact_model.model_proto(stored).graph.node if n.op_type in ("Sigmoid", "Softmax")] \
        == ["Sigmoid"]


@pytest.mark.parametrize("domain", ["ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"])
def test_other_domains_keep_the_numpy_model(in_process_cv, domain):
    trainer, _ = _clients(in_process_cv)
    project = trainer.create_project(unique_name("general"), domain_id=domain)
    tags = {name: trainer.create_tag(project.id, name) for name in ("beach", "forest")}
    images = scenes.dataset(("beach", "forest"), 5, seed=9, size=(128, 96))
    batch = [ImageFileCreateEntry(name=i.name, contents=i.data, tag_ids=[tags[i.labels[0]].id]) for i in images]
    assert trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=batch)).is_batch_successful
    iteration = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
    stored = in_process_cv.app.backend.blobs.get_json(f"iterations/{iteration.id}/model.json")
    assert not compact_model.is_compact_model(stored)


def test_compact_advanced_training_learns_from_mirrored_graph_features_too(in_process_cv):
    trainer, _ = _clients(in_process_cv)
    project = trainer.create_project(unique_name("compact-adv"), domain_id=GENERAL_COMPACT)
    tags = {name: trainer.create_tag(project.id, name) for name in ("beach", "city")}
    images = scenes.dataset(("beach", "city"), 6, seed=11, size=(160, 120))
    batch = [ImageFileCreateEntry(name=i.name, contents=i.data, tag_ids=[tags[i.labels[0]].id]) for i in images]
    assert trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=batch)).is_batch_successful
    started = trainer.train_project(project.id, training_type="Advanced", reserved_budget_in_hours=1)
    iteration = wait_trained(trainer, project.id, started.id)
    assert iteration.status == "Completed", iteration.as_dict()
    stored = in_process_cv.app.backend.blobs.get_json(f"iterations/{iteration.id}/model.json")
    assert compact_model.is_compact_model(stored) and len(stored["mean"]) == compact_model.FEATURE_DIM
    blobs = in_process_cv.app.backend.blobs
    image_id = in_process_cv.app.backend.db.one("SELECT id FROM images WHERE project_id = ?", (project.id,))["id"]
    mirrored = blobs.get_array(f"features/{compact_model.FEATURES_CACHE_VERSION}/mirrored/{image_id}.npy")
    assert mirrored is not None and mirrored.shape == (compact_model.FEATURE_DIM,)
