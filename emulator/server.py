"""The WSGI application (auth, latency, rate limits, faults, routing, errors) and a threaded server around it.

`serve(...)` runs the service in this process on a free port and returns a handle with `.url` and `.stop()`: what
tests and benchmarks use. `python -m emulator` (see `__main__.py`) runs the same thing from the command line.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import DEFAULT_PREDICTION_KEY, DEFAULT_TRAINING_KEY
from . import images as imagelib
from .exceptions import CustomVisionError, ServiceUnavailable, TooManyRequests, Unauthorized
from .fetch import DEFAULT_ALLOWED_HOSTS, UrlFetcher
from .learning_interface import Learning, ModuleLearning
from .models import CustomVisionBackend
from .moderation_errors import GatewayError, moderation_fault, moderation_throttled, server_error
from .moderation_responses import ModerationResponses
from .responses import CustomVisionResponses, Reply, for_version
from .store import Storage
from .throttle import FaultInjector, FixedWindowLimiter
from .training_worker import TrainingWorker
from .urls import MODERATION_PREFIXES, PREDICTION_VERSIONS, TRAINING_VERSIONS, build_url_map

log = logging.getLogger("emulator")

# What a request that no route matches is told: which API versions this service serves, and where.
SERVED = (f"This service serves Training {' and '.join(TRAINING_VERSIONS)} at /customvision/<version>/training and "
          f"Prediction {' and '.join(PREDICTION_VERSIONS)} at /customvision/<version>/prediction.")

MODERATION_APIS = ("vision", "contentsafety")

# Exceptions that a malformed request provokes in parsing code (a field of the wrong JSON type, a number out of range,
# a structure nested too deep). Each known cause is checked where it is read; this is the last line, so a cause not yet
# found answers 400 with an enum code instead of a 500 that the SDK's retry policy would repeat.
MALFORMED_INPUT_ERRORS = (TypeError, AttributeError, ValueError, KeyError, IndexError, RecursionError, OverflowError)

# Largest body accepted: a full batch of 64 images of 6 MB each, base64-encoded in JSON.
MAX_REQUEST_BYTES = 64 * imagelib.MAX_TRAINING_IMAGE_BYTES * 4 // 3 + 1024 * 1024


# Largest project package an import reads: a full S0 project (100,000 images) would not fit; a test's does.
MAX_PROJECT_PACKAGE_BYTES = 2**31


@dataclass
class ServiceConfig:
    """Everything `python -m emulator` can set, with the same defaults."""

    data_dir: str | Path | None = None  # None: in memory, nothing left behind
    training_key: str = DEFAULT_TRAINING_KEY
    prediction_key: str = DEFAULT_PREDICTION_KEY
    latency_ms: float = 0.0
    prediction_tps: float | None = None
    training_tps: float | None = None
    fault_rate: float = 0.0
    fault_every: int | None = None  # every N-th API call answers 503 (deterministic; wins over fault_rate)
    # The moderation APIs (Computer Vision 3.2 analyze, Content Safety image:analyze) on the same endpoint: their key
    # (Ocp-Apim-Subscription-Key; None: the prediction key, as one multi-service resource has one key) and rates.
    moderation_key: str | None = None
    vision_tps: float | None = None  # Computer Vision S1: 10 calls per second
    content_safety_limit: tuple[int, float] | None = None  # (calls, seconds); Content Safety F0/S0: 1,000 per 10 s
    # Bearer tokens the moderation APIs accept instead of the key (keyless access, as Entra ID tokens are on Azure;
    # the stand-in cannot validate a real token, so tests name the ones their credential hands out).
    accepted_tokens: tuple[str, ...] = ()
    import_drop_images: int = 0  # ImportProject leaves out the last N images and still ends Succeeded
    # A resource behind a VNET: image URIs are relative paths read with GetArtifact (the spec's Image fields).
    vnet: bool = False
    allow_url_hosts: tuple[str, ...] = field(default_factory=lambda: DEFAULT_ALLOWED_HOSTS)
    # False: an unexpected exception answers 500 even when it looks like malformed input (the fuzz tests run so, to
    # find every cause the guard would hide).
    guard_malformed_input: bool = True


class CustomVisionApp:
    """The WSGI callable."""

    def __init__(self, config: ServiceConfig, learning: Learning | None = None) -> None:
        self.config = config
        self.storage = Storage(config.data_dir)
        self.backend = CustomVisionBackend(self.storage, learning or ModuleLearning())
        self.worker = TrainingWorker(self.backend)
        self.moderation = ModerationResponses(
            UrlFetcher(config.allow_url_hosts, max_bytes=imagelib.MAX_PREDICTION_IMAGE_BYTES))
        self.responses = CustomVisionResponses(
            self.backend,
            UrlFetcher(config.allow_url_hosts, max_bytes=imagelib.MAX_TRAINING_IMAGE_BYTES),
            UrlFetcher(config.allow_url_hosts, max_bytes=imagelib.MAX_PREDICTION_IMAGE_BYTES),
            UrlFetcher(config.allow_url_hosts, max_bytes=MAX_PROJECT_PACKAGE_BYTES),
        )
        self.backend.import_drop_images = config.import_drop_images
        self.backend.relative_image_uris = config.vnet
        self.url_map = build_url_map()
        self.limiters = {
            "prediction": FixedWindowLimiter(config.prediction_tps) if config.prediction_tps else None,
            "training": FixedWindowLimiter(config.training_tps) if config.training_tps else None,
            "vision": FixedWindowLimiter(config.vision_tps) if config.vision_tps else None,
            "contentsafety": (FixedWindowLimiter(config.content_safety_limit[0], period=config.content_safety_limit[1])
                              if config.content_safety_limit else None),
        }
        self.faults = FaultInjector(config.fault_rate, every=config.fault_every)

    def close(self) -> None:
        self.worker.stop()
        self.storage.close()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        request.max_content_length = MAX_REQUEST_BYTES
        response = self.dispatch(request)
        return response(environ, start_response)

    @staticmethod
    def _json(body: Any, status: int, headers: dict[str, str] | None = None, reason: str | None = None) -> Response:
        status_line: int | str = f"{status} {reason}" if reason else status
        if status == 204 or (status == 202 and body is None):  # no body, so no Content-Type (werkzeug adds one)
            response = Response(status=status_line, headers=headers)
            del response.headers["Content-Type"]
            return response
        return Response(json.dumps(body, allow_nan=False), status=status_line, headers=headers,
                        content_type="application/json; charset=utf-8")

    @staticmethod
    def _route_not_found(path: str) -> Response:
        """404 `NotFound` (an enum code) saying which versions are served: the usual cause is an old base path.

        Under /vision/ and /contentsafety/ it is the gateway's nested 404, naming the one operation served there."""
        for prefix, api in MODERATION_PREFIXES.items():
            if path.startswith(prefix):
                served = ("POST /vision/v3.2/analyze?visualFeatures=Adult" if api == "vision" else
                          "POST /contentsafety/image:analyze?api-version=2023-10-01|2024-09-01")
                error = GatewayError(f"Resource not found. The local service serves only {served} here.",
                                     code="404", status=404)
                return CustomVisionApp._json(error.body(), 404)
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "customvision" and parts[2] in ("training", "prediction"):
            what = f"{parts[2].capitalize()} API {parts[1]} is not served here, or {path} is not one of its paths."
        else:
            what = f"No operation has the path {path}."
        return CustomVisionApp._json({"code": "NotFound", "message": f"Resource not found. {what} {SERVED}"}, 404)

    def _key_ok(self, request: Request, api: str) -> bool:
        if api in MODERATION_APIS:
            expected = self.config.moderation_key or self.config.prediction_key
            bearer = request.headers.get("Authorization") or ""
            if bearer.startswith("Bearer ") and any(secrets.compare_digest(bearer[7:].encode(), t.encode())
                                                    for t in self.config.accepted_tokens):
                return True
            given = request.headers.get("Ocp-Apim-Subscription-Key") or ""
            return secrets.compare_digest(given.encode(), expected.encode())
        expected = self.config.training_key if api == "training" else self.config.prediction_key
        header = "Training-Key" if api == "training" else "Prediction-Key"
        given = request.headers.get(header) or request.headers.get("Ocp-Apim-Subscription-Key") or ""
        return secrets.compare_digest(given.encode(), expected.encode())

    def dispatch(self, request: Request) -> Response:
        # The rate limit counts a call when it arrives; the latency (a network round trip, slept before anything is
        # answered) must not decide which one-second window it lands in, or thread wake-up jitter would.
        arrived = time.monotonic()
        if self.config.latency_ms > 0:
            time.sleep(self.config.latency_ms / 1000.0)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except RouteNotFound:
            return self._route_not_found(request.path)
        except MethodNotAllowed as exc:
            api = next((a for prefix, a in MODERATION_PREFIXES.items() if request.path.startswith(prefix)), "")
            response = self._error(api, "BadRequest", f"Method {request.method} is not allowed here.", 405)
            response.headers["Allow"] = ", ".join(exc.valid_methods or [])
            return response
        except HTTPException as exc:  # e.g. a redirect for a trailing slash
            return exc.get_response(request.environ)
        api, operation = endpoint.split(":", 1)
        args = {**args, "_operation": operation}
        try:
            if api == "blob":  # stored images and export packages: no key, as Azure's SAS URLs are
                data, content_type = getattr(self.responses, operation)(request, args)
                return Response(data, content_type=content_type)
            if not self._key_ok(request, api):
                raise Unauthorized()
            limiter = self.limiters.get(api)
            if limiter is not None:
                wait = limiter.try_acquire(arrived)
                if wait:
                    if api in MODERATION_APIS:
                        raise moderation_throttled(api, operation, wait)
                    raise TooManyRequests(operation, api, wait)
            if api in MODERATION_APIS:
                if self.faults.should_fail():
                    raise moderation_fault(api)
                return self._json(self.moderation.handler(operation)(request, args).body, 200)
            if self.faults.should_fail():
                raise ServiceUnavailable(
                    "The service is temporarily unavailable (fault injected by --fault-rate). Retry later.",
                    code="ErrorPredictionServiceUnavailable" if api == "prediction" else "ErrorUnknown")
            reply: Reply = self.responses.handler(operation)(request, args)
            if isinstance(reply.body, bytes):  # GetArtifact: the artifact's bytes, as the spec's `produces` says
                return Response(reply.body, status=reply.status, content_type="application/octet-stream")
            body = for_version(api, args.get("version", ""), operation, reply.body)
            return self._json(body, reply.status)
        except CustomVisionError as exc:
            return self._json(exc.body(), exc.status, exc.headers, exc.reason)
        except HTTPException as exc:  # werkzeug's own, e.g. 413 body too large
            return self._error(api, "BadRequest", exc.description or exc.name, exc.code or 400)
        except MALFORMED_INPUT_ERRORS as exc:
            if not self.config.guard_malformed_input:
                log.exception("%s %s failed", request.method, request.path)
                return self._error(api, "ErrorUnknown", "The local service failed; see its log.", 500)
            log.exception("%s %s: unexpected %s, answered as a malformed request", request.method, request.path,
                          type(exc).__name__)
            return self._error(api, "BadRequestInvalid",
                               f"The request could not be read ({type(exc).__name__}). Check each parameter and "
                               "body field against the API reference.", 400)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return self._error(api, "ErrorUnknown", "The local service failed; see its log.", 500)

    def _error(self, api: str, code: str, message: str, status: int) -> Response:
        """An error the server itself answers, in the shape of the API the request was for."""
        error = (server_error(api, message, status) if api in MODERATION_APIS
                 else CustomVisionError(message, code=code, status=status))
        return self._json(error.body(), error.status, error.headers)


class _QuietHandler(WSGIRequestHandler):
    """Access log through `logging` at INFO, without query strings (they may carry SAS tokens)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        log.info('%s "%s %s" %s', self.address_string(), self.command, path, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":
            log.warning(message, *args)


class RunningService:
    """A service running in background threads of this process."""

    def __init__(self, server: BaseWSGIServer, app: CustomVisionApp) -> None:
        self.server = server
        self.app = app
        host = server.server_address[0]
        self.host = host
        self.port = server.server_port
        self.url = f"http://{host}:{self.port}"
        self.endpoint = self.url
        self.training_key = app.config.training_key
        self.prediction_key = app.config.prediction_key
        self._thread = threading.Thread(target=server.serve_forever, name="cv-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        self.app.close()

    def __enter__(self) -> RunningService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_service_server(host: str, port: int, app: CustomVisionApp, ssl_context: Any = None) -> BaseWSGIServer:
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler, ssl_context=ssl_context)
    server.daemon_threads = True
    return server


def serve(host: str = "127.0.0.1", port: int = 0, *, learning: Learning | None = None, ssl_context: Any = None,
          **options: Any) -> RunningService:
    """Start the service in this process (port 0: a free port) and return a handle with .url and .stop().

    ``ssl_context`` (a (certificate, key) pair of file paths, or an ``ssl.SSLContext``) serves HTTPS: azure-core
    sends a bearer token only over TLS, so keyless tests need it."""
    app = CustomVisionApp(ServiceConfig(**options), learning)
    service = RunningService(make_service_server(host, port, app, ssl_context), app)
    if ssl_context is not None:
        service.url = service.endpoint = service.url.replace("http://", "https://", 1)
    return service
