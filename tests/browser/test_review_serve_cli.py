"""`cvops review serve` as an operator starts it: a child process on the CLI's storage settings and the app's container
settings, printing its address once; loopback only unless told otherwise, and then only with the token."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parent.parent.parent


def _env(world, azurite) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CVOPS_", "AZURE_STORAGE"))}
    return {**env, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, **world.env(), "NO_COLOR": "1"}


@contextmanager
def _serving(world, azurite, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "review", "serve", "--port", "0", *args],
                            cwd=ROOT, env=_env(world, azurite), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("review page: http://"), (line, proc.stderr.read() if proc.poll() is not None else "")
        yield proc, line.split()[2]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _get(url: str, *, host: str | None = None, cookie: str | None = None) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Host": host} if host else {}
    if cookie:
        headers["Cookie"] = cookie
    connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
    response = connection.getresponse()
    response.read()
    return response


def test_serve_listens_on_loopback_and_refuses_a_rebound_host_name(world, azurite):
    world.add("cli/one.jpg", {"beach": 0.7, "city": 0.3})
    with _serving(world, azurite, "--reviewer", "carol") as (_, url):
        assert url.startswith("http://127.0.0.1:")
        home = _get(url)
        assert home.status == 303 and home.getheader("Location").startswith("/item/")
        item = _get(url.rstrip("/") + home.getheader("Location"))
        assert item.status == 200 and item.getheader("X-Frame-Options") == "DENY"
        assert _get(url, host="evil.example:80").status == 403  # DNS rebinding: another name for 127.0.0.1


def test_serve_refuses_a_network_address_without_allow_remote(world, azurite):
    proc = subprocess.run([sys.executable, "-m", "pipelines", "review", "serve", "--host", "0.0.0.0", "--port", "0"],
                          cwd=ROOT, env=_env(world, azurite), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "--host 0.0.0.0 is not a loopback address" in proc.stderr
    assert "--allow-remote" in proc.stderr


def test_serve_on_the_network_prints_a_generated_token_once_and_requires_it(world, azurite):
    world.add("cli/one.jpg", {"beach": 0.7, "city": 0.3})
    with _serving(world, azurite, "--host", "0.0.0.0", "--allow-remote") as (proc, url):
        parts = urlsplit(url)
        token = parts.query.removeprefix("token=")
        assert len(token) >= 32
        local = f"http://127.0.0.1:{parts.port}/"
        assert _get(local).status == 403
        assert _get(local + "?token=" + "x" * len(token)).status == 403
        entered = _get(f"{local}queue?token={token}")
        assert entered.status == 200 and entered.getheader("Referrer-Policy") == "no-referrer"
        cookie = entered.getheader("Set-Cookie").split(";")[0]
        assert "HttpOnly" in entered.getheader("Set-Cookie") and "SameSite=Strict" in entered.getheader("Set-Cookie")
        assert cookie.startswith(f"cvops_review_token_{parts.port}=") and token not in cookie
        assert _get(local + "queue", cookie=cookie).status == 200
        assert _get(local + "queue", cookie=cookie, host="any.name:1").status == 200  # the token guards, not the name
    log = proc.stderr.read()
    assert "GET /queue 200" in log
    assert token not in log and "x" * 10 not in log  # printed once, on stdout; the request log never carries it


def test_serve_on_a_port_in_use_says_so_in_one_line(world, azurite):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "pipelines", "review", "serve", "--port", str(port)], cwd=ROOT,
                              env=_env(world, azurite), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in proc.stderr and "--port" in proc.stderr
