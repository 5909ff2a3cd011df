"""cvops.pacing: the Pacer keeps calls inside a per-second count on a fake clock, holds everyone after a 429 only
as long as it must, and sustains a strict limiter's rate from several workers (virtual time)."""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable

import pytest
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException as PredictionErrorException,
)

from cvops import clients
from cvops.errors import ConfigurationError
from cvops.pacing import Pacer
from cvops.retry import call
from emulator.throttle import FixedWindowLimiter, SlidingWindowLimiter

from .retry_fakes import ENDPOINT, SECRET, FakeClock, http_response

# --- Pacer --------------------------------------------------------------------------------------------------------

def released_at(pacer: Pacer, clock: FakeClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        pacer.wait()
        times.append(round(clock.now, 6))
    return times


def test_pacer_spaces_calls_at_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(5, headroom=0, clock=clock, sleep=clock.sleep)
    assert released_at(pacer, clock, 6) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_pacer_headroom_runs_under_the_limit() -> None:
    clock = FakeClock()
    pacer = Pacer(10, headroom=0.2, clock=clock, sleep=clock.sleep)
    assert released_at(pacer, clock, 3) == [0.0, 0.125, 0.25]


def test_pacer_allows_a_burst_then_the_rate_and_idle_time_does_not_bank_more() -> None:
    clock = FakeClock()
    pacer = Pacer(10, burst=3, headroom=0, clock=clock, sleep=clock.sleep)
    assert released_at(pacer, clock, 5) == [0.0, 0.0, 0.0, 0.1, 0.2]
    clock.now = 100.0
    assert released_at(pacer, clock, 4) == [100.0, 100.0, 100.0, 100.1]


def test_a_burst_never_puts_more_than_the_per_second_count_in_any_second() -> None:
    clock = FakeClock()
    pacer = Pacer(2, burst=3, headroom=0, clock=clock, sleep=clock.sleep)
    assert released_at(pacer, clock, 5) == [0.0, 0.0, 1.0, 1.0, 2.0]


def test_headroom_stretches_the_window_by_the_jitter_it_tolerates() -> None:
    clock = FakeClock()
    pacer = Pacer(4, burst=4, headroom=0.2, clock=clock, sleep=clock.sleep)
    assert released_at(pacer, clock, 6) == [0.0, 0.0, 0.0, 0.0, 1.25, 1.25]


def test_the_window_counts_when_a_late_caller_really_left() -> None:
    clock = FakeClock()

    def oversleep(seconds: float) -> None:
        clock.sleep(seconds + (0.25 if not clock.sleeps else 0.0))  # the first wake-up comes 250 ms late

    pacer = Pacer(1, headroom=0, clock=clock, sleep=oversleep)
    assert released_at(pacer, clock, 3) == [0.0, 1.25, 2.25]


def test_pacer_wait_returns_seconds_waited() -> None:
    clock = FakeClock()
    pacer = Pacer(4, headroom=0, clock=clock, sleep=clock.sleep)
    assert pacer.wait() == 0.0
    assert pacer.wait() == pytest.approx(0.25)


def test_penalize_holds_everyone_off_with_no_burst_after() -> None:
    clock = FakeClock()
    pacer = Pacer(10, burst=3, headroom=0, clock=clock, sleep=clock.sleep)
    pacer.wait()
    pacer.penalize(2.0)
    assert released_at(pacer, clock, 3) == [2.0, 2.1, 2.2]


def test_a_caller_already_sleeping_requeues_behind_a_penalty() -> None:
    clock = FakeClock()
    pacer: Pacer

    def sleep(seconds: float) -> None:
        if not clock.sleeps:  # another worker's 429 arrives while this one sleeps for its slot
            pacer.penalize(5.0)
        clock.sleep(seconds)

    pacer = Pacer(1, headroom=0, clock=clock, sleep=sleep)
    pacer.wait()
    pacer.wait()
    assert clock.now == pytest.approx(5.0)


def test_pacer_is_thread_safe_under_real_time() -> None:
    pacer = Pacer(50, headroom=0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            pacer.wait()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(stamps) == 20
    # 20 calls at 50/s cannot all be released in less than 19 intervals (sleep never wakes early).
    assert max(stamps) - min(stamps) >= 19 / 50 - 0.005


@pytest.mark.parametrize("kwargs", [{"calls_per_second": 0}, {"calls_per_second": -1},
                                    {"calls_per_second": float("nan")}, {"calls_per_second": 5, "burst": 0},
                                    {"calls_per_second": 5, "headroom": 1.0}])
def test_pacer_rejects_bad_settings_naming_them(kwargs: dict) -> None:
    with pytest.raises(ConfigurationError) as info:
        Pacer(**kwargs)
    assert info.value.setting in kwargs


def test_a_first_429_holds_everyone_only_until_the_pacers_window_frees_and_trims_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(10, headroom=0, clock=clock, sleep=clock.sleep)
    released_at(pacer, clock, 11)  # 0.0 ... 1.0: the 11th was, say, counted a millisecond early and refused
    hold = pacer.throttled(1.0)  # "Please retry after 1 second"
    assert pacer.rate == pytest.approx(9.5)
    assert hold == pytest.approx(1 / 9.5)  # one interval at the trimmed rate, not the whole second
    assert released_at(pacer, clock, 1) == [pytest.approx(1.0 + 1 / 9.5)]


def test_a_429_on_a_call_sent_after_an_earlier_429_gets_the_whole_retry_after() -> None:
    clock = FakeClock()
    pacer = Pacer(10, headroom=0, clock=clock, sleep=clock.sleep)
    pacer.wait()
    first = pacer.throttled(1.0)
    pacer.wait()  # sent after the first 429 was known, and refused again: another client uses the quota
    assert first < 0.2 and pacer.throttled(1.0) == 1.0
    assert pacer.rate == pytest.approx(10 * 0.95 * 0.95, rel=0.01)


def test_calls_in_flight_when_a_429_came_back_do_not_escalate_the_hold() -> None:
    clock = FakeClock()
    pacer = Pacer(10, burst=2, headroom=0, clock=clock, sleep=clock.sleep)
    holds: dict[str, float] = {}
    both_sent = threading.Barrier(2)
    turn = {"a": threading.Event(), "b": threading.Event()}

    def caller(name: str) -> None:  # each caller is its own thread, as in the Functions host
        pacer.wait()
        both_sent.wait(5)  # both calls are out before either answer is back
        turn[name].wait(5)
        holds[name] = pacer.throttled(1.0)

    threads = {name: threading.Thread(target=caller, args=(name,)) for name in turn}
    for thread in threads.values():
        thread.start()
    for name in ("a", "b"):  # a's 429 comes back first, then b's
        turn[name].set()
        threads[name].join(5)
    assert holds["a"] < 0.2 and holds["b"] < 0.2
    assert pacer.rate == pytest.approx(9.5)  # one overshoot, trimmed once


def test_a_retry_after_longer_than_the_counting_period_is_held_in_full() -> None:
    clock = FakeClock()
    pacer = Pacer(10, headroom=0, clock=clock, sleep=clock.sleep)
    pacer.wait()
    assert pacer.throttled(26.0) == 26.0  # a quota or an API Management policy, not the per-second counter
    assert released_at(pacer, clock, 1) == [26.0]


def test_the_rate_creeps_back_after_a_429() -> None:
    clock = FakeClock()
    pacer = Pacer(10, headroom=0.02, clock=clock, sleep=clock.sleep)
    pacer.wait()
    pacer.throttled(1.0)
    assert pacer.rate == pytest.approx(9.8 * 0.95)
    released_at(pacer, clock, 30)  # three windows of calls: 3% back
    assert pacer.rate == pytest.approx(9.8 * 0.98, rel=0.002)
    released_at(pacer, clock, 100)
    assert pacer.rate == pytest.approx(9.8)  # and never above the configured rate


class VirtualTime:
    """A clock for several threads that jumps to the next wake-up once every thread is asleep.

    It lets the pacer, ``call`` and a rate limiter run with real threads through minutes of service time in a
    fraction of a second, deterministically (given seeded randomness): no wall-clock timing is measured.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._cond = threading.Condition()
        self._sleepers: list[tuple[float, int, list[bool]]] = []
        self._order = 0
        self._running = 0

    def __call__(self) -> float:
        return self.now

    def _advance(self) -> None:
        if self._running or not self._sleepers:
            return
        self.now = max(self.now, self._sleepers[0][0])
        while self._sleepers and self._sleepers[0][0] <= self.now:
            heapq.heappop(self._sleepers)[2].append(True)
            self._running += 1
        self._cond.notify_all()

    def sleep(self, seconds: float) -> None:
        with self._cond:
            woken: list[bool] = []
            self._order += 1
            heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), self._order, woken))
            self._running -= 1
            self._advance()
            while not woken:
                self._cond.wait(10)

    def run(self, workers: list[Callable[[], None]]) -> None:
        """Run each worker in its own thread on this clock until all are done."""

        def wrapped(work: Callable[[], None]) -> None:
            try:
                work()
            finally:
                with self._cond:
                    self._running -= 1
                    self._advance()

        with self._cond:
            self._running += len(workers)
        threads = [threading.Thread(target=wrapped, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)


def simulate_host(limiter_class: type, *, limit: int = 20, paced_at: float = 20, calls: int = 400, workers: int = 6,
                  headroom: float = 0.02, burst: int = 4, jitter: float = 0.01, seed: int = 1) -> dict:
    """The Function App's prediction calls against a service limiter, on virtual time.

    ``workers`` threads (the host's pool) each take an image, classify it through ``call`` and a shared pacer, then
    spend 80-250 ms (one call in twenty: 300-800 ms) on validation and storage, so slots go unclaimed at times. Each
    request reaches the service 0..``jitter`` s after the pacer released it and is answered 50 ms later: a 429 with
    Retry-After, as the service words it, or success.
    """
    clock = VirtualTime()
    rnd = random.Random(seed)
    lock = threading.Lock()
    limiter = limiter_class(limit, clock=clock)
    pacer = Pacer(paced_at, burst=burst, headroom=headroom, clock=clock, sleep=clock.sleep)
    pending = list(range(calls))
    counted: list[float] = []
    holds: list[float] = []

    def request() -> float:
        with lock:
            arrival = clock() + rnd.uniform(0, jitter)
        clock.sleep(0.05)
        wait = limiter.try_acquire(arrival)
        if wait:
            raise PredictionErrorException(clients.prediction_client(ENDPOINT, SECRET)._deserialize, http_response(
                429, {"code": "429", "message": f"Please retry after {wait} second"}, {"Retry-After": str(wait)}))
        return arrival

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        with lock:
            holds.append(delay)

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                pending.pop()
                busy = rnd.uniform(0.08, 0.25) if rnd.random() > 0.05 else rnd.uniform(0.3, 0.8)
            arrival = call(request, what="classify", pacer=pacer, on_retry=on_retry, sleep=clock.sleep, clock=clock)
            with lock:
                counted.append(arrival)
            clock.sleep(busy)

    clock.run([worker] * workers)
    span = max(counted) - min(counted)
    return {"done": len(counted), "share": (len(counted) - 1) / span / limit, "throttled": len(holds),
            "longest_hold": max(holds, default=0.0)}


@pytest.mark.parametrize("limiter_class", [FixedWindowLimiter, SlidingWindowLimiter])
def test_six_workers_sustain_97_percent_of_a_strict_limit_with_no_429_when_jitter_is_within_the_headroom(
        limiter_class: type) -> None:
    result = simulate_host(limiter_class, jitter=0.015)
    assert result["done"] == 400 and result["throttled"] == 0
    assert result["share"] >= 0.97


def test_without_bursts_slots_no_worker_was_ready_for_are_lost() -> None:
    evenly = simulate_host(SlidingWindowLimiter, burst=1)
    catching_up = simulate_host(SlidingWindowLimiter, burst=4)
    assert evenly["throttled"] == catching_up["throttled"] == 0
    assert catching_up["share"] > evenly["share"] + 0.01


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jitter_beyond_the_headroom_costs_short_holds_not_seconds(seed: int) -> None:
    result = simulate_host(SlidingWindowLimiter, jitter=0.04, seed=seed)
    assert result["done"] == 400
    assert 0 < result["throttled"] <= 10
    assert result["longest_hold"] < 0.5
    assert result["share"] >= 0.92


@pytest.mark.parametrize("limiter_class", [FixedWindowLimiter, SlidingWindowLimiter])
def test_a_rate_configured_above_the_tier_still_gets_every_call_through(limiter_class: type) -> None:
    result = simulate_host(limiter_class, paced_at=25)
    assert result["done"] == 400
    assert result["share"] >= 0.8  # the rate is trimmed on each 429 until they stop
