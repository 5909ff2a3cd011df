"""Content Safety's input limits, checked before the call (functions.content_safety.prepare: bytes in, bytes or a
refusal out, no service)."""

from __future__ import annotations

import io

from PIL import Image

from devkit import moderation_scenes
from functions.content_safety import MAX_SIDE, MIN_SIDE, Prepared, prepare
from functions.vision import ImageRefused


def encoded(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    moderation_scenes.render("adult", "review", size=size).save(out, format=fmt)
    return out.getvalue()


def test_an_image_within_the_limits_is_sent_as_it_is():
    data = encoded((320, 240), "JPEG")
    assert prepare(data) == Prepared(data)


def test_each_side_from_50_to_2048_pixels_passes_unchanged():
    for size in ((MIN_SIDE, MIN_SIDE), (MAX_SIDE, MIN_SIDE)):
        data = encoded(size)
        assert prepare(data) == Prepared(data), size


def test_a_side_over_2048_is_shrunk_keeping_the_aspect_and_says_so():
    prepared = prepare(encoded((4096, 1024)))
    assert isinstance(prepared, Prepared)
    assert Image.open(io.BytesIO(prepared.data)).size == (2048, 512)
    assert prepared.changes == ("shrunk_to_2048x512_for_content_safety",)


def test_a_side_under_50_or_one_that_shrinking_would_take_under_50_is_refused_with_why():
    small = prepare(encoded((49, 300)))
    thin = prepare(encoded((4200, 100)))
    assert isinstance(small, ImageRefused) and small.code == "ImageTooSmall" and "49x300" in small.message
    assert isinstance(thin, ImageRefused) and thin.code == "ImageTooSmall" and "4200x100" in thin.message
    assert small.service == thin.service == "content_safety"


def test_a_format_content_safety_does_not_read_is_refused_naming_it():
    out = io.BytesIO()
    moderation_scenes.render("adult", "pass", size=(64, 64)).save(out, format="ICO")
    refused = prepare(out.getvalue())
    assert isinstance(refused, ImageRefused) and "ICO" in refused.message
