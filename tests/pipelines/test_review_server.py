"""The review page's server against one hostile client, over real sockets: silent connections are closed on deadlines
(TLS handshake included) and cannot use up the descriptors or keep a reviewer out; bodies, request lines and paths
are bounded and clean; wrong tokens are slowed per address; two pages on one host keep their own cookies."""

from __future__ import annotations

import http.client
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from pipelines.review import decisions, web
from pipelines.review.access import GuessThrottle
from tests.tls_certificates import self_signed

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "kP3vX9qL2mZ7wR4tN8bY1cF6"
FAST = web.Limits(handshake_timeout=1.0, idle_timeout=1.0, max_connections=8)


@contextmanager
def _page(world, *, host: str = "127.0.0.1", token: str | None = None, tls: tuple[str, str] | None = None,
          limits: web.Limits = FAST) -> Iterator[web.RunningPage]:
    options = web.listen_options(host, 0, reviewer="alice", token=token, allow_remote=False,
                                 tls_cert=tls[0] if tls else None, tls_key=tls[1] if tls else None)
    page = web.start(world.blob_service, world.config, options, limits=limits)
    page.serve_in_thread()
    try:
        yield page
    finally:
        page.stop()


def _get(url: str, *, source: str | None = None, cookie: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10,
                                            source_address=(source, 0) if source else None)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                           headers={**(headers or {}), **({"Cookie": cookie} if cookie else {})})
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


def _raw(port: int, data: bytes, *, close_write: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def _closed_within(connection: socket.socket, seconds: float) -> float:
    """Seconds until the server closes ``connection`` (its read returns nothing); fails past ``seconds``."""
    started = time.monotonic()
    connection.settimeout(seconds)
    try:
        assert connection.recv(1) == b""
    except TimeoutError:
        pytest.fail(f"the server kept a silent connection open for more than {seconds} s")
    return time.monotonic() - started


def test_a_silent_connection_is_closed_after_the_idle_timeout_on_plain_http(review_world):
    with _page(review_world) as page, socket.create_connection(("127.0.0.1", page.server.port)) as silent:
        assert _closed_within(silent, 6) < 6
        assert _get(page.url + "favicon.ico")[0] == 204


def test_a_silent_tls_client_is_dropped_after_the_handshake_deadline_and_others_are_served_meanwhile(review_world,
                                                                                                     tmp_path):
    cert, key = self_signed(tmp_path)
    with _page(review_world, tls=(cert, key), limits=web.Limits(handshake_timeout=2.0, idle_timeout=30.0)) as page:
        silent = socket.create_connection(("127.0.0.1", page.server.port))
        try:
            started = time.monotonic()
            answer = requests.get(page.url + "favicon.ico", verify=cert, timeout=5)
            assert answer.status_code == 204 and time.monotonic() - started < 1.5  # not after the silent one
            assert _closed_within(silent, 8) < 8
        finally:
            silent.close()


def _env(world, azurite) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CVOPS_", "AZURE_STORAGE"))}
    return {**env, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, **world.env(), "NO_COLOR": "1"}


def _few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_a_flood_of_silent_connections_cannot_use_up_descriptors_or_keep_a_reviewer_out(review_world, azurite):
    """`cvops review serve` with 256 descriptors; 600 connections that never send anything (the old server ran out of
    descriptors and answered nobody); then a reviewer's request is answered at once."""
    review_world.add("flood/one.jpg", {"beach": 0.7, "city": 0.3})
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "review", "serve", "--port", "0"], cwd=ROOT,
                            env=_env(review_world, azurite), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_few_descriptors)
    held: list[socket.socket] = []
    try:
        line = proc.stdout.readline()
        assert line.startswith("review page: http://"), line
        url = line.split()[2]
        port = urlsplit(url).port
        for _ in range(600):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        started = time.monotonic()
        status, _, body = _get(url + "queue")
        assert status == 200 and "1 waiting for review" in body
        assert time.monotonic() - started < 5
        assert len(held) == 600
        open_fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        assert open_fds < 128, open_fds  # the cap (64 connections) and a few for the process itself
    finally:
        for s in held:
            s.close()
        proc.terminate()
        proc.wait(timeout=10)
    assert "Traceback" not in proc.stderr.read()


def _session(page: web.RunningPage, key: str) -> tuple[str, str]:
    """A browser's session cookie and the form's CSRF token, from the item page."""
    status, headers, body = _get(f"{page.url}item/{key}")
    assert status == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    return cookie, re.search(r'name="csrf" value="([^"]+)"', body).group(1)


def _chunked_post(page: web.RunningPage, key: str, cookie: str, body: bytes, *, finish: bool = True) -> bytes:
    origin = page.url.rstrip("/")
    head = (f"POST /item/{key}/decide HTTP/1.1\r\nHost: {urlsplit(page.url).netloc}\r\nOrigin: {origin}\r\n"
            f"Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192]) for i in range(0, len(body), 8192))
    return _raw(page.server.port, head + chunks + (b"0\r\n\r\n" if finish else b""))


def test_an_oversized_chunked_form_is_413_and_a_cut_one_decides_nothing(review_world):
    record = review_world.add("chunked/one.jpg", {"beach": 0.7, "city": 0.3})
    key = record["key"]
    with _page(review_world, limits=web.Limits()) as page:
        cookie, csrf = _session(page, key)
        form = f"csrf={csrf}&tag=beach&note=".encode()
        oversized = _chunked_post(page, key, cookie, form + b"a" * 100_000)
        assert oversized.startswith(b"HTTP/1.1 413 ")  # the old server cut it at 64 KB and decided
        cut = _chunked_post(page, key, cookie, form + b"aaaa", finish=False)  # the client leaves mid-body
        assert cut.startswith(b"HTTP/1.1 400 ")
        assert decisions.read_decision(review_world.blob_service, review_world.config, key) is None
        whole = _chunked_post(page, key, cookie, form + b"a" * 1000)  # a chunked form within the limit is a form
        assert whole.startswith(b"HTTP/1.1 303 ")
        assert decisions.read_decision(review_world.blob_service, review_world.config, key)["tags"] == ["beach"]


def test_a_body_trickled_a_byte_at_a_time_is_408_within_the_body_deadline(review_world):
    record = review_world.add("slow/one.jpg", {"beach": 0.7, "city": 0.3})
    key = record["key"]
    with _page(review_world, limits=web.Limits(body_timeout=2.0)) as page:
        cookie, csrf = _session(page, key)
        form = f"csrf={csrf}&tag=beach".encode()
        head = (f"POST /item/{key}/decide HTTP/1.1\r\nHost: {urlsplit(page.url).netloc}\r\n"
                f"Origin: {page.url.rstrip('/')}\r\nCookie: {cookie}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n").encode()
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", page.server.port), timeout=15) as slow:
            slow.sendall(head)
            answer = b""
            for byte in form:  # one byte every half second: each read well within the idle timeout
                try:
                    slow.sendall(bytes([byte]))
                except OSError:
                    break  # the server has answered and closed
                time.sleep(0.5)
                if time.monotonic() - started > 6:
                    break
            while chunk := slow.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
        assert time.monotonic() - started < 6  # the old server waited for the whole form, however slowly it came
        assert decisions.read_decision(review_world.blob_service, review_world.config, key) is None


def test_a_request_line_over_64_kb_is_414_with_no_traceback(review_world, capfd):
    with _page(review_world) as page:
        answer = _raw(page.server.port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 414 ")
        assert _get(page.url + "favicon.ico")[0] == 204  # and the server goes on
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out


def test_a_malformed_request_line_is_refused_without_quoting_it(review_world):
    with _page(review_world, token=TOKEN) as page:
        answer = _raw(page.server.port, f"GET /queue?token={TOKEN} HTTP/1.1 extra\r\n\r\n".encode())
        assert b"<h1>400 " in answer and TOKEN.encode() not in answer  # it quoted the line (as HTTP/0.9: no head)
        assert b"nothing was done" in answer


def test_a_line_break_in_the_path_is_400_and_nothing_is_echoed(review_world):
    with _page(review_world, token=TOKEN) as page:
        path = "/item/00000000000000000000000000000000%0D%0ASet-Cookie:%20x=1"
        status, headers, body = _get(f"{page.url.rstrip('/')}{path}?token={TOKEN}")
        assert status == 400  # the old server answered 500, its exception's text on the page
        assert "Set-Cookie" not in headers and "x=1" not in body and "Error:" not in body
        assert "control character" in body


def test_the_page_answers_on_any_loopback_address_it_listens_on(review_world):
    review_world.add("loop/one.jpg", {"beach": 0.7, "city": 0.3})
    with _page(review_world, host="127.0.0.2") as page:
        assert page.url.startswith("http://127.0.0.2:")
        status, _, body = _get(page.url + "queue")
        assert status == 200 and "1 waiting for review" in body  # the printed address works (it was a 403)
        port = page.server.port
        assert _get(page.url + "queue", headers={"Host": f"evil.example:{port}"})[0] == 403  # names still refused


def test_wrong_tokens_are_slowed_per_address_and_the_right_one_from_another_address_is_not(review_world):
    with _page(review_world, token=TOKEN) as page:
        local = f"http://127.0.0.1:{page.server.port}/"
        statuses, started = [], time.monotonic()
        while time.monotonic() - started < 3:
            status, headers, body = _get(f"{local}?token=wrong-{TOKEN}")
            statuses.append(status)
            assert TOKEN not in body and TOKEN not in str(headers)
        compared = statuses.count(403)
        assert statuses[:GuessThrottle.FREE] == [403] * GuessThrottle.FREE
        assert 429 in statuses and compared <= GuessThrottle.FREE + 3  # at most ~6 compared in 3 s (was 433 a second)
        status, headers, _ = _get(f"{local}?token={TOKEN}")
        assert status == 429 and int(headers["Retry-After"]) >= 1  # this address waits, even with the right token
        status, headers, _ = _get(f"{local}?token={TOKEN}", source="127.0.0.2")
        assert status == 200 and "Set-Cookie" in headers  # another address is not slowed at all


def test_two_pages_on_one_host_keep_their_own_cookies(review_world):
    other_token = "Zq3kP9xV2mT7wR4nL8bY1cF"
    review_world.add("two/one.jpg", {"beach": 0.7, "city": 0.3})
    with _page(review_world, token=TOKEN) as first, _page(review_world, token=other_token) as second, \
            requests.Session() as browser:
        assert browser.get(f"{first.url}?token={TOKEN}", timeout=10).status_code == 200
        assert browser.get(f"{second.url}?token={other_token}", timeout=10).status_code == 200
        # Cookies ignore ports: with one cookie name for both, signing into the second signed out of the first.
        assert browser.get(first.url + "queue", timeout=10).status_code == 200
        assert browser.get(second.url + "queue", timeout=10).status_code == 200
        names = {c.name for c in browser.cookies}
        assert {f"cvops_review_token_{first.server.port}", f"cvops_review_token_{second.server.port}"} <= names
        assert all(TOKEN not in c.value and other_token not in c.value for c in browser.cookies)


def test_a_tls_page_sets_host_prefixed_cookies(review_world, tmp_path):
    cert, key = self_signed(tmp_path)
    with _page(review_world, token=TOKEN, tls=(cert, key)) as page:
        answer = requests.get(f"{page.url}?token={TOKEN}", verify=cert, timeout=10)
        set_cookie = answer.headers["Set-Cookie"]
        assert set_cookie.startswith(f"__Host-cvops_review_token_{page.server.port}=")
        assert "Secure" in set_cookie and "Path=/" in set_cookie and "Domain" not in set_cookie
        context = ssl.create_default_context(cafile=cert)
        with socket.create_connection(("127.0.0.1", page.server.port)) as plain, \
                context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 403 ")  # no cookie: the token guards every path
