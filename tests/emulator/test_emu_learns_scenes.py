"""Through the official SDKs only: the local service learns four scene classes well, and its own performance numbers
tell the truth about how well (they agree with accuracy measured on images it never saw)."""

from __future__ import annotations

from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry
from cv_samples import unique_name, wait_trained

from devkit import scenes

CLASSES = ("beach", "forest", "mountain", "city")


def test_quick_training_on_four_scene_classes_generalises_and_reports_it_truthfully(training_client, prediction_client,
                                                                                     local_cv):
    project = training_client.create_project(unique_name("scenes"))
    tags = {name: training_client.create_tag(project.id, name) for name in CLASSES}
    train = scenes.dataset(CLASSES, 30, seed=101)
    for start in range(0, len(train), 64):
        batch = [ImageFileCreateEntry(name=i.name, contents=i.data, tag_ids=[tags[i.labels[0]].id])
                 for i in train[start:start + 64]]
        assert training_client.create_images_from_files(project.id, ImageFileCreateBatch(images=batch)).is_batch_successful

    iteration = wait_trained(training_client, project.id, training_client.train_project(project.id).id)
    assert iteration.status == "Completed"
    training_client.publish_iteration(project.id, iteration.id, "scenes", local_cv.prediction_resource_id)

    held_out = scenes.dataset(CLASSES, 15, seed=202)
    correct = 0
    for image in held_out:
        predictions = prediction_client.classify_image_with_no_store(project.id, "scenes", image.data).predictions
        correct += predictions[0].tag_name == image.labels[0]
    accuracy = correct / len(held_out)
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.3f}"

    performance = training_client.get_iteration_performance(project.id, iteration.id, threshold=0.5)
    # Multiclass at 0.5: the service's cross-validated precision and recall should predict held-out accuracy.
    assert abs(performance.precision - accuracy) <= 0.1, (performance.precision, accuracy)
    assert abs(performance.recall - accuracy) <= 0.1, (performance.recall, accuracy)
    assert len(performance.per_tag_performance) == len(CLASSES)
    assert all(tag.average_precision >= 0.8 for tag in performance.per_tag_performance)
