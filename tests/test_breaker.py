"""The circuit breaker's sliding window, in Redis (shared by workers) and in one process."""

from __future__ import annotations

import pytest

from mailer.sending.breaker import Breaker, LocalWindow, RedisWindow
from tests.conftest import REDIS_URL


@pytest.mark.parametrize("make_window", [lambda: RedisWindow(REDIS_URL), LocalWindow])
def test_trips_on_the_failure_rate_not_on_a_count(make_window):
    breaker = Breaker(make_window(), threshold=0.5, min_answers=10)
    for _ in range(30):
        assert breaker.record(failed=False) is False
    # 10 failures among 40 answers: a quarter, the relay is fine.
    assert [breaker.record(failed=True) for _ in range(10)] == [False] * 10
    # Failures keep coming: at 30 of 60 the breaker trips.
    tripped = [breaker.record(failed=True) for _ in range(20)]
    assert tripped[-1] is True and tripped.index(True) == 19


@pytest.mark.parametrize("make_window", [lambda: RedisWindow(REDIS_URL), LocalWindow])
def test_a_few_answers_never_trip_it(make_window):
    breaker = Breaker(make_window(), threshold=0.5, min_answers=10)
    assert [breaker.record(failed=True) for _ in range(9)] == [False] * 9
    assert breaker.record(failed=True) is True
