"""The review page records what the reviewer meant and shows data as data, in headless Chromium: Enter on each control
does what that control says (Multiclass and Multilabel), every one of 12 tags has a key, invisible and bidi characters
in tags, reasons and model names are shown as escapes, a malformed record is an item that says why while the rest of
the queue works, the image is visible on a phone (docs/review-page-phone.png), and the last decision can be undone."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from devkit import scenes
from functions import naming
from pipelines.review import decisions
from pipelines.review.undo import undo_blob_name, undone_key

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parent.parent.parent
PHONE = {"width": 390, "height": 844}
PHONE_SHOT = ROOT / "docs" / "review-page-phone.png"


def _photos(n: int, seed: int = 7) -> list[bytes]:
    return [s.data for s in scenes.dataset(("beach", "forest", "city"), max(1, n // 3 + 1), seed=seed,
                                           size=(640, 480))][:n]


def _decision(world, key: str) -> dict | None:
    return decisions.read_decision(world.blob_service, world.config, key)


def _flash(page) -> str:
    return " ".join(page.locator(".flash").all_inner_texts())


def _wait_moved(page, key: str) -> None:
    page.wait_for_function("k => !location.pathname.endsWith(k)", arg=key, timeout=15_000)
    page.wait_for_load_state()


# --- Enter does what the focused control says ---------------------------------------------------------------------

MULTICLASS = [("a tag button", "button.pick >> nth=1", ("accepted", ["city"])),
              ("Reject", "#reject", ("rejected", [])),
              ("Skip", "#skip", None),
              ("next", "#next", None)]
MULTILABEL = [("Reject", "#reject", ("rejected", [])),
              ("Skip", "#skip", None),
              ("next", "#next", None),
              ("Confirm", "#confirm", ("accepted", ["beach"])),
              ("a tag's checkbox", "input[name=tag] >> nth=1", ("accepted", ["beach"]))]


@pytest.mark.parametrize(("kind", "control", "selector", "expected"),
                         [("multiclass", *c) for c in MULTICLASS] + [("multilabel", *c) for c in MULTILABEL],
                         ids=[f"multiclass-{c[0]}" for c in MULTICLASS] + [f"multilabel-{c[0]}" for c in MULTILABEL])
def test_enter_on_a_focused_control_does_what_that_control_says(world, serve, context, kind, control, selector,
                                                                expected):
    photos = _photos(2)
    first = world.add("enter/one.jpg", {"beach": 0.6, "city": 0.3, "forest": 0.1}, data=photos[0],
                      classification_type=kind)
    second = world.add("enter/two.jpg", {"city": 0.6, "beach": 0.4}, data=photos[1], classification_type=kind)
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)
    assert page.url.endswith(f"/item/{first['key']}")
    if kind == "multilabel":
        page.keyboard.press("1")  # beach picked: a Confirm would accept it
        assert page.locator("input[name=tag]:checked").count() == 1
    page.locator(selector).focus()
    page.keyboard.press("Enter")
    _wait_moved(page, first["key"])
    decided = _decision(world, first["key"])
    if expected is None:  # Skip and next move on and record nothing
        assert page.url.endswith(f"/item/{second['key']}") and decided is None
        assert world.names("accepted") == [] and world.names("rejected") == []
    else:
        assert decided is not None, control
        assert (decided["decision"], decided["tags"]) == expected, control


# --- keys for every tag -------------------------------------------------------------------------------------------

TWELVE = [f"tag{i:02d}" for i in range(1, 13)]


def test_twelve_tags_by_keyboard(world, serve, context):
    photos = _photos(3)
    scores = {tag: round(0.3 - i / 100, 2) for i, tag in enumerate(TWELVE)}
    items = [world.add(f"twelve/{i}.jpg", scores, data=photos[i]) for i in range(3)]
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)
    keys = page.locator("button.pick").evaluate_all("els => els.map(e => e.getAttribute('data-keys'))")
    assert keys == [*"1234567890", "q", "w"]  # every tag has a key, none is x, s or u
    for item, key, tag in zip(items, ("0", "q", "w"), TWELVE[9:], strict=True):
        assert page.url.endswith(f"/item/{item['key']}")
        page.keyboard.press(key)
        _wait_moved(page, item["key"])
        assert _decision(world, item["key"])["tags"] == [tag]


# --- data shown as data -------------------------------------------------------------------------------------------

def _rewrite_sidecar(world, name: str, change) -> None:
    sidecar = naming.sidecar_name(naming.copy_name(world.config.review, name))
    client = world.blob_service.get_blob_client(world.containers["review"], sidecar)
    record = json.loads(client.download_blob().readall())
    change(record)
    client.upload_blob(json.dumps(record), overwrite=True)


def test_invisible_and_bidi_characters_in_tags_reasons_and_model_names_are_shown_as_escapes(world, serve, context):
    spoof = "beach\u200b"
    record = world.add("spoof/one.jpg", {spoof: 0.6, "beach": 0.3}, data=_photos(1)[0])

    def change(r):
        r["model"]["publish_name"] = "prod\u202enoisrev"

    _rewrite_sidecar(world, "spoof/one.jpg", change)
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)
    assert page.url.endswith(f"/item/{record['key']}")
    labels = page.locator("button.pick .tag").all_inner_texts()
    assert labels == ["beach", naming.printable(spoof)] and "\\u200b" in labels[1]  # two tags that look different
    assert "\\u200b" in page.locator(".reason").inner_text()
    assert "\\u202e" in page.locator(".model").inner_text()
    shown = page.locator("aside").inner_text()
    assert "\u200b" not in shown and "\u202e" not in shown  # nothing invisible reaches the reader
    page.goto(app.url + "queue")
    assert "\\u200b" in page.locator("main.queue tbody").inner_text()
    page.go_back()
    page.keyboard.press("2")  # the form still posts the tag itself, not its escape
    _wait_moved(page, record["key"])
    assert _decision(world, record["key"])["tags"] == [spoof]


def test_a_malformed_record_is_an_item_that_says_why_and_the_rest_of_the_queue_works(world, serve, context):
    photos = _photos(2)
    bad = world.add("malformed/bad.jpg", {"beach": 0.6, "city": 0.3}, data=photos[0], suggested=("mountain",))
    good = world.add("malformed/good.jpg", {"city": 0.6, "beach": 0.4}, data=photos[1])
    app = serve("alice")
    page = context.new_page()
    queue = page.goto(app.url + "queue")
    assert queue.status == 200 and "suggested tag mountain has no score" in page.locator("tbody").inner_text()
    page.goto(app.url)
    assert page.url.endswith(f"/item/{bad['key']}")
    assert "suggested tag mountain has no score" in page.locator(".malformed").inner_text()
    assert page.locator("#decide").count() == 0  # nothing to decide with
    page.keyboard.press("x")
    page.keyboard.press("1")
    page.keyboard.press("s")
    page.wait_for_url(f"**/item/{good['key']}")
    assert _decision(world, bad["key"]) is None
    page.keyboard.press("c")
    _wait_moved(page, good["key"])
    assert _decision(world, good["key"])["tags"] == ["city"]
    assert world.names("review") == ["malformed/bad.jpg", "malformed/bad.jpg.cvops.json"]


# --- a phone ------------------------------------------------------------------------------------------------------

def test_on_a_phone_the_image_is_visible_and_a_tap_decides(world, serve, browser, tmp_path):
    photos = scenes.dataset((("beach", "forest"),), 2, seed=21, size=(800, 600))
    records = [world.add(f"phone/IMG_{i}.jpg", {"beach": 0.74, "forest": 0.61, "city": 0.04}, data=p.data)
               for i, p in enumerate(photos)]
    ctx = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=1)
    try:
        page = ctx.new_page()
        page.goto(serve("alice").url)
        page.wait_for_function("() => document.querySelector('.picture img').complete")
        box = page.locator(".picture img").bounding_box()
        assert box and box["width"] >= 200 and box["height"] >= 150, box
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        shot = tmp_path / "review-page-phone.png"
        page.screenshot(path=str(shot))
        if os.environ.get("CVOPS_UPDATE_SCREENSHOT"):
            from PIL import Image

            with Image.open(shot) as picture:
                picture.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(PHONE_SHOT, optimize=True)
        (ROOT / "reports").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "reports" / "review-page-phone.png")
        page.locator("button.pick", has_text="forest").tap()
        _wait_moved(page, records[0]["key"])
        assert _decision(world, records[0]["key"])["tags"] == ["forest"]
    finally:
        ctx.close()


# --- undo ---------------------------------------------------------------------------------------------------------

def test_undo_brings_the_last_decision_back_once_and_a_second_undo_is_refused(world, serve, context):
    photos = _photos(2)
    record = world.add("undo/one.jpg", {"beach": 0.6, "city": 0.4}, data=photos[0])
    world.add("undo/two.jpg", {"city": 0.6, "beach": 0.4}, data=photos[1])
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)
    page.keyboard.press("c")  # the wrong key: city
    _wait_moved(page, record["key"])
    first = _decision(world, record["key"])
    assert first["tags"] == ["city"] and page.locator("#undo").count() == 1
    csrf = page.locator("form.undo input[name=csrf]").get_attribute("value")
    page.keyboard.press("u")
    new_key = undone_key(record["key"])
    page.wait_for_url(re.compile(f".*/item/{new_key}$"))
    assert "decision undone" in _flash(page) and page.locator("#undo").count() == 0
    assert "undo/one.jpg" in world.names("review") and world.names("accepted") == []
    assert _decision(world, record["key"]) == first  # the decision is never edited: a new record says it was undone
    undo = json.loads(world.read("results", undo_blob_name(world.config, record["key"])))
    assert (undo["decision"], undo["undoes"], undo["reviewer"], undo["new_key"]) == (
        "undo", record["key"], "alice", new_key)

    again = context.request.post(f"{app.url}item/{record['key']}/undo", form={"csrf": csrf},
                                 headers={"Origin": app.url.rstrip("/")}, max_redirects=0)
    assert again.status == 303  # the replayed undo changes nothing and says why
    page.goto(app.url + "queue")
    assert "already undone" in _flash(page)
    page.goto(f"{app.url}item/{new_key}")
    page.keyboard.press("b")  # decided again, this time as meant
    _wait_moved(page, new_key)
    in_force = decisions.list_decisions(world.blob_service, world.config)
    assert [(d["key"], d["tags"]) for d in in_force] == [(new_key, ["beach"])]
    assert world.names("accepted") == ["beach/undo/one.jpg", "beach/undo/one.jpg.cvops.json"]
