"""The review page's rules as pure functions: which key picks which tag, where a POST may come from, who may listen
where, what an image's bytes say it is, and which image comes next."""

from __future__ import annotations

import pytest

from cvops.errors import ConfigurationError
from pipelines.review.web import (
    after_decision,
    image_type,
    key_bindings,
    listen_options,
    loopback_host,
    neighbours,
    same_origin,
    token_matches,
)


def test_each_tag_gets_its_number_and_its_initial_when_no_other_tag_or_command_shares_it():
    assert key_bindings(["beach", "city", "forest"]) == {"beach": ("1", "b"), "city": ("2", "c"), "forest": ("3", "f")}
    assert key_bindings(["cat", "cow", "sea", "x-ray"]) == {"cat": ("1",), "cow": ("2",), "sea": ("3",), "x-ray": ("4",)}
    assert key_bindings(['"><svg>', "Ölfeld", "Beach"]) == {'"><svg>': ("1",), "Ölfeld": ("2",), "Beach": ("3", "b")}


def test_every_tag_of_twelve_or_more_has_a_key_of_its_own_and_none_is_a_command_or_another_tags_initial():
    tags = [f"t{i}" for i in range(9)] + ["quail", "zebra", "zoo"]
    bindings = key_bindings(tags)
    assert bindings["t8"] == ("9",) and bindings["quail"] == ("0", "q")
    assert bindings["zebra"] == ("w",) and bindings["zoo"] == ("e",)  # the second row skips q: quail's initial
    many = [f"tag{i:02d}" for i in range(33)]
    keys = [k for tag in many for k in key_bindings(many)[tag]]
    assert all(key_bindings(many)[tag] for tag in many) and len(keys) == len(set(keys))
    assert not {"x", "s", "u"} & set(keys)


@pytest.mark.parametrize(("origin", "referer", "allowed"), [
    ("http://127.0.0.1:8765", None, True),
    ("HTTP://127.0.0.1:8765", None, True),
    (None, "http://127.0.0.1:8765/item/abc", True),
    ("http://127.0.0.1:8766", None, False),
    ("http://localhost:8765", None, False),
    ("https://127.0.0.1:8765", None, False),
    ("http://evil.example", "http://127.0.0.1:8765/", False),  # the Origin decides when given
    ("null", None, False),
    (None, None, False),
])
def test_a_post_must_come_from_this_origin(origin, referer, allowed):
    assert same_origin("http://127.0.0.1:8765/", origin, referer) is allowed


def test_tokens_compare_in_constant_time_and_never_match_nothing():
    assert token_matches("a" * 20, "a" * 20)
    assert not token_matches("a" * 20, "a" * 19 + "b")
    assert not token_matches(None, None) and not token_matches("a" * 20, None) and not token_matches("a" * 20, "")
    assert not token_matches("a" * 20, "é" * 20)  # not ASCII: compared as bytes, no TypeError


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_no_flag_and_no_token(host):
    assert loopback_host(host)
    options = listen_options(host, 0, reviewer="alice", token=None, allow_remote=False)
    assert options.token is None and not options.remote


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "review.example.com"])
def test_any_other_host_needs_allow_remote_and_then_a_token(host):
    with pytest.raises(ConfigurationError) as refused:
        listen_options(host, 0, reviewer="alice", token=None, allow_remote=False)
    assert refused.value.setting == "--host" and "--allow-remote" in str(refused.value)
    generated = listen_options(host, 0, reviewer="alice", token=None, allow_remote=True, new_token=lambda: "g" * 43)
    assert generated.token == "g" * 43 and generated.generated_token and generated.remote
    given = listen_options(host, 0, reviewer="alice", token="kP3vX9qL2mZ7wR4tN8bY1cF6", allow_remote=True)
    assert given.token == "kP3vX9qL2mZ7wR4tN8bY1cF6" and not given.generated_token


@pytest.mark.parametrize("token", ["short", "has space in it 123", 'quote"quote"quote', "semi;colon;semi;colon",
                                   "nön-ascii-token-123", "a" * 16, "a" * 64, "t0ken-" + "x" * 26,
                                   "secret-token-123456"])
def test_a_weak_or_cookie_breaking_token_is_refused(token):
    with pytest.raises(ConfigurationError) as refused:
        listen_options("0.0.0.0", 0, reviewer="alice", token=token, allow_remote=True)
    assert refused.value.setting == "--token"


def test_the_reviewer_is_a_printable_name():
    assert listen_options("127.0.0.1", 0, reviewer=" alice ", token=None, allow_remote=False).reviewer == "alice"
    for bad in ("", "al\nice", "x" * 65, "\u202eecila"):
        with pytest.raises(ConfigurationError):
            listen_options("127.0.0.1", 0, reviewer=bad or " ", token=None, allow_remote=False)


def test_images_are_typed_by_their_bytes_not_their_claimed_type():
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert image_type(b"GIF89a...") == "image/gif"
    assert image_type(b"BM....") == "image/bmp"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"<html><script>alert(1)</script>") is None
    assert image_type(b"") is None


def test_moving_through_the_queue_wraps_and_a_decision_moves_forward():
    assert neighbours(["a", "b", "c"], "a") == ("c", "b")
    assert neighbours(["a", "b", "c"], "c") == ("b", "a")
    assert neighbours(["a"], "a") == (None, None)
    assert neighbours([], "a") == (None, None)
    assert after_decision(["a", "b", "c"], "b", ["a", "c"]) == "c"  # forward, not back to the skipped "a"
    assert after_decision(["a", "b", "c"], "c", ["a"]) == "a"  # wraps
    assert after_decision(["a", "b"], "b", ["a", "z"]) == "a"
    assert after_decision(["a"], "a", ["z"]) == "z"  # only new arrivals left
    assert after_decision(["a"], "a", []) is None
