"""Rate limits and injected faults: the parts of Azure's behaviour that callers must survive, made reproducible.

The model, and why. A Cognitive Services account describes its limits as ``callRateLimit.rules``: a ``count`` of calls
per ``renewalPeriod`` seconds (ARM ``Microsoft.CognitiveServices/accounts``, ``CallRateLimit`` / ``ThrottlingRule``),
and a refused call says "... exceeded rate limit of your current ... pricing tier. Please retry after 1 second".
That is a counter renewed every period, i.e. a fixed window: :class:`FixedWindowLimiter`, what the service uses.
The Retry-After it gives is the time until the counter renews, rounded up to whole seconds, so with one-second periods
it is always 1: an upper bound, not a measurement (callers that need a precise wait must work it out themselves).

Every window is judged by the time the call *arrived*: the service passes it in (see ``server.py``), so threads that
wake late from the simulated network latency do not change which window a call counts in.

:class:`SlidingWindowLimiter` is the strictest reading of "N calls per second" (no N+1 calls within any one second):
not what Azure documents, but what a client must also survive. Tests drive client pacing against it to show it is
correct without relying on the fixed window's leniency at its boundaries.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
from collections.abc import Callable


def _limit(per_second: float) -> int:
    if not isinstance(per_second, int | float) or not math.isfinite(per_second) or per_second <= 0:
        raise ValueError(f"calls per second must be a positive number, got {per_second!r}")
    return max(1, int(per_second))


class FixedWindowLimiter:
    """At most ``per_second`` calls per one-second window; thread-safe.

    A window opens with the first call after the previous one ended (a counter that starts when it is first used and
    renews a period later), so a burst after a quiet second is judged as a whole rather than split by a boundary no
    caller can see. Under steady traffic windows follow each other, and two can still meet between two bursts:
    the leniency of a fixed window that a careful client must not rely on. Calls refused with 429 do not count (the
    gateway turned them away before they used the quota).
    """

    def __init__(self, per_second: float, *, period: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = _limit(per_second)
        self.period = float(period)
        self._clock = clock
        self._windows: list[list[float]] = []  # [start, calls counted] of the current window and the one before
        self._lock = threading.Lock()

    def try_acquire(self, at: float | None = None) -> int:
        """0 if a call arriving ``at`` (default: now) may proceed, and count it; else the whole seconds until its
        window renews (at least 1), for Retry-After."""
        with self._lock:
            t = self._clock() if at is None else at
            if not self._windows or t >= self._windows[-1][0] + self.period:
                self._windows = [*self._windows[-1:], [t, 0]]
            # A call judged late (threads race) counts in the window it arrived in, if that one is still known.
            window = next((w for w in reversed(self._windows) if w[0] <= t < w[0] + self.period), self._windows[-1])
            if window[1] < self.limit:
                window[1] += 1
                return 0
            return max(1, math.ceil(window[0] + self.period - t))


class SlidingWindowLimiter:
    """At most ``per_second`` calls in any one second (the strictest model); thread-safe.

    Arrival times are kept sorted, so a call judged slightly after a later arrival (threads race) is still judged
    against the calls that arrived in the second before it.
    """

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = _limit(per_second)
        self._clock = clock
        self._calls: list[float] = []
        self._lock = threading.Lock()

    def try_acquire(self, at: float | None = None) -> int:
        """0 if a call arriving ``at`` (default: now) may proceed, and count it; else the whole seconds until the
        oldest call in its second leaves the window (at least 1)."""
        with self._lock:
            t = self._clock() if at is None else at
            del self._calls[:bisect.bisect_left(self._calls, t - 2.0)]  # nothing older can matter any more
            start = bisect.bisect_right(self._calls, t - 1.0)
            end = bisect.bisect_right(self._calls, t)
            if end - start < self.limit:
                bisect.insort(self._calls, t)
                return 0
            return max(1, math.ceil(self._calls[start] + 1.0 - t))




class FaultInjector:
    """Decides which calls fail with 503: each call independently with probability `rate` (`--fault-rate`), or every
    `every`-th call (`--fault-every`).

    Why both: a rate is what an outage looks like, but a test that needs at least one fault among a few calls fails by
    chance with it (8 calls at 0.35 see none 3% of the time). Every N-th call is deterministic in how many calls fail,
    whichever request arrives when, so such a test can rely on it.
    """

    def __init__(self, rate: float, *, every: int | None = None, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        if every is not None and every < 1:
            raise ValueError("fault-every must be a positive whole number")
        self.rate = rate
        self.every = every
        self._calls = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def should_fail(self) -> bool:
        if self.every is not None:
            with self._lock:
                self._calls += 1
                return self._calls % self.every == 0
        if self.rate <= 0.0:
            return False
        with self._lock:
            return self._random.random() < self.rate
