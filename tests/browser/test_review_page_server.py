"""The review page's server under a hostile client, driven in headless Chromium: one silent TCP connection with TLS on
does not stop another reviewer; a flood of cookie-less requests does not turn the reviewer's next key press into a
refusal; a ``?token=`` link followed from another site opens the page; a refused form recovers with one key."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server

from pipelines.review import decisions, web
from tests.tls_certificates import self_signed

pytestmark = pytest.mark.azurite

TOKEN = "kP3vX9qL2mZ7wR4tN8bY1cF6"
LAPTOP = {"width": 1366, "height": 768}


def _decision(world, key: str) -> dict | None:
    return decisions.read_decision(world.blob_service, world.config, key)


@contextmanager
def _page(world, *, token: str | None = None, tls: tuple[str, str] | None = None) -> Iterator[web.RunningPage]:
    options = web.listen_options("127.0.0.1", 0, reviewer="alice", token=token, allow_remote=False,
                                 tls_cert=tls[0] if tls else None, tls_key=tls[1] if tls else None)
    page = web.start(world.blob_service, world.config, options)
    page.serve_in_thread()
    try:
        yield page
    finally:
        page.stop()


def test_a_silent_tcp_connection_with_tls_on_does_not_stop_another_reviewer(world, browser, tmp_path):
    record = world.add("tls/one.jpg", {"beach": 0.7, "city": 0.3})
    with _page(world, token=TOKEN, tls=self_signed(tmp_path)) as app:
        silent = socket.create_connection(("127.0.0.1", app.server.port))  # connects, never says hello
        context = browser.new_context(viewport=LAPTOP, ignore_https_errors=True)
        try:
            page = context.new_page()
            page.set_default_timeout(15_000)  # the old server answered nobody until the silent client left
            started = time.monotonic()
            page.goto(f"{app.url}?token={TOKEN}")
            page.wait_for_url(f"**/item/{record['key']}")
            page.keyboard.press("b")
            page.wait_for_url(lambda url: not url.endswith(record["key"]))
            decided = _decision(world, record["key"])
            assert decided is not None and decided["tags"] == ["beach"]
            took = time.monotonic() - started
            print(f"TLS page load and decision beside a silent connection: {took:.2f} s")
            assert took < 15  # the old server: never, while the silent connection stayed
        finally:
            context.close()
            silent.close()


def _bare_get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_250_cookie_less_requests_then_a_key_press_decides_normally(world, serve, context):
    record = world.add("flood/one.jpg", {"beach": 0.7, "city": 0.3})
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)
    page.wait_for_url(f"**/item/{record['key']}")
    page.wait_for_load_state("networkidle")  # the page's own image and icon requests are done before the flood
    for _ in range(250):  # anyone on the machine (or a page on another loopback port loading <img>s)
        assert _bare_get(app.server.port, "/favicon.ico") == 204
    page.keyboard.press("b")
    page.wait_for_url(lambda url: not url.endswith(record["key"]), timeout=15_000)
    assert "flood/one.jpg: tagged beach" in " ".join(page.locator(".flash").all_inner_texts())
    assert _decision(world, record["key"])["tags"] == ["beach"]


def test_250_images_loaded_by_a_page_on_another_loopback_port_do_not_refuse_the_next_key_press(world, serve, browser):
    record = world.add("flood/img.jpg", {"beach": 0.7, "city": 0.3})
    app = serve("alice")
    image = f"{app.url}image/{record['key']}"
    # crossorigin=anonymous: requests without the reviewer's cookies, each a new visitor to the old server
    hostile = _HtmlServer("".join(f'<img crossorigin="anonymous" src="{image}?n={n}">' for n in range(250)))
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = context.new_page()
        page.goto(app.url)
        page.wait_for_url(f"**/item/{record['key']}")
        other = context.new_page()
        other.goto(hostile.url)  # another origin (another port) in the reviewer's own browser
        other.wait_for_load_state("load")
        page.bring_to_front()
        page.keyboard.press("b")
        page.wait_for_url(lambda url: not url.endswith(record["key"]), timeout=15_000)
        assert _decision(world, record["key"])["tags"] == ["beach"]
    finally:
        context.close()
        hostile.stop()


class _HtmlServer:
    """One HTML page on another loopback port (another origin): what a hostile local page would serve."""

    def __init__(self, body: str, host: str = "127.0.0.1") -> None:
        html = f"<!doctype html><html><body>{body}</body></html>".encode()

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(html)))])
            return [html]

        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_token_link_followed_from_another_site_opens_the_page(world, browser):
    record = world.add("link/one.jpg", {"beach": 0.7, "city": 0.3})
    with _page(world, token=TOKEN) as app:
        # localhost and 127.0.0.1 are different sites: the link below is a cross-site navigation, whose redirects
        # do not carry a SameSite=Strict cookie set along the way.
        chat = _HtmlServer(f'<a id="go" href="{app.url}queue?token={TOKEN}">the review page</a>', host="localhost")
        context = browser.new_context(viewport=LAPTOP)
        try:
            page = context.new_page()
            page.goto(chat.url)
            page.click("#go")
            page.wait_for_url(f"{app.url}queue", timeout=15_000)
            assert page.locator("main.queue").count() == 1
            page.goto(app.url)
            page.wait_for_url(f"**/item/{record['key']}")
        finally:
            context.close()
            chat.stop()


def test_an_out_of_date_form_is_refused_in_words_and_r_reloads_the_queue(world, serve, context):
    record = world.add("stale/one.jpg", {"beach": 0.7, "city": 0.3})
    app = serve("alice")
    page = context.new_page()
    page.goto(app.url)
    page.wait_for_url(f"**/item/{record['key']}")
    page.evaluate("document.querySelector('input[name=csrf]').value = 'from-before-a-restart'")
    page.keyboard.press("b")
    page.wait_for_selector("body[data-view=error]")
    text = page.locator("main").inner_text()
    assert "403" in text and "This page is out of date" in text and "nothing was recorded" in text
    assert "CSRF" not in text and "Error" not in text.replace("Forbidden", "")
    assert _decision(world, record["key"]) is None
    page.keyboard.press("r")  # one key: the queue, by GET (not the stale form again)
    page.wait_for_url(f"{app.url}queue")
    page.goto(app.url)
    page.wait_for_url(f"**/item/{record['key']}")
    page.keyboard.press("b")
    page.wait_for_url(lambda url: not url.endswith(record["key"]), timeout=15_000)
    assert _decision(world, record["key"])["tags"] == ["beach"]
