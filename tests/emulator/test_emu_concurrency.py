"""Concurrent calls are safe: the threaded server shares one state, and racing uploads converge."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from cv_samples import png
from msrest.authentication import ApiKeyCredentials


def test_racing_uploads_of_the_same_bytes_store_one_image(in_process_cv):
    client = CustomVisionTrainingClient(in_process_cv.url,
                                        ApiKeyCredentials(in_headers={"Training-key": in_process_cv.training_key}))
    project = client.create_project("race")
    tag = client.create_tag(project.id, "red")
    data = png(45, 45, (9, 9, 9))

    def upload(_: int) -> str:
        return client.create_images_from_data(project.id, data, tag_ids=[tag.id]).images[0].status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(upload, range(16)))
    assert sorted(statuses) == ["OK"] + ["OKDuplicate"] * 15
    assert client.get_image_count(project.id) == 1
    assert client.get_tag(project.id, tag.id).image_count == 1


def test_many_projects_created_in_parallel_are_all_listed(in_process_cv):
    client = CustomVisionTrainingClient(in_process_cv.url,
                                        ApiKeyCredentials(in_headers={"Training-key": in_process_cv.training_key}))
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(lambda n: client.create_project(f"parallel-{n}").id, range(20)))
    assert ids <= {p.id for p in client.get_projects()} and len(ids) == 20
