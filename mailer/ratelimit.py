"""The global send rate: one token bucket for all workers (Celery's rate_limit is per worker)."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis

# Refill by elapsed time, then take one token if there is one; otherwise say
# how long until there will be. Atomic in Redis, so workers on many machines
# share one rate.
TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], 60)
return tostring(wait)
"""


class Bucket(Protocol):
    def take(self) -> None:
        """Block until one message may be sent."""
        ...


class RedisBucket:
    """A token bucket in Redis: `rate` messages a second across all processes."""

    def __init__(self, url: str, *, rate: float, key: str = "mailer:send-rate") -> None:
        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(TAKE)
        self.rate, self.burst, self.key = rate, max(1.0, rate / 10), key

    def take(self) -> None:
        while True:
            wait = float(self.script(keys=[self.key], args=[self.rate, self.burst, time.time()]))
            if wait <= 0:
                return
            time.sleep(wait)


class LocalBucket:
    """The same bucket in one process, for the embedded default (one worker process)."""

    def __init__(self, *, rate: float) -> None:
        self.rate, self.burst = rate, max(1.0, rate / 10)
        self.tokens, self.at = self.burst, time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
                self.at = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


class Unlimited:
    def take(self) -> None:
        return None


def for_broker(broker_url: str, rate: float) -> Bucket:
    """Redis when the broker is Redis; an in-process bucket otherwise; none for rate 0."""
    if rate <= 0:
        return Unlimited()
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisBucket(broker_url, rate=rate)
    return LocalBucket(rate=rate)
