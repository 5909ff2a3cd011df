"""An image sent to review by moderation shows, in the review page, the scores (Computer Vision 3.2) or severities
(Content Safety) the service answered and the rule that fired, each through ``printable``.

The moderation answers are real: the dev kit's band images (devkit.moderation_scenes) sent with the official SDKs to
the local service's stand-ins, and the decision is the seed policy's (policy.yaml; its Content Safety bands as
docs/policy.md gives them). Only the review item is written the way the app writes it (review_helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops import retry
from devkit import moderation_scenes
from functions import moderation as moderation_api
from functions.naming import printable
from functions.policy import CONTENT_SAFETY, decide, load_policy, parse_policy

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parent.parent.parent

CONTENT_SAFETY_BANDS = {"version": "seed-cs", "moderation": {"Sexual": {"reject_from": 4, "review_from": 2},
                                                             "Violence": {"reject_from": 4, "review_from": 2}}}


def _moderated(local_cv, api: str, data: bytes):
    client = moderation_api.build_client(api, local_cv.endpoint, local_cv.prediction_key)
    return moderation_api.moderate(api, client, data=data, pacer=None, what="moderate test image",
                                   policy=retry.RetryPolicy())


def test_item_sent_to_review_by_adult_score_shows_the_scores_and_the_band_that_fired(world, serve, context, local_cv):
    data = moderation_scenes.generate("adult", "review", seed=3)
    result = _moderated(local_cv, "computer-vision", data)
    policy = load_policy(str(ROOT / "policy.yaml"), ROOT, moderation_api="computer-vision")
    decision = decide(policy, {"forest": 0.93, "beach": 0.07}, result.scores)
    assert decision.outcome == "review" and decision.reasons[0].code == "moderation_review"
    item = world.add("uploads/user-photo.jpg", {"forest": 0.93, "beach": 0.07}, data=data,
                     moderation=result.to_dict(), decision=decision)

    page = context.new_page()
    page.goto(serve("alice").url)
    page.wait_for_url(f"**/item/{item['key']}")

    shown = page.locator(".moderation").inner_text()
    adult, racy, gore = (result.scores[k] for k in ("adult", "racy", "gore"))
    assert shown == f"computer-vision: adult {adult:.3f} · racy {racy:.3f} · gore {gore:.3f}"
    assert 0.4 <= adult <= 0.7
    assert f"adult score {adult:.3f} is at or above 0.4" in page.locator(".reason").inner_text()


def test_item_sent_to_review_by_content_safety_shows_the_severities_and_the_band_that_fired(
        world, serve, context, local_cv):
    data = moderation_scenes.generate("gore", "review", seed=4)
    result = _moderated(local_cv, CONTENT_SAFETY, data)
    policy = parse_policy(CONTENT_SAFETY_BANDS, moderation_api=CONTENT_SAFETY)
    decision = decide(policy, {"forest": 0.9}, result.scores)
    item = world.add("uploads/clip-frame.jpg", {"forest": 0.9, "beach": 0.1}, data=data,
                     moderation=result.to_dict(), decision=decision)

    page = context.new_page()
    page.goto(serve("alice").url)
    page.wait_for_url(f"**/item/{item['key']}")

    assert result.scores["Violence"] == 2
    assert page.locator(".moderation").inner_text() == ("content-safety: Sexual severity 0 · Violence severity 2 · "
                                                          "Hate severity 0 · SelfHarm severity 0")
    assert "Violence severity 2 is at or above 2" in page.locator(".reason").inner_text()


def test_moderation_fields_of_a_forged_record_are_shown_escaped_never_as_markup_or_control_characters(
        world, serve, context, local_cv):
    data = moderation_scenes.generate("adult", "review", seed=5)
    result = _moderated(local_cv, "computer-vision", data)
    forged_api = "<b>cv</b>\u202e\n"
    decision = decide(load_policy(str(ROOT / "policy.yaml"), ROOT, moderation_api="computer-vision"),
                      {"forest": 0.9}, result.scores)
    item = world.add("uploads/x\u202egpj.exe", {"forest": 0.9, "beach": 0.1}, data=data,
                     moderation={**result.to_dict(), "api": forged_api, "gore": "NaN"}, decision=decision)

    page = context.new_page()
    page.goto(serve("alice").url)
    page.wait_for_url(f"**/item/{item['key']}")

    shown = page.locator(".moderation").inner_text()
    adult, racy = result.scores["adult"], result.scores["racy"]
    assert shown == printable(f"{forged_api}: adult {adult:.3f} · racy {racy:.3f}")   # gore "NaN": no number, left out
    assert page.locator(".moderation b").count() == 0 and "\u202e" not in shown
    assert page.locator("h1.name").inner_text() == printable("uploads/x\u202egpj.exe")
