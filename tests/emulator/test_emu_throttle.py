"""Rate limiting and fault injection, with a controlled clock."""

from __future__ import annotations

import pytest

from emulator.throttle import FaultInjector, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_allows_limit_calls_per_second_then_asks_to_wait():
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.try_acquire() for _ in range(3)] == [0, 0, 0]
    assert limiter.try_acquire() == 1
    clock.t += 1.0
    assert limiter.try_acquire() == 0


def test_window_slides_rather_than_resetting_on_whole_seconds():
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    limiter.try_acquire()
    clock.t += 0.6
    limiter.try_acquire()
    clock.t += 0.5  # 1.1 s after the first call, 0.5 s after the second: one slot free
    assert limiter.try_acquire() == 0
    assert limiter.try_acquire() >= 1


def test_fault_rate_zero_never_fails_and_one_always_fails():
    assert not any(FaultInjector(0.0).should_fail() for _ in range(100))
    assert all(FaultInjector(1.0).should_fail() for _ in range(100))


def test_fault_rate_is_roughly_the_share_of_failures():
    injector = FaultInjector(0.3, seed=1)
    share = sum(injector.should_fail() for _ in range(2000)) / 2000
    assert 0.25 < share < 0.35


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        FaultInjector(1.5)
