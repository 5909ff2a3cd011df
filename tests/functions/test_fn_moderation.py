"""Content moderation with Computer Vision 3.2 adult/racy/gore scores, replayed from a recorded cassette.

The cassette's answer is Microsoft's official example (adult 0.0934, racy 0.0686, gore 0.0129; see
specs/computervision-v3.2/SOURCE.md), so each test sets the policy's bands around those scores. Custom Vision and
Azurite stay live (loopback requests pass through vcrpy); any other request not in the cassette fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import vcr
from conftest import scene

from cvops.errors import ConfigurationError
from functions.config import load_config

CASSETTE = Path(__file__).resolve().parent / "cassettes" / "moderation_analyze_adult.yaml"
FAKE_ENDPOINT = "https://fake-vision.cognitiveservices.azure.com/"


@pytest.fixture
def moderated_env(function_env):
    function_env.set(VISION_MODERATION_ENDPOINT=FAKE_ENDPOINT, VISION_MODERATION_KEY="not-a-real-key")
    replay = vcr.VCR(record_mode="none", ignore_localhost=True)
    with replay.use_cassette(str(CASSETTE), allow_playback_repeats=True) as cassette:
        function_env.cassette = cassette
        yield function_env


def route(env, policy: dict, name: str = "m.jpg") -> dict:
    env.set(CVOPS_POLICY=json.dumps({"version": "mod", **policy}))
    env.upload(name, scene("beach", seed=6))
    return env.deliver(name).record


def test_scores_under_the_shipped_bands_let_the_classification_decide(moderated_env):
    moderated_env.set(CVOPS_POLICY="policy.yaml")
    moderated_env.upload("ok.jpg", scene("beach", seed=6))
    record = moderated_env.deliver("ok.jpg").record
    assert record["outcome"] == "accepted" and record["tags"] == ["beach"]
    assert record["moderation"]["adult"] == pytest.approx(0.093435, abs=1e-6)
    assert record["moderation"]["flags"] == {"adult": False, "racy": False, "gore": False}
    assert moderated_env.cassette.play_count == 1


def test_an_adult_score_above_the_reject_band_rejects_the_image(moderated_env):
    record = route(moderated_env, {"moderation": {"adult": {"reject_above": 0.09, "review_from": 0.05}}})
    assert record["outcome"] == "rejected" and record["tags"] == []
    assert record["reasons"][0] == {"code": "moderation_reject", "message": "adult score 0.093 is above 0.09",
                                    "tag": "adult", "score": pytest.approx(0.093435, abs=1e-6), "limit": 0.09}
    assert moderated_env.names("rejected") == ["m.jpg", "m.jpg.cvops.json"]


def test_a_racy_score_in_the_review_band_sends_an_accepted_image_to_review(moderated_env):
    record = route(moderated_env, {"moderation": {"racy": {"reject_above": 0.5, "review_from": 0.06}}})
    assert record["outcome"] == "review" and record["tags"] == ["beach"]
    assert [r["code"] for r in record["reasons"]] == ["moderation_review", "tag_passes"]
    assert moderated_env.names("review") == ["m.jpg", "m.jpg.cvops.json"]


def test_a_moderation_endpoint_without_bands_in_the_policy_is_a_configuration_error(function_env):
    function_env.set(VISION_MODERATION_ENDPOINT=FAKE_ENDPOINT, VISION_MODERATION_KEY="k",
                     CVOPS_POLICY=json.dumps({"version": "no-bands"}))
    with pytest.raises(ConfigurationError) as caught:
        load_config()
    assert caught.value.setting == "VISION_MODERATION_ENDPOINT"
