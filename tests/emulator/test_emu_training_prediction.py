"""Training, evaluation, publishing and prediction through the official SDKs, with the real classifier (emulator.classifier)."""

from __future__ import annotations

import threading

import pytest
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException as PredictionError,
)
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    PredictionQueryToken,
)
from cv_samples import png, project_with_images, raw, unique_name, wait_trained
from msrest.authentication import ApiKeyCredentials

from devkit import scenes
from emulator.learning_interface import ModuleLearning
from emulator.server import serve


def error_of(call, *args, **kwargs):
    with pytest.raises((CustomVisionErrorException, PredictionError)) as exc:
        call(*args, **kwargs)
    return exc.value


def test_tag_with_fewer_than_5_images_blocks_training_naming_the_tag(training_client):
    p, _ = project_with_images(training_client, {"beach": 5, "forest": 4})
    e = error_of(training_client.train_project, p.id)
    assert e.error.code == "BadRequestTrainingValidationFailed"
    assert "'forest' (4)" in e.error.message


def test_a_single_tag_cannot_train_a_multiclass_project(training_client):
    p, _ = project_with_images(training_client, {"beach": 5})
    assert error_of(training_client.train_project, p.id).error.code == \
        "BadRequestClassificationTrainingValidationFailed"


def test_train_answers_training_at_once_then_completes(training_client, published):
    it = published.iteration
    assert (it.status, it.training_type, it.publish_name) == ("Completed", "Regular", published.publish_name)
    assert it.trained_at is not None and it.training_time_in_minutes >= 1
    assert it.original_publish_resource_id.startswith("/subscriptions/")


def test_retraining_with_nothing_new_is_not_needed_unless_forced(training_client, published):
    p = published.project
    e = error_of(training_client.train_project, p.id)
    assert e.error.code == "BadRequestTrainingNotNeeded"
    forced = training_client.train_project(p.id, force_train=True)
    assert forced.status == "Training"
    assert wait_trained(training_client, p.id, forced.id).status == "Completed"
    training_client.delete_iteration(p.id, forced.id)


def test_publishing_rules(training_client, published, local_cv):
    p, it = published.project, published.iteration
    e = error_of(training_client.publish_iteration, p.id, it.id, "other-name", "not-an-arm-id")
    assert e.error.code == "BadRequestInvalidPublishTarget"
    assert training_client.publish_iteration(p.id, it.id, published.publish_name, local_cv.prediction_resource_id)
    e = error_of(training_client.delete_iteration, p.id, it.id)
    assert e.error.code == "BadRequestIterationIsPublished"


def test_performance_is_computed_and_moves_with_the_threshold(training_client, published):
    p, it = published.project, published.iteration
    perf = training_client.get_iteration_performance(p.id, it.id)
    assert {t.name for t in perf.per_tag_performance} == {"beach", "forest"}
    assert 0.0 <= perf.precision <= 1.0 and 0.0 <= perf.recall <= 1.0
    strict = training_client.get_iteration_performance(p.id, it.id, threshold=0.99)
    assert strict.recall <= perf.recall
    images = training_client.get_image_performances(p.id, it.id, take=100)
    assert len(images) == 16 == training_client.get_image_performance_count(p.id, it.id)
    assert all(len(i.predictions) == 2 for i in images)
    beach = published.tags["beach"].id
    assert training_client.get_image_performance_count(p.id, it.id, tag_ids=[beach]) == 8


def test_tags_of_an_iteration_are_those_it_trained_on(training_client, published):
    tags = training_client.get_tags(published.project.id, iteration_id=published.iteration.id)
    assert {t.name: t.image_count for t in tags} == {"beach": 8, "forest": 8}


def test_classify_lists_every_tag_highest_first_summing_to_one(prediction_client, published):
    result = prediction_client.classify_image(published.project.id, published.publish_name,
                                              scenes.generate("forest", 4242))
    probabilities = [p.probability for p in result.predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert abs(sum(probabilities) - 1.0) < 1e-4
    assert result.predictions[0].tag_name == "forest"
    assert (result.project, result.iteration) == (published.project.id, published.iteration.id)


def test_classify_with_no_store_and_by_url(prediction_client, published, local_cv, training_client):
    p = published.project
    result = prediction_client.classify_image_with_no_store(p.id, published.publish_name,
                                                            scenes.generate("beach", 4343))
    assert result.predictions[0].tag_name == "beach"
    image = training_client.get_tagged_images(p.id, take=1)[0]
    by_url = prediction_client.classify_image_url(p.id, published.publish_name, url=image.original_image_uri)
    assert len(by_url.predictions) == 2


def test_unknown_publish_name_is_not_found(prediction_client, published):
    e = error_of(prediction_client.classify_image, published.project.id, "no-such-model", png())
    assert (e.response.status_code, e.error.code) == (404, "NotFoundIteration")


def test_prediction_refuses_non_images_and_images_over_4_mb(prediction_client, published):
    p = published.project
    e = error_of(prediction_client.classify_image, p.id, published.publish_name, scenes.text_file())
    assert (e.response.status_code, e.error.code) == (400, "BadRequestImageFormat")
    big = png(8, 8) + b"\0" * (4 * 1024 * 1024)
    assert error_of(prediction_client.classify_image, p.id, published.publish_name, big).error.code == \
        "BadRequestImageSizeBytes"


def test_older_api_versions_answer_too(local_cv, published):
    p = published.project
    v33 = raw(local_cv, "GET", f"/projects/{p.id}/iterations/{published.iteration.id}", version="v3.3")
    assert v33.status_code == 200 and v33.json()["status"] == "Completed"
    v30 = raw(local_cv, "POST", f"/{p.id}/classify/iterations/{published.publish_name}/image/nostore",
              api="prediction", version="v3.0", data=scenes.generate("beach", 1),
              headers={"Content-Type": "application/octet-stream"})
    assert v30.status_code == 200 and "tagType" not in v30.json()["predictions"][0]


def test_quick_test_stores_a_prediction_that_can_be_queried(training_client, published):
    p = published.project
    result = training_client.quick_test_image(p.id, scenes.generate("beach", 77), iteration_id=published.iteration.id)
    assert result.iteration == published.iteration.id
    found = training_client.query_predictions(p.id, PredictionQueryToken(iteration_id=published.iteration.id))
    assert result.id in {r.id for r in found.results}
    training_client.delete_prediction(p.id, [result.id])
    found = training_client.query_predictions(p.id, PredictionQueryToken(iteration_id=published.iteration.id))
    assert result.id not in {r.id for r in found.results}


def test_unpublish_then_prediction_is_not_found(training_client, prediction_client, local_cv):
    p, _ = project_with_images(training_client, {"beach": 5, "forest": 5}, seed=3)
    it = wait_trained(training_client, p.id, training_client.train_project(p.id).id)
    name = unique_name("m")
    training_client.publish_iteration(p.id, it.id, name, local_cv.prediction_resource_id)
    assert training_client.update_iteration(p.id, it.id, "renamed").name == "renamed"
    training_client.unpublish_iteration(p.id, it.id)
    assert error_of(prediction_client.classify_image, p.id, name, png()).response.status_code == 404
    assert error_of(training_client.unpublish_iteration, p.id, it.id).error.code == "BadRequestIterationNotPublished"
    e = error_of(training_client.export_iteration, p.id, it.id, "ONNX")
    assert e.error.code == "BadRequestExportValidationFailed"
    assert training_client.get_exports(p.id, it.id) == []


def test_advanced_training_needs_a_budget(training_client):
    p, _ = project_with_images(training_client, {"beach": 5, "forest": 5}, seed=11)
    e = error_of(training_client.train_project, p.id, training_type="Advanced")
    assert e.error.code == "BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining"


class GatedLearning(ModuleLearning):
    """The real classifier, held at the start of training until the test opens the gate: "while training" is a state
    the test controls, not a race against a fast machine."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def train(self, *args, **kwargs):
        assert self.gate.wait(30), "the test never opened the training gate"
        return super().train(*args, **kwargs)


def test_training_while_training_is_refused_until_the_iteration_completes():
    learning = GatedLearning()
    service = serve(learning=learning)
    try:
        trainer = CustomVisionTrainingClient(service.url, ApiKeyCredentials(in_headers={"Training-key": service.training_key}))
        trainer.config.retry_policy.retries = 0
        project, _ = project_with_images(trainer, {"beach": 5, "forest": 5}, seed=3)
        first = trainer.train_project(project.id)
        assert first.status == "Training"
        e = error_of(trainer.train_project, project.id, force_train=True)
        assert e.error.code == "BadRequestTrainingAlreadyInProgress"
        assert trainer.get_iteration(project.id, first.id).status == "Training"
        learning.gate.set()
        assert wait_trained(trainer, project.id, first.id).status == "Completed"
        assert trainer.train_project(project.id, force_train=True).status == "Training"
    finally:
        learning.gate.set()
        service.stop()
