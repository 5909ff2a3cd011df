"""Client-side pacing: keep a run's calls inside the pricing tier's calls per second, shared by every caller.

Why pace at all: Custom Vision and Computer Vision answer 429 to the call over the tier's count (F0: 2 predictions/s,
S0: 10-20/s), and a run that bounces off 429s wastes quota and time. :func:`cvops.retry.call` waits on a
:class:`Pacer` before each attempt and tells it about each 429 (see the class for how long a 429 holds everyone).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cvops.errors import ConfigurationError

__all__ = ["Pacer"]


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
