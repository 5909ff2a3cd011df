"""The review page's access rules without a socket: the token's strength (the rule said in the error, the token never
in it), the slowdown after wrong tokens, stateless CSRF tokens, per-server cookie names, loopback Host headers, and
error pages in words."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from werkzeug.test import Client

from cvops.errors import ConfigurationError
from pipelines.review import access
from pipelines.review.access import GuessThrottle
from pipelines.review.items import ReviewItem
from pipelines.review.web import ReviewApp, host_allowed, listen_options, loopback_hosts

KEY = "0123456789abcdef0123456789abcdef"
BASE = "http://127.0.0.1:8765"


@pytest.mark.parametrize("token", ["aaaaaaaaaaaaaaaa", "a" * 40, "abababababababababababababababab",
                                   "Password1Password1Pass", "0123456789" * 3, "short-but-Mixed-9"])
def test_a_weak_token_is_refused_with_the_rule_and_never_its_value(token):
    with pytest.raises(ConfigurationError) as refused:
        listen_options("0.0.0.0", 0, reviewer="alice", token=token, allow_remote=True)
    message = f"{refused.value} {refused.value.hint}"
    assert refused.value.setting == "--token"
    assert "at least 128 bits" in message and "22 characters" in message and "different characters" in message
    assert token not in message and token[:12] not in message


@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(32), lambda: secrets.token_urlsafe(16),
                                  lambda: secrets.token_hex(16), lambda: "kP3vX9qL2mZ7wR4tN8bY1cF6"])
def test_generated_and_strong_chosen_tokens_are_accepted(make):
    token = make()
    assert access.token_problem(token) is None
    assert listen_options("0.0.0.0", 0, reviewer="alice", token=token, allow_remote=True).token == token


def test_the_rules_numbers_are_what_the_estimate_gives():
    assert access.token_bits("aB3" * 7 + "x") >= 128 > access.token_bits("aB3" * 7)  # 22 mixed: 131 bits, 21: 125
    assert access.token_bits("a1" * 12 + "b") >= 128 > access.token_bits("a1" * 12)  # 25 lower+digits: 129, 24: 124


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_wrong_tokens_earn_a_doubling_wait_per_address_capped_and_cleared_by_the_right_one():
    clock = Clock()
    throttle = GuessThrottle(clock)
    waits = [throttle.failed("203.0.113.7") for _ in range(12)]
    assert waits == [0, 0, 0, 0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert throttle.wait("203.0.113.7") == 30 and throttle.wait("203.0.113.8") == 0  # another address: no wait
    clock.now += 31
    assert throttle.wait("203.0.113.7") == 0
    throttle.succeeded("203.0.113.7")
    assert throttle.failed("203.0.113.7") == 0  # counting starts again
    clock.now += GuessThrottle.FORGET + 100
    assert throttle.wait("203.0.113.7") == 0


def test_an_ipv6_guesser_counts_as_its_whole_64():
    throttle = GuessThrottle(Clock())
    for n in range(5):
        throttle.failed(f"2001:db8:1:2::{n + 1}")
    assert throttle.wait("2001:db8:1:2::ffff") > 0 and throttle.wait("2001:db8:1:3::1") == 0
    assert access.client_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_csrf_tokens_are_stateless_per_session_and_per_server():
    one, two = secrets.token_bytes(32), secrets.token_bytes(32)
    sid = access.new_session_id()
    assert access.csrf_token(one, sid) == access.csrf_token(one, sid)
    assert access.csrf_token(one, sid) != access.csrf_token(two, sid)  # a restart: old forms are refused
    assert access.csrf_token(one, sid) != access.csrf_token(one, access.new_session_id())
    assert access.session_id_valid(sid) and not access.session_id_valid("x" * 43 + "\n")


def test_cookie_names_carry_the_port_and_the_host_prefix_over_https():
    assert access.cookie_name("token", 8765, https=False) == "cvops_review_token_8765"
    assert access.cookie_name("session", 9000, https=True) == "__Host-cvops_review_session_9000"
    assert access.access_cookie_value("kP3vX9qL2mZ7wR4tN8bY1cF6") != "kP3vX9qL2mZ7wR4tN8bY1cF6"


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8765", True), ("localhost:8765", True), ("[::1]:8765", True), ("127.0.0.2:8765", True),
    ("127.255.0.9:8765", True), ("127.0.0.2:9999", False), ("evil.example:8765", False), ("127.0.0.2", False),
    ("10.0.0.1:8765", False), ("[::1:8765", False), ("localhost.evil.example:8765", False),
])
def test_any_loopback_address_with_the_pages_port_is_its_own_host(host, allowed):
    assert host_allowed(host, loopback_hosts(8765)) is allowed


def _item() -> ReviewItem:
    return ReviewItem(key=KEY, copy="review/a.jpg", source_name="a.jpg", etag='"1"', content_type="image/jpeg",
                      arrived=datetime(2026, 11, 30, 4, 0, tzinfo=UTC), scores=(("beach", 0.7), ("city", 0.3)),
                      reason="beach 0.70 is in the review band", model={}, classification_type="multiclass",
                      top_tag="beach", top_score=0.7, known_tags=("beach", "city"))


class BrokenApi:
    def list_waiting(self, blob_service, config):
        return {}["no such key"]


class OneItemApi:
    def __init__(self) -> None:
        self.decided: list[str] = []

    def list_waiting(self, blob_service, config):
        return [_item()]

    def decide(self, blob_service, config, key, **kwargs):
        self.decided.append(key)
        return SimpleNamespace(status="applied", decision={"decision": "accepted", "tags": kwargs["tags"]})


def test_an_error_page_says_what_happened_in_words_never_the_exceptions_name():
    client = Client(ReviewApp(None, None, reviewer="alice", api=BrokenApi(), allowed_hosts=loopback_hosts(8765)))
    answer = client.get("/queue", base_url=BASE)
    assert answer.status_code == 500
    assert "KeyError" not in answer.text and "no such key" not in answer.text
    assert "500 Internal Server Error" in answer.text and "terminal that runs cvops review serve" in answer.text
    assert 'id="recover" href="/queue"' in answer.text and "/static/recover.js" in answer.text
    missing = client.get("/nope", base_url=BASE)
    assert missing.status_code == 404 and "There is no such page here." in missing.text


def test_many_cookie_less_requests_leave_a_reviewers_form_valid():
    api = OneItemApi()
    client = Client(ReviewApp(None, None, reviewer="alice", api=api, allowed_hosts=loopback_hosts(8765)))
    page = client.get(f"/item/{KEY}", base_url=BASE)
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    for _ in range(250):
        Client(client.application).get("/favicon.ico", base_url=BASE)  # a fresh cookie jar each time
    answer = client.post(f"/item/{KEY}/decide", data={"tag": "beach", "csrf": csrf}, base_url=BASE,
                         headers={"Origin": BASE})
    assert answer.status_code == 303 and api.decided == [KEY]
