"""The relay's health over the last minute, shared by every worker: the campaign circuit breaker.

A single 4xx is usually about one recipient (greylisting, a full mailbox):
that message is retried later and the campaign goes on. When temporary
failures become a large share of what the relay answered in the last
minute, the relay itself is in trouble, and every worker holds the
campaign instead of burning through the list. A raw count would trip on a
big campaign's normal noise and never on a small one's outage; a rate over
a sliding window does neither.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import redis

WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Health:
    answered: int
    failed: int

    @property
    def failure_rate(self) -> float:
        return self.failed / self.answered if self.answered else 0.0


class RelayWindow(Protocol):
    def record(self, *, failed: bool) -> Health:
        """Count one answer from the relay; after a failure, return the last minute's totals."""
        ...


# One hash per second holding "ok" and "fail" counts; the sum of the last 60
# is the window. Atomic in Redis, so workers on many machines share it. A
# success only counts (one HINCRBY); the window is summed when one fails.
RECORD = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local key = KEYS[1] .. ':' .. now
redis.call('HINCRBY', key, ARGV[3], 1)
redis.call('EXPIRE', key, window + 5)
if ARGV[3] == 'ok' then return {0, 0} end
local answered, failed = 0, 0
for second = now - window + 1, now do
  local counts = redis.call('HMGET', KEYS[1] .. ':' .. second, 'ok', 'fail')
  local ok, fail = tonumber(counts[1]) or 0, tonumber(counts[2]) or 0
  answered = answered + ok + fail
  failed = failed + fail
end
return {answered, failed}
"""


class RedisWindow:
    """The window in Redis: every worker of every machine sees the same relay."""

    def __init__(self, url: str, *, key: str = "mailer:relay-health") -> None:
        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(RECORD)
        self.key = key

    def record(self, *, failed: bool) -> Health:
        answered, failures = self.script(
            keys=[self.key],
            args=[int(time.time()), WINDOW_SECONDS, "fail" if failed else "ok"],
        )
        return Health(int(answered), int(failures))


class LocalWindow:
    """The same window in one process (the embedded default has no Redis to share it in)."""

    def __init__(self) -> None:
        self.answers: deque[tuple[float, bool]] = deque()
        self.lock = threading.Lock()

    def record(self, *, failed: bool) -> Health:
        now = time.monotonic()
        with self.lock:
            self.answers.append((now, failed))
            while self.answers and self.answers[0][0] <= now - WINDOW_SECONDS:
                self.answers.popleft()
            return Health(len(self.answers), sum(1 for _, bad in self.answers if bad))


def for_broker(broker_url: str) -> RelayWindow:
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisWindow(broker_url)
    return LocalWindow()


@dataclass(frozen=True, slots=True)
class Breaker:
    """Trips when at least `threshold` of at least `min_answers` answers failed."""

    window: RelayWindow
    threshold: float = 0.5
    min_answers: int = 10

    def record(self, *, failed: bool) -> bool:
        """Count an answer; True when the campaign should hold."""
        health = self.window.record(failed=failed)
        return (
            failed and health.answered >= self.min_answers and health.failure_rate >= self.threshold
        )
