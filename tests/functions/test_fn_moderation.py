"""Content moderation with Computer Vision 3.2 adult/racy/gore scores, replayed from a recorded cassette.

The committed cassette's answer is Microsoft's official example (adult 0.0934, racy 0.0686, gore 0.0129; see
specs/computervision-v3.2/SOURCE.md); re-recorded against Azure (record_moderation.py) it holds a real answer. Each
test reads the scores from the cassette and sets the policy's bands around them, so either recording passes. Custom
Vision and Azurite stay live (loopback requests pass through vcrpy); any other request not in the cassette fails.

``--record-mode=rewrite`` re-records the cassette first (against Azure when VISION_MODERATION_ENDPOINT/KEY are set),
then the tests replay it.
"""

from __future__ import annotations

import json
import os

import pytest
import vcr
from fn_helpers import scene
from record_moderation import CASSETTE, example_body, record_cassette, recorded_scores, serving

from cvops.errors import ConfigurationError
from functions.config import load_config
from tests.recording import FAKE_VISION_ENDPOINT, REDACTED
from tests.test_fixtures_hold_no_secrets import leaks_in

FAKE_ENDPOINT = FAKE_VISION_ENDPOINT + "/"


@pytest.fixture(scope="module")
def scores(request) -> dict[str, float]:
    """The scores the replay will give: re-recorded first when --record-mode asks for it."""
    if request.config.getoption("--record-mode") not in (None, "none"):
        record_cassette(CASSETTE, os.environ)
    return recorded_scores(CASSETTE)


@pytest.fixture
def moderated_env(function_env, scores):
    function_env.set(VISION_MODERATION_ENDPOINT=FAKE_ENDPOINT, VISION_MODERATION_KEY="not-a-real-key")
    replay = vcr.VCR(record_mode="none", ignore_localhost=True)
    with replay.use_cassette(str(CASSETTE), allow_playback_repeats=True) as cassette:
        function_env.cassette = cassette
        yield function_env


def route(env, policy: dict, name: str = "m.jpg") -> dict:
    env.set(CVOPS_POLICY=json.dumps({"version": "mod", **policy}))
    env.upload(name, scene("beach", seed=6))
    return env.deliver(name).record


def below(score: float) -> float:
    """A band limit just under a recorded score (rounded, as an operator would write it)."""
    return round(score * 0.9, 6)


def test_scores_under_the_shipped_bands_let_the_classification_decide(moderated_env, scores):
    moderated_env.set(CVOPS_POLICY="policy.yaml")
    moderated_env.upload("ok.jpg", scene("beach", seed=6))
    record = moderated_env.deliver("ok.jpg").record
    assert record["outcome"] == "accepted" and record["tags"] == ["beach"]
    assert record["moderation"]["adult"] == pytest.approx(scores["adult"], abs=1e-6)
    assert record["moderation"]["flags"] == {"adult": False, "racy": False, "gore": False}
    assert moderated_env.cassette.play_count == 1


def test_an_adult_score_above_the_reject_band_rejects_the_image(moderated_env, scores):
    limit = below(scores["adult"])
    record = route(moderated_env, {"moderation": {"adult": {"reject_above": limit, "review_from": limit / 2}}})
    assert record["outcome"] == "rejected" and record["tags"] == []
    assert record["reasons"][0] == {"code": "moderation_reject",
                                    "message": f"adult score {scores['adult']:.3f} is above {limit}",
                                    "tag": "adult", "score": pytest.approx(scores["adult"], abs=1e-6), "limit": limit}
    assert moderated_env.names("rejected") == ["m.jpg", "m.jpg.cvops.json"]


def test_a_racy_score_in_the_review_band_sends_an_accepted_image_to_review(moderated_env, scores):
    record = route(moderated_env, {"moderation": {"racy": {"reject_above": min(1.0, max(0.5, scores["racy"] * 2)),
                                                           "review_from": below(scores["racy"])}}})
    assert record["outcome"] == "review" and record["tags"] == ["beach"]
    assert [r["code"] for r in record["reasons"]] == ["moderation_review", "tag_passes"]
    assert moderated_env.names("review") == ["m.jpg", "m.jpg.cvops.json"]


def test_a_moderation_endpoint_without_bands_in_the_policy_is_a_configuration_error(function_env):
    function_env.set(VISION_MODERATION_ENDPOINT=FAKE_ENDPOINT, VISION_MODERATION_KEY="k",
                     CVOPS_POLICY=json.dumps({"version": "no-bands"}))
    with pytest.raises(ConfigurationError) as caught:
        load_config()
    assert caught.value.setting == "VISION_MODERATION_ENDPOINT"


def _only_interaction(cassette) -> dict:
    import yaml

    interactions = yaml.safe_load(cassette.read_text())["interactions"]
    assert len(interactions) == 1
    return interactions[0]


def test_recording_without_azure_settings_keeps_microsofts_official_example_and_the_sdks_request(tmp_path):
    cassette = tmp_path / "moderation.yaml"
    against, recorded = record_cassette(cassette, {"HOME": "/home/operator"})
    assert against == "example"
    fresh = _only_interaction(cassette)
    assert json.loads(fresh["response"]["body"]["string"]) == json.loads(example_body())
    assert recorded == recorded_scores(cassette) == {"adult": pytest.approx(0.093435, abs=1e-6),
                                                     "racy": pytest.approx(0.068613, abs=1e-6),
                                                     "gore": pytest.approx(0.012872, abs=1e-6)}
    request = fresh["request"]
    assert request["uri"] == (f"{FAKE_VISION_ENDPOINT}/vision/v3.2/analyze?visualFeatures=Adult&language=en"
                              "&model-version=latest")
    assert request["body"] is None and request["headers"]["Ocp-Apim-Subscription-Key"] == [REDACTED]
    assert leaks_in(cassette.read_text()) == []
    # The committed cassette is the same call: what the SDK sends today is what it replays.
    committed = _only_interaction(CASSETTE)["request"]
    assert (committed["method"], committed["uri"]) == (request["method"], request["uri"])


def test_recording_with_azure_settings_calls_that_endpoint_and_writes_only_the_fake_one(tmp_path):
    """No Azure here: a loopback stand-in plays the configured resource, answering with scores of its own so the
    cassette shows whose answer it recorded."""
    answer = json.loads(example_body())
    answer["adult"].update(adultScore=0.0021, racyScore=0.0042, goreScore=0.0007)
    key = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    cassette = tmp_path / "moderation.yaml"
    with serving(json.dumps(answer).encode()) as endpoint:
        against, _ = record_cassette(cassette, {"VISION_MODERATION_ENDPOINT": endpoint + "/",
                                                "VISION_MODERATION_KEY": key})
    text = cassette.read_text()
    assert against == "azure"
    assert recorded_scores(cassette) == {"adult": 0.0021, "racy": 0.0042, "gore": 0.0007}
    assert endpoint not in text and "127.0.0.1" not in text and key not in text
    assert _only_interaction(cassette)["request"]["uri"].startswith(f"{FAKE_VISION_ENDPOINT}/vision/v3.2/analyze?")


def test_recording_with_only_one_of_the_azure_settings_is_refused_naming_the_other(tmp_path):
    with pytest.raises(ValueError, match="VISION_MODERATION_KEY"):
        record_cassette(tmp_path / "c.yaml", {"VISION_MODERATION_ENDPOINT": FAKE_ENDPOINT})
    assert not (tmp_path / "c.yaml").exists()
