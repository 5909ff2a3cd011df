"""Fakes shared by the tests of cvops.pacing, cvops.failures and cvops.retry: a clock that moves only when someone
sleeps, and service failures built exactly as the SDKs build them."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable

import requests
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException

from cvops import clients

ENDPOINT = "https://contoso-cv.cognitiveservices.azure.com"
SECRET = "0123456789abcdef0123456789abcdef"


# --- helpers ------------------------------------------------------------------------------------------------------

class FakeClock:
    """A monotonic clock that only moves when someone sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def http_response(status: int, body: dict | None = None, headers: dict | None = None, *, method: str = "POST",
                  url: str = f"{ENDPOINT}/customvision/v3.4-preview/training/projects",
                  key_header: str = "Training-Key") -> requests.Response:
    """A requests.Response as msrest receives it, with the request (and its key header) that produced it."""
    response = requests.Response()
    response.status_code = status
    response.reason = http.HTTPStatus(status).phrase
    response._content = json.dumps(body or {}).encode()
    response.headers.update({"Content-Type": "application/json", **(headers or {})})
    response.url = url
    response.request = requests.Request(method, url, headers={key_header: SECRET}).prepare()
    return response


def cv_error(status: int, code: str = "Unknown", message: str = "failed", headers: dict | None = None,
             **kwargs) -> CustomVisionErrorException:
    """Exactly what the training SDK raises: ``CustomVisionErrorException(self._deserialize, response)``."""
    client = clients.training_client(ENDPOINT, SECRET)
    return CustomVisionErrorException(client._deserialize,
                                      http_response(status, {"code": code, "message": message}, headers, **kwargs))


def raising(*failures: BaseException, result: object = "ok") -> Callable[[], object]:
    """A call that raises each failure in turn, then returns ``result``; counts its invocations."""
    remaining = list(failures)

    def fn() -> object:
        fn.calls += 1
        if remaining:
            raise remaining.pop(0)
        return result

    fn.calls = 0
    return fn


def closed_port() -> int:
    """A local port nobody listens on (bound, read, released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
