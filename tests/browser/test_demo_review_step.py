"""The demo's review step: its reviewer answers by how the demo drew each image, pressing the keys a person presses in
the page (the tag's initial or number, x, s), and every answer becomes exactly one decision."""

from __future__ import annotations

import pytest

from devkit import scenes
from devkit.demo_review import REJECT, decide_in_browser, review_truth
from pipelines.review import decisions

pytestmark = pytest.mark.azurite


def test_the_demo_reviewer_answers_by_how_each_image_was_drawn():
    incoming = [("beach_1.jpg", b"", "beach"), ("ambiguous/beach+forest_0.jpg", b"", "ambiguous: beach + forest"),
                ("large/over-4mb.png", b"", "over 4 MB: shrunk, then classified"), ("bad/notes.jpg", b"", "bad: text")]
    assert review_truth(incoming, scenes.CLASSES) == {
        "beach_1.jpg": "beach", "ambiguous/beach+forest_0.jpg": "beach", "large/over-4mb.png": REJECT,
        "bad/notes.jpg": REJECT}


def test_the_demo_decides_every_waiting_image_in_the_page_once(world, serve, browser, tmp_path):
    photo = scenes.dataset(["forest"], 1, seed=3, size=(320, 240))[0].data
    tagged = world.add("ambiguous/beach+forest_0.jpg", {"forest": 0.55, "beach": 0.4, "city": 0.05}, data=photo)
    rejected = world.add("large/over-4mb.png", {"mountain": 0.6, "city": 0.3, "beach": 0.1}, data=photo)
    unknown = world.add("not-drawn-by-the-demo.jpg", {"city": 0.6, "beach": 0.4}, data=photo)
    truth = {"ambiguous/beach+forest_0.jpg": "beach", "large/over-4mb.png": REJECT}
    app = serve("demo-reviewer")

    decided = decide_in_browser(app.url, truth, screenshot=tmp_path / "page.png", browser=browser)

    assert [(d["name"], d["model"], d["answer"], d["key"]) for d in decided] == [
        ("ambiguous/beach+forest_0.jpg", "forest", "beach", "b"),
        ("large/over-4mb.png", "mountain", REJECT, "x"),
        ("not-drawn-by-the-demo.jpg", "city", "skipped", "s"),
    ]
    first = decisions.read_decision(world.blob_service, world.config, tagged["key"])
    assert (first["reviewer"], first["tags"], first["agreed"]) == ("demo-reviewer", ["beach"], False)
    assert decisions.read_decision(world.blob_service, world.config, rejected["key"])["decision"] == "rejected"
    assert decisions.read_decision(world.blob_service, world.config, unknown["key"]) is None
    assert (tmp_path / "page.png").stat().st_size > 5_000
