"""The review page driven in headless Chromium: keyboard decisions, two reviewers racing, hostile names rendered inert,
a reload mid-way, forged posts refused, the token, and a laptop-sized screenshot (docs/review-page.png)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from devkit import scenes
from functions import naming
from pipelines.review import decisions
from pipelines.review.web import ReviewApi

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOT = ROOT / "docs" / "review-page.png"
ITEM_URL = re.compile(r".*/item/[0-9a-f]{32}$")
LAPTOP = {"width": 1366, "height": 768}


def _pictures(n: int, seed: int = 5) -> list[bytes]:
    """Real scene photos (the page shows them; a reviewer could not decide on a 32x24 colour)."""
    return [s.data for s in scenes.dataset(("beach", "forest", "city"), max(1, n // 3 + 1), seed=seed,
                                           size=(640, 480))][:n]


def _decision(world, key: str) -> dict | None:
    return decisions.read_decision(world.blob_service, world.config, key)


def _decisions(world) -> list[str]:
    return [n for n in world.names("results") if n.startswith("reviews/")]


def _key_in(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _flash(page) -> str:
    return " ".join(page.locator(".flash").all_inner_texts())


def _wait_moved(page, key: str) -> None:
    """Wait for the page to leave item ``key`` (its decision answered and redirected)."""
    page.wait_for_function("k => !location.pathname.endsWith(k)", arg=key, timeout=15_000)
    page.wait_for_load_state()


def test_keyboard_decides_tags_rejects_skips_and_moves(world, serve, context):
    photos = _pictures(4)
    first = world.add("shelf/a.jpg", {"beach": 0.71, "city": 0.2, "forest": 0.09}, data=photos[0])
    second = world.add("shelf/b.jpg", {"forest": 0.62, "city": 0.3, "beach": 0.08}, data=photos[1])
    third = world.add("shelf/c.jpg", {"city": 0.55, "forest": 0.4, "beach": 0.05}, data=photos[2])
    fourth = world.add("shelf/d.jpg", {"beach": 0.5, "forest": 0.45, "city": 0.05}, data=photos[3],
                       classification_type="multilabel")
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)
    assert page.url.endswith(f"/item/{first['key']}")  # the queue starts at the oldest
    assert page.locator("button.pick").all_inner_texts() == ["1\nb\nbeach", "2\nc\ncity", "3\nf\nforest"]
    assert page.locator(".reason").inner_text().startswith("beach 0.71 is in the review band")
    assert page.locator("header .who").inner_text() == "reviewing as alice"

    page.keyboard.press("ArrowRight")  # arrows move without deciding
    page.wait_for_url(f"**/item/{second['key']}")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(f"**/item/{first['key']}")

    page.keyboard.press("c")  # the tag's initial: city, although the model said beach
    _wait_moved(page, first["key"])
    assert page.url.endswith(f"/item/{second['key']}") and "shelf/a.jpg: tagged city" in _flash(page)
    assert world.names("accepted") == ["city/shelf/a.jpg", "city/shelf/a.jpg.cvops.json"]
    decided = _decision(world, first["key"])
    assert (decided["reviewer"], decided["tags"], decided["decision"], decided["agreed"]) == (
        "alice", ["city"], "accepted", False)
    assert world.read("accepted", "city/shelf/a.jpg") == photos[0]

    page.keyboard.press("x")  # reject
    _wait_moved(page, second["key"])
    assert "shelf/b.jpg: rejected" in _flash(page)
    assert world.names("rejected") == ["shelf/b.jpg", "shelf/b.jpg.cvops.json"]
    assert _decision(world, second["key"])["decision"] == "rejected"

    assert page.url.endswith(f"/item/{third['key']}")
    page.keyboard.press("s")  # skip: nothing decided, the next image
    page.wait_for_url(f"**/item/{fourth['key']}")
    assert _decision(world, third["key"]) is None

    # Multilabel: keys toggle, Enter confirms (with none picked, Enter says so and posts nothing).
    assert page.locator("#decide").get_attribute("data-multilabel") == "true"
    page.keyboard.press("Enter")
    assert "pick at least one tag" in _flash(page) and _decision(world, fourth["key"]) is None
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.keyboard.press("3")
    page.keyboard.press("f")
    assert page.locator("input[name=tag]:checked").evaluate_all("els => els.map(e => e.value)") == ["beach", "forest"]
    page.keyboard.press("Enter")
    _wait_moved(page, fourth["key"])
    assert _decision(world, fourth["key"])["tags"] == ["beach", "forest"]
    assert {"beach/shelf/d.jpg", "forest/shelf/d.jpg"} <= set(world.names("accepted"))
    assert world.names("review") == ["shelf/c.jpg", "shelf/c.jpg.cvops.json"]  # only the skipped one waits
    assert len(_decisions(world)) == 3
    assert context.dialogs == []


class HeldDecisions(ReviewApi):
    """The real review API, but each decide waits until ``parties`` decisions are in flight: both reviewers' posts
    then reach storage together, a race rather than a turn."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__()
        self.barrier = barrier

    def decide(self, *args, **kwargs):
        self.barrier.wait(timeout=20)
        return super().decide(*args, **kwargs)


def test_two_reviewers_racing_on_one_image_make_one_decision_and_the_other_is_told_who(world, serve, browser):
    record = world.add("race/one.jpg", {"beach": 0.7, "city": 0.3}, data=_pictures(1)[0])
    barrier = threading.Barrier(2)
    pages = {}
    contexts = []
    for reviewer in ("alice", "bob"):
        app = serve(reviewer, api=HeldDecisions(barrier))
        ctx = browser.new_context(viewport=LAPTOP)
        contexts.append(ctx)
        pages[reviewer] = ctx.new_page()
        pages[reviewer].goto(app.url)
        assert pages[reviewer].url.endswith(f"/item/{record['key']}")
    try:
        pages["alice"].keyboard.press("b")  # both posts leave before either is answered
        pages["bob"].keyboard.press("c")
        for page in pages.values():
            page.wait_for_url(re.compile(r".*/$"), timeout=20_000)  # queue empty: the home page
        decided = _decision(world, record["key"])
        winner, loser = ("alice", "bob") if decided["reviewer"] == "alice" else ("bob", "alice")
        assert _decisions(world) == [f"reviews/{record['key']}.json"]
        assert "race/one.jpg: tagged" in _flash(pages[winner])
        told = _flash(pages[loser])
        assert f"already decided by {winner} at " in told and "your choice was not recorded" in told
        tag = decided["tags"][0]
        assert tag == ("beach" if winner == "alice" else "city")
        assert world.names("accepted") == [f"{tag}/race/one.jpg", f"{tag}/race/one.jpg.cvops.json"]
        assert world.names("review") == []
    finally:
        for ctx in contexts:
            ctx.close()


HOSTILE = '<img src=x onerror="alert(1)">\'"\u202egpj.exe\nline2 <script>alert(2)</script>.jpg'
HOSTILE_TAG = '"><svg onload=alert(3)>'


def test_a_hostile_blob_name_and_tag_are_rendered_inert_and_shown_escaped(world, serve, context):
    record = world.add(HOSTILE, {"beach": 0.6, HOSTILE_TAG: 0.4}, data=_pictures(1)[0])
    app = serve("alice")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app.url)
    assert page.url.endswith(f"/item/{record['key']}")  # the URL names the key, never the blob
    shown = naming.printable(HOSTILE)
    assert "\\u202e" in shown and "\\n" in shown
    assert page.locator("h1.name").inner_text() == shown  # as text, with the override and newline visible as escapes
    assert page.locator("img[src='x']").count() == 0 and page.locator("svg").count() == 0
    assert page.locator("script").count() == 1  # the page's own, from /static
    assert page.locator("button.pick").nth(0).inner_text().endswith(HOSTILE_TAG)
    page.goto(app.url + "queue")
    assert page.locator("a.name").inner_text() == shown
    assert page.locator("img[src='x']").count() == 0
    page.go_back()
    page.keyboard.press("1")  # the hostile tag sorts first ('"' < 'b'): decided by its number
    _wait_moved(page, record["key"])
    decided = _decision(world, record["key"])
    assert decided["tags"] == [HOSTILE_TAG]
    copy = naming.copy_name(world.config.accepted, HOSTILE, HOSTILE_TAG)
    assert copy in world.names("accepted")
    assert context.dialogs == [] and errors == []


class SlowDecisions(ReviewApi):
    """The real review API with a decision that takes a while: time for the reviewer to reload mid-way. ``started``
    is set once the server is handling the post (a reload before that cancels the post in the browser, and then
    there is rightly no first decision: the test waits for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def decide(self, *args, **kwargs):
        self.started.set()
        time.sleep(3)  # ample: the reload must be answered before the decision starts, even on a busy machine
        return super().decide(*args, **kwargs)


def test_a_reload_mid_way_and_a_second_press_make_no_second_decision(world, serve, context):
    record = world.add("reload/one.jpg", {"beach": 0.7, "city": 0.3}, data=_pictures(1)[0])
    other = world.add("reload/two.jpg", {"city": 0.6, "beach": 0.4}, data=_pictures(2)[1])
    slow = SlowDecisions()
    app = serve("alice", api=slow)
    page = context.new_page()
    page.goto(f"{app.url}item/{record['key']}")
    with page.expect_request(lambda request: request.method == "POST"):
        page.keyboard.press("b")  # the post is sent; the reviewer reloads before its answer
    assert slow.started.wait(timeout=15)  # the server has it (a reload any sooner would cancel it in the browser)
    page.goto(page.url)  # (Page.reload would reload the pending post; a person's F5 loads the page they see)
    assert page.url.endswith(f"/item/{record['key']}")
    deadline = time.monotonic() + 15
    while _decision(world, record["key"]) is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the first post still completes on the server
    assert _decision(world, record["key"]) is not None
    page.keyboard.press("c")  # the reloaded page still showed the image: a second press, another tag
    _wait_moved(page, record["key"])
    assert "already decided by you" in _flash(page)
    assert _decisions(world) == [f"reviews/{record['key']}.json"]
    assert _decision(world, record["key"])["tags"] == ["beach"]
    assert world.names("accepted") == ["beach/reload/one.jpg", "beach/reload/one.jpg.cvops.json"]
    # Back to the decided image (history, a bookmark): the page says who decided and moves on.
    page.goto(f"{app.url}item/{record['key']}")
    assert page.url.endswith(f"/item/{other['key']}")
    assert "that image was decided by you at " in _flash(page) and "(beach)" in _flash(page)
    assert _decisions(world) == [f"reviews/{record['key']}.json"]


def test_a_forged_post_without_the_csrf_token_or_from_another_origin_is_refused(world, serve, context):
    record = world.add("forged/one.jpg", {"beach": 0.7, "city": 0.3}, data=_pictures(1)[0])
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)  # the context has a session cookie now, as a reviewer's browser would
    target = f"{app.url}item/{record['key']}/decide"
    origin = app.url.rstrip("/")

    no_token = context.request.post(target, form={"tag": "beach"}, headers={"Origin": origin}, max_redirects=0)
    assert no_token.status == 403 and "This page is out of date" in no_token.text()
    csrf = page.locator("input[name=csrf]").get_attribute("value")
    wrong_token = context.request.post(target, form={"tag": "beach", "csrf": csrf[::-1]}, headers={"Origin": origin},
                                       max_redirects=0)
    assert wrong_token.status == 403
    elsewhere = context.request.post(target, form={"tag": "beach", "csrf": csrf},
                                     headers={"Origin": "http://evil.example"}, max_redirects=0)
    assert elsewhere.status == 403 and "another origin" in elsewhere.text()
    as_get = context.request.get(target, max_redirects=0)
    assert as_get.status == 405  # decisions are POST only

    # A real cross-site form in the browser: another origin (about:blank's is opaque), auto-submitted.
    attacker = context.new_page()
    attacker.set_content(f'<form method="post" action="{target}"><input name="tag" value="beach">'
                         f'<input name="csrf" value="{csrf}"></form>')
    with attacker.expect_navigation() as navigation:
        attacker.evaluate("document.forms[0].submit()")
    assert navigation.value.status == 403
    assert _decisions(world) == [] and world.names("accepted") == []

    ok = context.request.post(target, form={"tag": "beach", "csrf": csrf}, headers={"Origin": origin}, max_redirects=0)
    assert ok.status == 303  # the same post from the page's origin with its token is a decision
    assert _decision(world, record["key"])["tags"] == ["beach"]


def test_security_headers_and_images_typed_by_their_bytes(world, serve, context):
    record = world.add("typed/page.jpg", {"beach": 0.7}, data=b"<html><script>alert(4)</script></html>",
                       content_type="text/html")
    good = world.add("typed/photo.jpg", {"beach": 0.7}, data=_pictures(1)[0])
    app = serve("alice")
    page = context.new_page()
    answer = page.goto(app.url + "queue")
    headers = answer.headers
    assert "default-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in headers[
        "content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    image = context.request.get(f"{app.url}image/{good['key']}")
    assert image.headers["content-type"] == "image/jpeg" and image.headers["x-content-type-options"] == "nosniff"
    html = context.request.get(f"{app.url}image/{record['key']}")
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in html.headers["content-security-policy"]
    assert context.dialogs == []


def test_a_token_is_required_when_given_and_leaves_the_address_bar(world, serve, context):
    world.add("token/one.jpg", {"beach": 0.7}, data=_pictures(1)[0])
    token = "kP3vX9qL2mZ7wR4tN8bY1cF6"
    app = serve("alice", token=token)
    page = context.new_page()
    assert page.goto(app.url).status == 403
    assert page.goto(f"{app.url}queue?token=wrong-{token}").status == 403
    page.goto(f"{app.url}queue?token={token}")
    page.wait_for_url(f"{app.url}queue")
    assert page.locator("main.queue").count() == 1
    cookie = next(c for c in context.cookies() if c["name"] == f"cvops_review_token_{app.server.port}")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != token
    page.goto(app.url)
    assert ITEM_URL.match(page.url)


def test_the_page_fits_a_laptop_screen_and_the_screenshot_is_taken(world, serve, context, tmp_path):
    photos = scenes.dataset((("beach", "forest"),), 4, seed=21, size=(800, 600))
    scores = {"beach": 0.74, "forest": 0.61, "city": 0.04, "mountain": 0.02}
    for i, photo in enumerate(photos):
        world.add(f"2026-11-30/camera-7/IMG_04{11 + i}.jpg", scores, data=photo.data)
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)
    page.keyboard.press("f")  # one decided: the screenshot shows what the page says after a decision
    page.wait_for_url("**/item/*")
    page.wait_for_function("() => document.querySelector('.flash.ok') !== null")
    page.wait_for_function("() => document.querySelector('.picture img').complete")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= LAPTOP["width"]  # no sideways scrolling
    for selector in ("button.pick >> nth=-1", "#reject", "#skip", ".picture img"):
        box = page.locator(selector).bounding_box()
        assert box and box["y"] + box["height"] <= LAPTOP["height"], selector  # every control on the first screen
    shot = tmp_path / "review-page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("CVOPS_UPDATE_SCREENSHOT"):  # the README's picture: 256 colours keep it small in the repository
        from PIL import Image

        with Image.open(shot) as picture:
            picture.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(SCREENSHOT, optimize=True)
    (ROOT / "reports").mkdir(exist_ok=True)
    shutil.copyfile(shot, ROOT / "reports" / "review-page.png")


def test_the_stats_page_shows_the_numbers_review_stats_computes(world, serve, context):
    keys = [world.add(f"stats/{i}.jpg", {"beach": 0.6 + i / 100, "city": 0.3}, data=_pictures(1)[0])["key"]
            for i in range(3)]
    world.add("stats/waiting.jpg", {"city": 0.7, "beach": 0.2}, data=_pictures(1)[0])
    for key, tags, reject in ((keys[0], ["beach"], False), (keys[1], ["beach"], False), (keys[2], [], True)):
        assert decisions.decide(world.blob_service, world.config, key, reviewer="dana", tags=tags, reject=reject).applied
    hand_made = {**_decision(world, keys[0]), "key": "d" * 32, "tags": "beach"}  # tags as one string: malformed
    world.blob_service.get_blob_client(world.containers["results"], f"reviews/{'d' * 32}.json").upload_blob(
        json.dumps(hand_made))
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url + "stats")
    assert page.locator("h1").inner_text() == "3 decisions, 2 agreed with the model's top tag (67%)"
    row = page.locator("tbody tr").first.locator("td").all_inner_texts()
    assert row[:6] == ["beach", "3", "2", "1", "0", "67%"]
    assert page.locator("header a.count").first.inner_text() == "1 waiting"
    assert f"decision record reviews/{'d' * 32}.json is malformed" in page.locator(".malformed").inner_text()
