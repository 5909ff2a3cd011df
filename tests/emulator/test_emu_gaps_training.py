"""Training that goes wrong, and Advanced training's augmentation, through the official SDK.

A failed iteration must say why (GetIteration's trainingErrorDetails) and must not block the project: the caller fixes
the data and trains again. Advanced training learns from mirrored copies of the images as well, like Azure's.
"""

from __future__ import annotations

import shutil

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException
from cv_samples import project_with_images, wait_trained
from msrest.authentication import ApiKeyCredentials

from emulator.features import FEATURE_VERSION


def client_of(service) -> CustomVisionTrainingClient:
    client = CustomVisionTrainingClient(service.endpoint,
                                        ApiKeyCredentials(in_headers={"Training-key": service.training_key}))
    client.config.retry_policy.retries = 0
    return client


def test_an_image_file_lost_from_the_data_dir_fails_training_naming_it_and_the_project_trains_once_it_is_deleted(
        start_local_cv, tmp_path):
    data_dir = tmp_path / "cv"
    trainer = client_of(start_local_cv(data_dir=data_dir))
    p, tags = project_with_images(trainer, {"beach": 6, "forest": 5}, seed=31)
    lost = trainer.get_tagged_images(p.id, tag_ids=[tags["beach"].id], take=1)[0].id
    # What an operator can do to a data dir: lose an image file (a partial restore), and clear the feature cache
    # (it is derived data; an upgrade that changes the features makes it stale the same way).
    (data_dir / "blobs" / "images" / lost).unlink()
    shutil.rmtree(data_dir / "blobs" / "features")

    failed = wait_trained(trainer, p.id, trainer.train_project(p.id).id)
    assert failed.status == "Failed"
    assert f"image {lost}: its stored bytes are missing" in failed.training_error_details
    assert "1 of 11 training images" in failed.training_error_details
    assert "DeleteImages" in failed.training_error_details
    try:
        trainer.get_iteration_performance(p.id, failed.id)
        raise AssertionError("a Failed iteration has no performance")
    except CustomVisionErrorException as exc:
        assert exc.error.code == "BadRequestIterationIsNotTrained"

    trainer.delete_images(p.id, image_ids=[lost])
    fixed = wait_trained(trainer, p.id, trainer.train_project(p.id).id)
    assert (fixed.status, fixed.name) == ("Completed", "Iteration 2")
    assert trainer.get_iteration_performance(p.id, fixed.id).per_tag_performance
    assert trainer.get_iteration(p.id, failed.id).status == "Failed"  # kept, as history, until deleted


def test_an_image_deleted_while_its_training_is_queued_still_trains_that_iteration(in_process_cv):
    """Azure trains on the images as they were at TrainProject; deleting one afterwards changes the next iteration."""
    trainer = client_of(in_process_cv)
    backend, queued = in_process_cv.app.backend, []
    backend._submit_training = queued.append  # hold the job, as a worker busy with another project would
    p, tags = project_with_images(trainer, {"beach": 6, "forest": 5}, seed=32)
    iteration = trainer.train_project(p.id)
    gone = trainer.get_tagged_images(p.id, tag_ids=[tags["beach"].id], take=1)[0].id
    trainer.delete_images(p.id, image_ids=[gone])
    assert backend.blobs.get(f"images/{gone}") is not None  # kept for the queued job

    in_process_cv.app.worker.run_job(queued[0])
    assert trainer.get_iteration(p.id, iteration.id).status == "Completed"
    counts = {t.name: t.image_count for t in trainer.get_tags(p.id, iteration_id=iteration.id)}
    assert counts == {"beach": 6, "forest": 5}
    assert backend.blobs.get(f"images/{gone}") is not None  # the trained iteration keeps it (issue 11)
    trainer.delete_images(p.id, image_ids=[gone], all_iterations=True)
    assert backend.blobs.get(f"images/{gone}") is None  # removed from every iteration, its bytes go too


def test_advanced_training_learns_from_mirrored_images_and_reports_performance(start_local_cv, tmp_path):
    data_dir = tmp_path / "cv"
    trainer = client_of(start_local_cv(data_dir=data_dir))
    p, _ = project_with_images(trainer, {"beach": 6, "forest": 6}, seed=33)
    mirrored = data_dir / "blobs" / "features" / FEATURE_VERSION / "mirrored"
    quick = wait_trained(trainer, p.id, trainer.train_project(p.id).id)
    assert quick.status == "Completed" and not mirrored.exists()  # Quick training never computes them

    advanced = trainer.train_project(p.id, training_type="Advanced", reserved_budget_in_hours=1, force_train=True)
    advanced = wait_trained(trainer, p.id, advanced.id)
    assert (advanced.status, advanced.training_type, advanced.reserved_budget_in_hours) == ("Completed", "Advanced", 1)
    assert len(list(mirrored.glob("*.npy"))) == 12  # one mirrored feature vector per training image, cached
    performance = trainer.get_iteration_performance(p.id, advanced.id)
    assert {t.name for t in performance.per_tag_performance} == {"beach", "forest"}
    assert 0.5 <= performance.average_precision <= 1.0  # better than chance on two distinct scene kinds
