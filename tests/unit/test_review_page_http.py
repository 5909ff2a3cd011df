"""The review page's HTTP answers, in process (werkzeug's test client) over a stand-in review API: what is refused,
where redirects may lead, what every answer carries. The browser tests (tests/browser) drive the same app for real."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from werkzeug.test import Client

from pipelines.review.items import ReviewItem
from pipelines.review.web import CSP, ReviewApp, loopback_hosts

KEY = "0123456789abcdef0123456789abcdef"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def _item(name: str = "a.jpg", key: str = KEY) -> ReviewItem:
    return ReviewItem(key=key, copy=f"review/{name}", source_name=name, etag='"1"', content_type="text/html",
                      arrived=datetime(2026, 11, 30, 4, 0, tzinfo=UTC), scores=(("beach", 0.7), ("city", 0.3)),
                      reason="beach 0.70 is in the review band", model={"publish_name": "prod", "iteration_id": "it"},
                      classification_type="multiclass", top_tag="beach", top_score=0.7,
                      known_tags=("beach", "city"))


class FakeApi:
    def __init__(self, waiting: list[ReviewItem], data: bytes = JPEG) -> None:
        self.waiting, self.data, self.decided = waiting, data, []

    def list_waiting(self, blob_service, config):
        return list(self.waiting)

    def get_item(self, blob_service, config, key):
        return next((i for i in self.waiting if i.key == key), None)

    def read_image(self, blob_service, item):
        return self.data, item.content_type

    def decide(self, blob_service, config, key, **kwargs):
        self.decided.append((key, kwargs))
        raise AssertionError("no decision may reach the API in these tests")

    def read_decision(self, blob_service, config, key):
        return None


def _client(api: FakeApi, *, token: str | None = None) -> Client:
    app = ReviewApp(None, None, reviewer="alice", token=token, api=api,
                    allowed_hosts=None if token else loopback_hosts(8765))
    return Client(app)


BASE = "http://127.0.0.1:8765"


def test_every_answer_carries_the_security_headers_even_a_redirect_and_an_error():
    client = _client(FakeApi([_item()]))
    for path, status in (("/", 303), ("/queue", 200), (f"/item/{KEY}", 200), ("/nope", 404), ("/item/../etc", 404)):
        answer = client.get(path, base_url=BASE)
        assert answer.status_code == status, path
        assert answer.headers["Content-Security-Policy"] in (CSP, "default-src 'none'; sandbox")
        assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["X-Content-Type-Options"] == "nosniff"


def test_a_key_that_is_not_32_hex_digits_never_reaches_the_api():
    api = FakeApi([_item()])
    client = _client(api)
    for path in ("/item/ABC", f"/item/{KEY.upper()}", f"/image/{KEY}x", "/image/%2e%2e"):
        assert client.get(path, base_url=BASE).status_code == 404
    assert client.post(f"/item/{KEY[:-1]}/decide", base_url=BASE).status_code == 404
    assert api.decided == []


def test_another_host_name_for_loopback_is_refused_without_a_token():
    client = _client(FakeApi([_item()]))
    assert client.get("/queue", base_url="http://evil.example:8765").status_code == 403
    assert client.get("/queue", base_url="http://localhost:8765").status_code == 200
    assert client.get("/queue", base_url="http://127.0.0.1:9999").status_code == 403  # another port: another origin


@pytest.mark.parametrize("path", ["//evil.example/x", "/nope", "/\\evil.example"])
def test_the_token_redirect_stays_on_the_page(path):
    token = "kP3vX9qL2mZ7wR4tN8bY1cF6"
    answer = _client(FakeApi([_item()]), token=token).get(path, query_string={"token": token}, base_url=BASE)
    assert answer.status_code == 200 and '<meta http-equiv="refresh" content="0; url=/">' in answer.text


def test_a_post_without_session_csrf_or_origin_is_refused_before_any_decision():
    api = FakeApi([_item()])
    client = _client(api)
    assert client.post(f"/item/{KEY}/decide", data={"tag": "beach"}, base_url=BASE).status_code == 403
    assert client.post(f"/item/{KEY}/decide", data={"tag": "beach"}, base_url=BASE,
                       headers={"Origin": BASE}).status_code == 403
    assert client.get(f"/item/{KEY}/decide", base_url=BASE).status_code == 405
    assert api.decided == []


def test_an_image_is_served_as_its_bytes_say_and_html_as_an_attachment():
    answer = _client(FakeApi([_item()])).get(f"/image/{KEY}", base_url=BASE)
    assert answer.headers["Content-Type"] == "image/jpeg" and answer.headers["Content-Disposition"] == "inline"
    page = b"<html><script>alert(1)</script></html>"
    answer = _client(FakeApi([_item()], data=page)).get(f"/image/{KEY}", base_url=BASE)
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["Content-Disposition"].startswith("attachment")
    assert answer.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_names_reasons_and_tags_are_escaped_in_the_html():
    hostile = _item('<img src=x onerror=alert(1)>"\u202e.jpg')
    hostile = ReviewItem(**{**hostile.__dict__, "reason": "<b>bold</b>", "scores": (('"><svg onload=alert(2)>', 0.9),),
                            "known_tags": ('"><svg onload=alert(2)>',)})
    html = _client(FakeApi([hostile])).get(f"/item/{KEY}", base_url=BASE).get_data(as_text=True)
    assert "<img src=x" not in html and "<svg" not in html and "<b>bold" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "\\u202e" in html and "\u202e" not in html
    assert 'value="&#34;&gt;&lt;svg onload=alert(2)&gt;"' in html
