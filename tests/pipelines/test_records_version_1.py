"""Records written before schema cvops.result/2 (no ``blob.slice``, no luminance or EXIF in ``image``) are still read:
by the review page's listing and by ``cvops monitor``, which count them as they did."""

from __future__ import annotations

import pytest

from functions import naming
from functions.store import BlobStore
from pipelines import monitor
from pipelines.review import items

pytestmark = pytest.mark.azurite

V2_ONLY_IMAGE_FIELDS = ("luminance_mean", "luminance_std", "luminance_from", "exif")


def as_version_1(record: dict) -> dict:
    """The record as version 1 wrote it: the same fields, without those version 2 added."""
    old = {**record, "schema": "cvops.result/1", "blob": {k: v for k, v in record["blob"].items() if k != "slice"}}
    if old.get("image"):
        old["image"] = {k: v for k, v in old["image"].items() if k not in V2_ONLY_IMAGE_FIELDS}
    return old


def test_a_version_1_record_is_listed_for_review_and_counted_by_the_monitor(review_world):
    record = review_world.add("site-a/cam-1/old.jpg", {"beach": 0.6, "city": 0.4})
    old = as_version_1({**record, "image": {"format": "JPEG", "width": 640, "height": 480, "bytes": 20_000}})
    review = review_world.config.review
    BlobStore(review_world.blob_service).put_json(review.container,
                                                  naming.sidecar_name(naming.copy_name(review, "site-a/cam-1/old.jpg")),
                                                  old)

    waiting = items.list_waiting(review_world.blob_service, review_world.config)

    assert [(w.source_name, w.key) for w in waiting] == [("site-a/cam-1/old.jpg", record["key"])]
    aggregate = monitor.Aggregate(every="day", by="prefix")
    assert monitor.feed(aggregate, [old, record]) == 0
    (slices,) = aggregate.periods.values()
    assert slices["site-a/"].images == 2
    assert sum(slices["site-a/"].histograms["width"]) == 1          # the v1 record's width is counted
    assert sum(slices["site-a/"].histograms["luminance_mean"]) == 0  # and its absent luminance adds nothing
    by_camera = monitor.Aggregate(every="day", by="camera")
    monitor.feed(by_camera, [old])
    assert set(next(iter(by_camera.periods.values()))) == {monitor.ALL, "(no EXIF camera)"}
