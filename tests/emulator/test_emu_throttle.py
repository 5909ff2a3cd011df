"""Rate limiting and fault injection, with a controlled clock."""

from __future__ import annotations

import pytest

from emulator.throttle import FaultInjector, FixedWindowLimiter, SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# --- the service's limiter: a counter renewed every second ---------------------------------------------------------

def test_fixed_window_allows_the_count_then_asks_to_retry_after_the_renewal_in_whole_seconds():
    clock = Clock()
    limiter = FixedWindowLimiter(3, clock=clock)
    assert [limiter.try_acquire() for _ in range(3)] == [0, 0, 0]
    clock.t += 0.1
    assert limiter.try_acquire() == 1  # 0.9 s to the renewal, rounded up as Azure words it
    clock.t += 0.9
    assert [limiter.try_acquire() for _ in range(3)] == [0, 0, 0]


def test_fixed_window_opens_with_the_first_call_so_a_burst_after_a_quiet_second_is_judged_whole():
    clock = Clock()
    limiter = FixedWindowLimiter(2, clock=clock)
    clock.t += 0.95  # wherever a burst starts, no boundary falls inside it
    assert limiter.try_acquire() == 0
    clock.t += 0.1
    assert [limiter.try_acquire(), limiter.try_acquire()] == [0, 1]


def test_fixed_window_renews_the_whole_count_at_once_so_two_windows_can_meet():
    clock = Clock()
    limiter = FixedWindowLimiter(2, clock=clock)
    assert limiter.try_acquire() == 0  # opens the window [100, 101)
    clock.t = 100.9
    assert limiter.try_acquire() == 0
    clock.t = 101.0  # a new window: 0.1 s after the last call, two more pass (a sliding window would refuse one)
    assert [limiter.try_acquire(), limiter.try_acquire(), limiter.try_acquire()] == [0, 0, 1]


def test_fixed_window_does_not_count_refused_calls():
    clock = Clock()
    limiter = FixedWindowLimiter(1, clock=clock)
    assert limiter.try_acquire() == 0
    assert [limiter.try_acquire() for _ in range(5)] == [1] * 5
    clock.t += 1.0
    assert limiter.try_acquire() == 0


def test_fixed_window_judges_a_call_by_when_it_arrived_even_if_judged_later():
    clock = Clock()
    limiter = FixedWindowLimiter(1, clock=clock)
    assert limiter.try_acquire(at=100.0) == 0
    assert limiter.try_acquire(at=101.05) == 0  # opens the next window
    assert limiter.try_acquire(at=100.99) == 1  # judged after that, but it arrived in the first one, which is full
    assert limiter.try_acquire(at=101.5) == 1


# --- the strictest reading, for clients to be tested against ------------------------------------------------------

def test_sliding_window_allows_the_count_then_asks_to_wait():
    clock = Clock()
    limiter = SlidingWindowLimiter(3, clock=clock)
    assert [limiter.try_acquire() for _ in range(3)] == [0, 0, 0]
    assert limiter.try_acquire() == 1
    clock.t += 1.0
    assert limiter.try_acquire() == 0


def test_sliding_window_refuses_any_second_with_one_call_too_many_even_across_whole_seconds():
    clock = Clock()
    limiter = SlidingWindowLimiter(2, clock=clock)
    limiter.try_acquire()
    clock.t += 0.6
    limiter.try_acquire()
    clock.t += 0.5  # 1.1 s after the first call, 0.5 s after the second: one slot free
    assert limiter.try_acquire() == 0
    assert limiter.try_acquire() >= 1


def test_sliding_window_judges_a_late_arrival_against_the_second_before_it():
    clock = Clock()
    limiter = SlidingWindowLimiter(2, clock=clock)
    assert limiter.try_acquire(at=100.0) == 0
    assert limiter.try_acquire(at=100.9) == 0
    clock.t = 101.2
    assert limiter.try_acquire(at=100.95) == 1  # two calls in (99.95, 100.95]
    assert limiter.try_acquire(at=101.05) == 0  # only 100.9 in (100.05, 101.05]


# --- faults and settings ------------------------------------------------------------------------------------------

def test_fault_rate_zero_never_fails_and_one_always_fails():
    assert not any(FaultInjector(0.0).should_fail() for _ in range(100))
    assert all(FaultInjector(1.0).should_fail() for _ in range(100))


def test_fault_rate_is_roughly_the_share_of_failures():
    injector = FaultInjector(0.3, seed=1)
    share = sum(injector.should_fail() for _ in range(2000)) / 2000
    assert 0.25 < share < 0.35


@pytest.mark.parametrize("limiter_class", [FixedWindowLimiter, SlidingWindowLimiter])
@pytest.mark.parametrize("per_second", [0, -1, float("nan"), "20"])
def test_bad_settings_are_refused(limiter_class, per_second):
    with pytest.raises(ValueError):
        limiter_class(per_second)


def test_bad_fault_rate_is_refused():
    with pytest.raises(ValueError):
        FaultInjector(1.5)


def test_fault_every_n_fails_exactly_every_nth_call_whatever_the_rate():
    injector = FaultInjector(0.0, every=3)
    assert [injector.should_fail() for _ in range(9)] == [False, False, True] * 3


def test_fault_every_below_one_is_refused():
    with pytest.raises(ValueError, match="fault-every"):
        FaultInjector(0.0, every=0)
