"""The review core on what the real Function App writes: images routed to review by the registered trigger (local
service, Azurite) are listed with the app's record, decided once, moved, and their app records left unchanged."""

from __future__ import annotations

import json

import pytest
from fn_helpers import CLASSES

from devkit import scenes
from functions.records import RECORD_SCHEMA
from pipelines.review import decisions, items
from pipelines.review.items import ReviewConfig

pytestmark = [pytest.mark.emulator, pytest.mark.azurite]

ALL_TO_REVIEW = json.dumps({"version": "all-review", "classification_type": "multiclass", "default_threshold": 0.999,
                            "review_band": 0.999, "no_tag_passes": "review"})


def test_images_the_app_sent_to_review_are_decided_once_and_moved(function_env):
    function_env.set(CVOPS_POLICY=ALL_TO_REVIEW)
    shots = scenes.dataset(list(CLASSES), 1, seed=41, size=(256, 192))
    names = ["shop/<img src=x onerror=alert(1)>.jpg", "plain.jpg", "rtl\u202egpj.jpg"]
    for name, shot in zip(names, shots, strict=True):
        function_env.upload(name, shot.data)
        assert function_env.deliver(name).record["outcome"] == "review"
    records_before = function_env.records()
    config = ReviewConfig.from_environ(function_env.settings)

    waiting = items.list_waiting(function_env.blob_service, config)
    assert sorted(i.source_name for i in waiting) == sorted(names)
    for item in waiting:
        assert item.model["iteration_id"] and item.model["publish_name"]
        assert {tag for tag, _ in item.scores} == set(CLASSES) and item.top_tag in CLASSES
        assert item.reason and item.arrived is not None and item.classification_type == "multiclass"
        data, kind = items.read_image(function_env.blob_service, item)
        assert kind == "image/jpeg" and data

    chosen = {}
    for i, item in enumerate(waiting):
        tag = CLASSES[i % len(CLASSES)]
        chosen[item.source_name] = tag
        assert decisions.decide(function_env.blob_service, config, item.key, reviewer="ann", tags=[tag]).applied
        assert decisions.decide(function_env.blob_service, config, item.key, reviewer="bob",
                                tags=[tag]).already_decided
    assert function_env.names("review") == []
    accepted = [n for n in function_env.names("accepted") if not n.endswith(".cvops.json")]
    assert len(accepted) == 3
    assert items.list_waiting(function_env.blob_service, config) == []
    # The app's result records are unchanged; the decisions sit beside them under reviews/.
    assert [r for r in function_env.records() if "schema" in r and r["schema"] == RECORD_SCHEMA] == records_before
    assert len([n for n in function_env.names("results") if n.startswith("reviews/")]) == 3
    # Delivering the same blobs again (the host's at-least-once) routes nothing new into review.
    for name in names:
        assert function_env.deliver(name).duplicate
    assert items.list_waiting(function_env.blob_service, config) == []
