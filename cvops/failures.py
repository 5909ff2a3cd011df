"""What a failed service call means: throttled, transient or permanent; how long the service asked us to wait; and
the cvops error that names the call and what to do.

Why one module reads every SDK's exceptions: msrest (Custom Vision, Computer Vision), azure-core, requests and urllib3
each carry the status, the service's code, the Retry-After and the endpoint in different places. :func:`cvops.retry.call`
decides from :func:`failure_kind` whether to retry, and :mod:`functions.vision` from the same function whether a
refusal is the tier's limit. Messages quoted from the service go through :func:`cvops.redaction.redact`, the one
redaction of the project.
"""

from __future__ import annotations

import email.utils
import math
import re
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from msrest.exceptions import ClientRequestError
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from cvops.errors import ConfigurationError, CvopsError, ServiceError, ThrottledError, TransientServiceError
from cvops.redaction import redact

__all__ = ["FailureKind", "exhausted_error", "failure_kind", "never_applied", "permanent_error",
           "possibly_applied_error", "retry_after_seconds"]

FailureKind = Literal["throttled", "transient", "permanent"]


# "Please retry after 1 second" (Cognitive Services), "Try again in 26 seconds" (API Management's rate-limit policy).
_RETRY_AFTER_TEXT = re.compile(
    r"(?:retry\s+after|try\s+again\s+in)\s+(\d+(?:\.\d+)?)\s*(milliseconds?|ms|seconds?|secs?|s)\b", re.I)
_MSREST_STATUS_TEXT = re.compile(r"too many (\d{3}) error responses")
_POOL_TEXT = re.compile(r"(http|https)ConnectionPool\(host='([^']+)', port=(\d+)\)", re.I)
_PERMANENT_REQUEST_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidHeader,
)
_KEY_HEADERS = {
    "training-key": "Custom Vision training key",
    "prediction-key": "Custom Vision prediction key",
    "ocp-apim-subscription-key": "Computer Vision or Content Safety key",
    "authorization": "credential",
}


def _response(exc: BaseException) -> Any:
    return getattr(exc, "response", None)


def _headers(exc: BaseException) -> dict[str, str]:
    """The response headers, lower-cased (requests and azure-core both have case-insensitive mappings, but not dicts)."""
    raw = getattr(_response(exc), "headers", None)
    if not raw:
        return {}
    try:
        return {str(k).lower(): str(v) for k, v in raw.items()}
    except AttributeError:
        return {}


def _inner(exc: BaseException) -> BaseException | None:
    """What msrest wrapped (it keeps it in ``inner_exception``) or what the exception was raised from."""
    inner = getattr(exc, "inner_exception", None)
    if isinstance(inner, BaseException):
        return inner
    return exc.__cause__


def _status(exc: BaseException) -> int | None:
    """The HTTP status the service answered with, if it answered."""
    response = _response(exc)
    for value in (getattr(response, "status_code", None), getattr(response, "status", None),
                  getattr(exc, "status_code", None)):
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    if isinstance(exc, ClientRequestError):
        # msrest with retries=0 but the default status_forcelist turns a 5xx on GET into
        # "RetryError ... too many 503 error responses": the server did answer.
        match = _MSREST_STATUS_TEXT.search(str(exc))
        if match:
            return int(match.group(1))
    return None


def _code(exc: BaseException) -> str | None:
    """The service's error code: Custom Vision ``{"code"}``, Computer Vision ``{"error": {"code"}}``, azure-core."""
    error = getattr(exc, "error", None)
    # Read lazily, first match wins: azure-core's ODataV4Format warns (deprecated) when its `.error` is touched.
    readers = (lambda: getattr(error, "code", None), lambda: getattr(getattr(error, "error", None), "code", None),
               lambda: getattr(exc, "error_code", None))
    for read in readers:
        candidate = read()
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _endpoint(exc: BaseException) -> str | None:
    """scheme://host of the request that failed (never the query: it may hold a SAS signature)."""
    response = _response(exc)
    request = getattr(response, "request", None)
    url = getattr(request, "url", None) or getattr(response, "url", None)
    if not url:
        # msrest/requests connection errors only carry "HTTPConnectionPool(host='h', port=p)" in their text.
        match = _POOL_TEXT.search(str(exc))
        return f"{match.group(1).lower()}://{match.group(2)}:{match.group(3)}" if match else None
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else None


def _key_name(exc: BaseException) -> str:
    """Which key the failed request carried, from its headers: the 401 message should say which one is wrong."""
    request = getattr(_response(exc), "request", None)
    headers = getattr(request, "headers", None) or {}
    names = {str(k).lower() for k in headers}
    for header, name in _KEY_HEADERS.items():
        if header in names:
            return name
    return "key"


def _service_message(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if not isinstance(message, str) or not message:
        message = str(exc) or type(exc).__name__
    return redact(" ".join(message.split()))[:500]


def _describe(exc: BaseException) -> str:
    """One line about the failure: status, code and message when the service answered; the exception otherwise."""
    status = _status(exc)
    code = _code(exc)
    message = _service_message(exc)
    if status is None:
        return f"{type(exc).__name__}: {message}"
    head = f"HTTP {status}" + (f" {code}" if code else "")
    return f"{head}: {message}"


def retry_after_seconds(exc: BaseException) -> float | None:
    """How long the service asked us to wait, in seconds, or ``None`` if it did not say.

    Reads, in order: ``retry-after-ms`` / ``x-ms-retry-after-ms`` and ``Retry-After`` (delta-seconds or an HTTP date)
    from the response of a ``CustomVisionErrorException``, ``ComputerVisionErrorResponseException`` (both msrest
    ``HttpOperationError``) or azure-core ``HttpResponseError``; then the "retry after N second(s)" that Custom Vision
    writes in its 429 message body when there is no header (or API Management's "try again in N seconds").
    """
    headers = _headers(exc)
    # A header that is not a finite number ("inf", "nan", garbage from a proxy) says nothing: the caller backs off as if
    # it were absent, rather than giving up at once (inf) or hammering the service (nan compared as 0).
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if name in headers:
            try:
                milliseconds = float(headers[name])
            except ValueError:
                continue
            if math.isfinite(milliseconds):
                return max(0.0, milliseconds / 1000.0)
    value = headers.get("retry-after")
    if value:
        try:
            seconds = float(value)
            return max(0.0, seconds) if math.isfinite(seconds) else None
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
    candidates = [str(exc)]
    inner = _inner(exc)
    if inner is not None:
        candidates.append(str(inner))
    for text in candidates:
        match = _RETRY_AFTER_TEXT.search(text)
        if match:
            number = float(match.group(1))
            return number / 1000.0 if match.group(2).lower().startswith("m") else number
    return None


def failure_kind(exc: BaseException) -> FailureKind:
    """Sort a failure: ``throttled`` (HTTP 429), ``transient`` (worth retrying later) or ``permanent``.

    transient: 5xx, 408, msrest ``ClientRequestError`` (connection/timeouts, or 5xx turned into a RetryError),
    requests ``ConnectionError``/``Timeout``, azure-core ``ServiceRequestError``/``ServiceResponseError``, and the
    socket-level ``TimeoutError``/``ConnectionError``. A ``ClientRequestError`` caused by a malformed URL is
    permanent: retrying cannot fix an endpoint typo. cvops' own errors keep their kind.
    Everything else is permanent (401, 403, 404, 400 with a code, programming errors...).
    """
    if isinstance(exc, ThrottledError):
        return "throttled"
    if isinstance(exc, TransientServiceError):
        return "transient"
    if isinstance(exc, CvopsError):
        return "permanent"
    status = _status(exc)
    if status == 429:
        return "throttled"
    if status is not None:
        return "transient" if status >= 500 or status == 408 else "permanent"
    if isinstance(exc, ClientRequestError):
        inner = _inner(exc)
        return "permanent" if isinstance(inner, _PERMANENT_REQUEST_ERRORS) else "transient"
    if isinstance(exc, _PERMANENT_REQUEST_ERRORS):
        return "permanent"
    if isinstance(exc, ServiceRequestError | ServiceResponseError | requests.ConnectionError | requests.Timeout
                  | TimeoutError | ConnectionError):
        return "transient"
    return "permanent"


def never_applied(exc: BaseException) -> bool:
    """True when the service cannot have acted on the request, so even a non-idempotent one may be sent again.

    That is when it answered 429 or 503 (the front end refused it), or when no connection was
    ever made (connection refused, DNS failure, connect timeout; azure-core's ``ServiceRequestError`` means exactly
    "no request was sent"). A read timeout or a connection reset after sending is not: the request may have been
    applied, and repeating a POST could, e.g., start a second training run.
    """
    status = _status(exc)
    if status is not None:
        # 429 and 503 are the front end's refusals (rate limit, busy). A 500, 502 or 504 may come from a gateway
        # after the backend acted (a project created, a training started), so it counts as "may have been applied".
        return status in (429, 503)
    if isinstance(exc, ServiceRequestError) and not isinstance(exc, ServiceResponseError):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.ConnectTimeout | ConnectTimeoutError | ConnectionRefusedError):
            return True  # urllib3's NewConnectionError (refused, DNS) is a ConnectTimeoutError
        if isinstance(current, MaxRetryError) and isinstance(current.reason, ConnectTimeoutError):
            return True
        nested = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        current = _inner(current) or (nested[0] if nested else None)
    return False


# --- the error to raise ---------------------------------------------------------------------------------------

def permanent_error(exc: BaseException, what: str) -> BaseException:
    """The error to raise for a permanent failure: a ServiceError when the service answered, else the original."""
    if isinstance(exc, CvopsError):
        return exc
    if isinstance(exc, ClientRequestError) and isinstance(_inner(exc), requests.exceptions.InvalidHeader):
        return ConfigurationError(  # a header is the key: never blame the endpoint, never quote the value
            f"{what}: the {_key_name(exc)} cannot be sent in an HTTP header (a line break, space or other "
            "character keys never hold)", setting="key",
            hint="copy the key again, one key only (Azure portal > the resource > Keys and Endpoint)")
    if isinstance(exc, ClientRequestError) and isinstance(_inner(exc), _PERMANENT_REQUEST_ERRORS):
        return ConfigurationError(
            f"{what}: the endpoint URL is not usable ({_service_message(_inner(exc) or exc)})",
            setting="endpoint",
            hint="Set the endpoint to the resource's URL, e.g. https://<name>.cognitiveservices.azure.com/.",
        )
    status = _status(exc)
    if status is None:
        return exc  # not a service answer (a bug, bad argument...): let it surface as itself
    code = _code(exc)
    endpoint = _endpoint(exc) or "the configured endpoint"
    detail = _describe(exc)
    if status == 401:
        key = _key_name(exc)
        return ServiceError(
            f"{what}: the {key} was refused by {endpoint} ({detail})",
            code=code, status=status,
            hint=f"The {key} or the endpoint is wrong: use a key of the resource at {endpoint} "
                 f"(Azure portal > the resource > Keys and Endpoint), or point the endpoint at the key's resource.",
        )
    if status == 403:
        hint = ("The key or identity is not allowed this operation, or the pricing tier's quota is used up: "
                "check the resource's role assignments and quota.")
    elif status == 404:
        hint = ("Check that the project, iteration, publish name or blob exists at "
                f"{endpoint} (a prediction needs the publish name of a published iteration).")
    elif status == 413:
        hint = "The request is too large for the service: send smaller images or fewer per batch."
    else:
        hint = "Fix the request (see the service's code and message) and run again; retrying as-is will not help."
    return ServiceError(f"{what} failed: {detail}", code=code, status=status, hint=hint)


def exhausted_error(exc: BaseException, what: str, attempts: int, elapsed: float) -> TransientServiceError:
    detail = _describe(exc)
    if failure_kind(exc) == "throttled":
        return ThrottledError(
            f"{what}: still throttled (HTTP 429) after {attempts} attempts over {elapsed:.1f} s ({detail})",
            code=_code(exc), status=429, attempts=attempts,
            hint="Lower the calls per second (the pacer's rate) to the pricing tier's limit or move to a higher tier, "
                 "then try again later.",
        )
    return TransientServiceError(
        f"{what}: the service was still failing after {attempts} attempts over {elapsed:.1f} s ({detail})",
        code=_code(exc), status=_status(exc), attempts=attempts,
        hint=f"The service at {_endpoint(exc) or 'the endpoint'} is busy or unreachable: try again later, "
             "and check the endpoint and network if it persists.",
    )


def possibly_applied_error(exc: BaseException, what: str, attempts: int) -> TransientServiceError:
    """The error for a transient failure of a non-idempotent call that may have been applied: say so, do not repeat."""
    return TransientServiceError(
        f"{what}: the connection failed after the request was sent ({_describe(exc)}); "
        "not repeated automatically because the service may already have applied it",
        code=_code(exc), status=_status(exc), attempts=attempts,
        hint="Check whether it took effect (list the project's images, iterations or publications) "
             "before running it again.",
    )
