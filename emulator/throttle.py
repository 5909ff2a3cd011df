"""Rate limits and injected faults: the parts of Azure's behaviour that callers must survive, made reproducible.

A sliding one-second window per API (prediction, training) counts the calls; a call over the limit is refused with 429
and a Retry-After of the whole seconds until the window has room, as Azure's gateway does.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque


class RateLimiter:
    """At most `per_second` calls in any one-second window; thread-safe."""

    def __init__(self, per_second: float, *, clock=time.monotonic) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.limit = max(1, int(per_second))
        self._clock = clock
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> int:
        """0 if the call may proceed (and is counted); otherwise the seconds to wait before retrying (at least 1)."""
        with self._lock:
            t = self._clock()
            while self._calls and self._calls[0] <= t - 1.0:
                self._calls.popleft()
            if len(self._calls) < self.limit:
                self._calls.append(t)
                return 0
            return max(1, math.ceil(self._calls[0] + 1.0 - t))


class FaultInjector:
    """Decides which calls fail with 503 (`--fault-rate`): each call independently with probability `rate`."""

    def __init__(self, rate: float, *, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        self.rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def should_fail(self) -> bool:
        if self.rate <= 0.0:
            return False
        with self._lock:
            return self._random.random() < self.rate
