"""Retry and pacing for every service call cvops makes.

Why the project owns this instead of the SDKs: msrest (under the Custom Vision and Computer Vision SDKs) raises a 429 at
once without retrying, and with urllib3 2.x it never retries a POST on 5xx either (its method allow-list is set under
a name urllib3 2 ignores). Classify and upload calls are POSTs, and 429 is the normal answer when a run goes faster
than the pricing tier allows (F0: 2 predictions/s, S0: 10-20/s). So clients are built with the SDK retries off
(:mod:`cvops.clients`) and every call goes through :func:`call`, which

* paces calls with a shared :class:`Pacer` so a run stays inside the tier instead of bouncing off 429s,
* on 429 makes the whole pacer hold off, for as long as the service asks (``Retry-After``, or the seconds named in
  the message) or, when the pacer's own record explains the 429, only until its window has room again (see
  :class:`Pacer`: the service's "1 second" is a rounded upper bound), so concurrent workers do not keep hammering and
  a few milliseconds of jitter do not cost a second of quota,
* backs off exponentially with full jitter on 5xx, 408 and connection failures,
* never repeats blindly a non-idempotent request that may already have been applied,
* and turns what is left into a :mod:`cvops.errors` error that names the call and what to do.

The loop itself is tenacity's: it already gives wait-before-stop ordering (so the time budget can account for the
upcoming sleep), injectable sleep, and before-sleep hooks; this module only supplies the policy.
"""

from __future__ import annotations

import email.utils
import heapq
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from msrest.exceptions import ClientRequestError
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from cvops.errors import ConfigurationError, CvopsError, ServiceError, ThrottledError, TransientServiceError
from cvops.redaction import redact

__all__ = ["Pacer", "RetryPolicy", "call", "classify", "retry_after_seconds"]

T = TypeVar("T")
Kind = Literal["throttled", "transient", "permanent"]


class Pacer:
    """Thread-safe client-side rate limiter for a service that counts calls per second; shared by every caller.

    What it paces against: Custom Vision and Computer Vision count calls per one-second period and refuse the call
    over the count with 429 and "Please retry after 1 second" (the time until the counter renews, rounded up to whole
    seconds). Whether the count is a fixed window, a sliding one or a token bucket is not documented, so the pacer
    keeps to the strictest of them (no more than the count in *any* second), judged by the times calls really left.
    Three rules decide when a call may go; each caller takes its slot under one lock and sleeps outside it:

    * **Spacing**: a steady ``calls_per_second * (1 - headroom)``, kept as GCRA (a token bucket written as one
      "theoretical arrival time"), with up to ``burst`` calls at once. A burst catches up slots that no caller was
      ready to take (every worker busy with storage when its turn came) instead of losing them for good.
    * **Window**: at most ``floor(calls_per_second)`` calls in any ``1 / (1 - headroom)`` seconds, by the times calls
      actually left (a caller that wakes late moves the window with it). This makes a burst safe against a strict
      per-second counter: it only spends what the last second left unused. ``headroom`` is therefore the arrival
      jitter tolerated (2% at 20/s: 20 ms), besides the share of the quota left unused.
    * **Holds** after a 429 (:meth:`throttled`) or on request (:meth:`penalize`): nobody sends until they end, and
      callers already asleep for a slot queue again behind them.

    Why 429 holds are short when they can be: the service's "1 second" is an upper bound from a rounded counter. When
    this pacer is the only caller and a 429 still comes back, a call arrived a few milliseconds early (jitter), and
    the counter has room again when the pacer's own window does, within about one interval. Holding everyone for the
    whole second would throw away a second of quota (5% of a minute) for a few milliseconds of overlap. So a first
    429 holds until the pacer's window frees and trims the rate by 5%, recovered by 1% per window of calls
    (multiplicative decrease, additive increase, as TCP does), so that jitter which keeps recurring is paced out.
    A 429 on a call sent *after* an earlier one (within a window) shows the estimate was wrong (another client shares
    the quota, or the configured rate is above the tier's): that one gets the full Retry-After, for everyone. Calls
    already in flight when a 429 came back are refused for the same reason and do not escalate. A Retry-After longer
    than the period is not the per-second counter (a quota, an API Management policy) and is always held in full.

    ``clock`` and ``sleep`` are injectable so tests run on a fake clock.
    """

    DECREASE = 0.05  # share of the rate given up on each 429
    INCREASE = 0.01  # share of the rate won back per window of calls sent
    MIN_FACTOR = 0.25  # never slower than a quarter of the configured rate

    def __init__(
        self,
        calls_per_second: float,
        *,
        burst: int = 1,
        headroom: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ):
        if not isinstance(calls_per_second, int | float) or not math.isfinite(calls_per_second) or calls_per_second <= 0:
            raise ConfigurationError(
                f"Pacer calls_per_second must be a positive number, got {calls_per_second!r}",
                setting="calls_per_second",
                hint="Use the pricing tier's limit, e.g. 2 for F0 predictions or 10 for S0.",
            )
        if not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(
                f"Pacer burst must be an integer of at least 1, got {burst!r}",
                setting="burst",
                hint="Use 1 for evenly spaced calls, or a few to let callers catch up slots they missed.",
            )
        if not isinstance(headroom, int | float) or not 0.0 <= headroom < 1.0:
            raise ConfigurationError(
                f"Pacer headroom must be a fraction in [0, 1), got {headroom!r}",
                setting="headroom",
                hint="Use 0.05 to stay 5% under the limit, or 0 to pace exactly at it.",
            )
        self.calls_per_second = float(calls_per_second)
        self.burst = burst
        self.headroom = float(headroom)
        # The service's counting period as this pacer sees it: one second, or one call's worth below 1/s.
        self._period = max(1.0, 1.0 / self.calls_per_second)
        self._count = max(1, math.floor(self.calls_per_second * self._period + 1e-9))
        self._factor = 1.0  # below 1 for a while after a 429
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = -math.inf  # theoretical arrival time of the next call at the steady rate
        self._blocked_until = -math.inf
        self._sent: deque[list[float]] = deque()  # [time] of recent and reserved calls, oldest first
        self._last_throttle = -math.inf
        self._local = threading.local()  # the slot this thread last sent in: a 429 refers to it

    @property
    def rate(self) -> float:
        """The calls per second allowed now: ``calls_per_second * (1 - headroom)``, less for a while after a 429."""
        return self.calls_per_second * (1.0 - self.headroom) * self._factor

    def _window(self) -> float:
        return self._period / ((1.0 - self.headroom) * self._factor)

    def _window_frees_at(self, now: float, window: float) -> float:
        """When one more call fits in the window (``-inf`` if it already does); drops what can no longer matter."""
        while self._sent and self._sent[0][0] <= now - window:
            self._sent.popleft()
        if len(self._sent) < self._count:
            return -math.inf
        return heapq.nlargest(self._count, (slot[0] for slot in self._sent))[-1] + window

    def _discard(self, slot: list[float]) -> None:
        for i, held in enumerate(self._sent):
            if held is slot:
                del self._sent[i]
                return

    def _reserve(self) -> tuple[float, list[float]]:
        """Take the next slot; return (now, the slot holding the time the caller may send)."""
        with self._lock:
            now = self._clock()
            interval, window = 1.0 / self.rate, self._window()
            tat = max(self._tat, now)
            send_at = max(now, tat - (self.burst - 1) * interval, self._blocked_until,
                          self._window_frees_at(now, window))
            self._tat = max(tat, send_at) + interval
            slot = [send_at]
            self._sent.append(slot)
            return now, slot

    def wait(self) -> float:
        """Block until the next call may go; return the seconds waited."""
        started = self._clock()
        while True:
            now, slot = self._reserve()
            if slot[0] > now:
                self._sleep(slot[0] - now)
            with self._lock:
                sent = self._clock()
                # (a microsecond of slack: a sleep ending on the deadline must not cost a whole extra slot)
                if sent + 1e-6 >= self._blocked_until:
                    slot[0] = max(slot[0], sent)  # the window counts when the call really left
                    self._local.slot = slot
                    self._factor = min(1.0, self._factor + self.INCREASE / self._count)
                    break
                # A 429 came in while we slept: our slot is void, queue again behind the hold.
                self._discard(slot)
        return max(0.0, self._clock() - started)

    def _hold(self, until: float) -> None:
        self._blocked_until = max(self._blocked_until, until)
        # no burst right after a hold either
        self._tat = max(self._tat, self._blocked_until + (self.burst - 1) / self.rate)

    def penalize(self, seconds: float) -> None:
        """Nobody sends for ``seconds``, and no burst right after either."""
        if not seconds > 0:
            return
        with self._lock:
            self._hold(self._clock() + seconds)

    def throttled(self, retry_after: float) -> float:
        """After a 429 on this thread's last call: hold every caller, and return how long to wait before retrying it.

        ``retry_after`` is what the service asked for (or a backoff when it did not say): the upper bound of the hold.
        """
        retry_after = max(0.0, float(retry_after))
        with self._lock:
            now = self._clock()
            slot = getattr(self._local, "slot", None)
            self._local.slot = None
            sent_at = slot[0] if slot is not None else -math.inf
            if slot is not None:
                self._discard(slot)  # the service did not count a call it refused
            in_flight = sent_at <= self._last_throttle  # sent before the last 429 was known: the same overshoot
            repeated = not in_flight and now - self._last_throttle < self._window()
            if not in_flight:
                self._factor = max(self.MIN_FACTOR, self._factor * (1.0 - self.DECREASE))
                self._last_throttle = now
            if retry_after > self._period or repeated:
                hold = retry_after
            else:
                hold = min(retry_after, max(1.0 / self.rate, self._window_frees_at(now, self._window()) - now))
            self._hold(now + hold)
            return hold


@dataclass(frozen=True)
class RetryPolicy:
    """How hard :func:`call` tries: attempts in all (first included), backoff base and cap, and a wall-clock budget.

    The defaults ride out a few seconds of throttling or a service restart yet give up within two minutes, well
    inside a Functions timeout (5 min on Consumption), so the host can still record the failure.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_total: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}",
                                     setting="max_attempts")
        for name in ("base_delay", "max_delay", "max_total"):
            if not getattr(self, name) >= 0:
                raise ConfigurationError(f"RetryPolicy.{name} must be zero or more, got {getattr(self, name)}",
                                         setting=name)


# --- reading exceptions -------------------------------------------------------------------------------------------

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
    "ocp-apim-subscription-key": "Computer Vision key",
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
    for candidate in (getattr(error, "code", None), getattr(getattr(error, "error", None), "code", None),
                      getattr(exc, "error_code", None)):
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


def classify(exc: BaseException) -> Kind:
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


def _never_applied(exc: BaseException) -> bool:
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


# --- the one entry point ------------------------------------------------------------------------------------------

def _backoff(policy: RetryPolicy, attempt: int, uniform: Callable[[float, float], float], *, floor_half: bool) -> float:
    """Exponential backoff with full jitter (AWS architecture blog); 'equal jitter' for 429s with no hint, so a
    throttled caller always waits at least half the step."""
    cap = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    if floor_half:
        return cap / 2 + uniform(0.0, cap / 2)
    return uniform(0.0, cap)


def _permanent_error(exc: BaseException, what: str) -> BaseException:
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


def _exhausted_error(exc: BaseException, what: str, attempts: int, elapsed: float) -> TransientServiceError:
    detail = _describe(exc)
    if classify(exc) == "throttled":
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


def call(
    fn: Callable[[], T],
    *,
    what: str,
    pacer: Pacer | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
    idempotent: bool = True,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    uniform: Callable[[float, float], float] = random.uniform,
) -> T:
    """Run ``fn`` (one service call) under pacing and retry; return its result or raise a cvops error naming ``what``.

    * before each attempt: ``pacer.wait()``;
    * 429: the service's ``Retry-After`` (or the seconds in the message, or a backoff) bounds the wait; with a pacer,
      ``pacer.throttled`` decides how much of it every caller waits (see :class:`Pacer`), without one, all of it;
    * transient (5xx, 408, connection failures, timeouts): exponential backoff with full jitter, then retry, but if
      ``idempotent`` is false only when the request cannot have been applied (see :func:`_never_applied`): a 5xx
      answer means the service refused it, a refused connection means it never left; a reset or read timeout after
      sending might have been applied, so it raises :class:`TransientServiceError` at once instead of repeating it;
    * permanent with a service answer: :class:`ServiceError` at once (a 401 names the key and endpoint to fix);
      an endpoint that is not a URL: :class:`ConfigurationError`; anything else (a bug) propagates unchanged;
    * attempts or ``policy.max_total`` exhausted: :class:`ThrottledError` / :class:`TransientServiceError`,
      chained to the last exception.

    ``on_retry(attempt, exc, delay)`` is called before each sleep (for logs and metrics). ``sleep``, ``clock`` and
    ``uniform`` are injectable so tests run without real time or randomness.
    """
    started = clock()
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        if pacer is not None:
            pacer.wait()
        return fn()

    def should_retry(exc: BaseException) -> bool:
        kind = classify(exc)
        if kind == "permanent" or isinstance(exc, CvopsError):
            return False
        return idempotent or _never_applied(exc)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and classify(exc) == "throttled":
            asked = retry_after_seconds(exc)
            if asked is None:
                asked = _backoff(policy, state.attempt_number, uniform, floor_half=True)
            # A wait past this call's budget is not waited (stop gives up first), so it must not hold the shared pacer
            # either: one absurd Retry-After would otherwise stall every other call of the process that long.
            if asked > policy.max_total - (clock() - started):
                return asked
            # The pacer decides how much of it everyone waits (it knows whether its own window explains the 429).
            return pacer.throttled(asked) if pacer is not None else asked
        return _backoff(policy, state.attempt_number, uniform, floor_half=False)

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        return (clock() - started) + state.upcoming_sleep > policy.max_total

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is None:
            return
        if on_retry is not None:
            on_retry(state.attempt_number, exc, state.upcoming_sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(should_retry),
        wait=wait,
        stop=stop,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=False,
    )
    try:
        return retrying(attempt)
    except tenacity.RetryError as gave_up:
        last = gave_up.last_attempt.exception()
        assert last is not None  # RetryError is only raised after a failed attempt
        raise _exhausted_error(last, what, gave_up.last_attempt.attempt_number, clock() - started) from last
    except CvopsError:
        raise
    except Exception as exc:
        if classify(exc) != "permanent":
            # Transient, but not idempotent and possibly applied: say so instead of repeating it.
            raise TransientServiceError(
                f"{what}: the connection failed after the request was sent ({_describe(exc)}); "
                "not repeated automatically because the service may already have applied it",
                code=_code(exc), status=_status(exc), attempts=attempts,
                hint="Check whether it took effect (list the project's images, iterations or publications) "
                     "before running it again.",
            ) from exc
        error = _permanent_error(exc, what)
        if error is exc:
            raise
        raise error from exc
