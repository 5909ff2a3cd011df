"""Retry for every service call cvops makes: the policy and the one loop, :func:`call`.

Why the project owns this instead of the SDKs: msrest (under the Custom Vision and Computer Vision SDKs) raises a 429 at
once without retrying, and with urllib3 2.x it never retries a POST on 5xx either (its method allow-list is set under
a name urllib3 2 ignores). Classify and upload calls are POSTs, and 429 is the normal answer when a run goes faster
than the pricing tier allows (F0: 2 predictions/s, S0: 10-20/s). So clients are built with the SDK retries off
(:mod:`cvops.clients`) and every call goes through :func:`call`, which

* paces calls with a shared :class:`cvops.pacing.Pacer` so a run stays inside the tier instead of bouncing off 429s,
* on 429 makes the whole pacer hold off, for as long as the service asks (``Retry-After``, or the seconds named in
  the message) or, when the pacer's own record explains the 429, only until its window has room again (see
  :class:`cvops.pacing.Pacer`: the service's "1 second" is a rounded upper bound), so concurrent workers do not keep
  hammering and a few milliseconds of jitter do not cost a second of quota,
* backs off exponentially with full jitter on 5xx, 408 and connection failures,
* never repeats blindly a non-idempotent request that may already have been applied,
* and turns what is left into a :mod:`cvops.errors` error that names the call and what to do.

Reading a failure (its kind, its Retry-After, the error to raise) is :mod:`cvops.failures`'.

The loop itself is tenacity's: it already gives wait-before-stop ordering (so the time budget can account for the
upcoming sleep), injectable sleep, and before-sleep hooks; this module only supplies the policy.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from cvops.errors import ConfigurationError, CvopsError
from cvops.failures import (
    exhausted_error,
    failure_kind,
    never_applied,
    permanent_error,
    possibly_applied_error,
    retry_after_seconds,
)
from cvops.pacing import Pacer

__all__ = ["RetryPolicy", "call"]

T = TypeVar("T")


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


# --- the one entry point ------------------------------------------------------------------------------------------

def _backoff(policy: RetryPolicy, attempt: int, uniform: Callable[[float, float], float], *, floor_half: bool) -> float:
    """Exponential backoff with full jitter (AWS architecture blog); 'equal jitter' for 429s with no hint, so a
    throttled caller always waits at least half the step."""
    cap = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    if floor_half:
        return cap / 2 + uniform(0.0, cap / 2)
    return uniform(0.0, cap)


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
      ``idempotent`` is false only when the request cannot have been applied (see :func:`never_applied`): a 5xx
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
        kind = failure_kind(exc)
        if kind == "permanent" or isinstance(exc, CvopsError):
            return False
        return idempotent or never_applied(exc)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and failure_kind(exc) == "throttled":
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
        raise exhausted_error(last, what, gave_up.last_attempt.attempt_number, clock() - started) from last
    except CvopsError:
        raise
    except Exception as exc:
        if failure_kind(exc) != "permanent":
            # Transient, but not idempotent and possibly applied: say so instead of repeating it.
            raise possibly_applied_error(exc, what, attempts) from exc
        error = permanent_error(exc, what)
        if error is exc:
            raise
        raise error from exc
