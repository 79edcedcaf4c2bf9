"""The global send rate: one token bucket for all workers (Celery's rate_limit is per worker)."""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
from pathlib import Path
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
    """The same bucket in one process, for brokers with nowhere to share it (e.g. memory://)."""

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


class FileBucket:
    """The bucket in a 16-byte file under an exclusive flock: one rate for every process.

    For the embedded default, whose worker forks pool processes (and `make
    run` may start more than one worker) with no Redis to share a bucket in.
    The clock is CLOCK_MONOTONIC, which all processes on a machine share.
    """

    STATE = struct.Struct("<dd")  # tokens, monotonic time they were counted at

    def __init__(self, path: Path, *, rate: float) -> None:
        self.path, self.rate, self.burst = path, rate, max(1.0, rate / 10)
        self.threads = threading.Lock()  # flock does not exclude threads sharing a descriptor
        self.fd, self.pid = -1, 0

    def _descriptor(self) -> int:
        # Opened per process: a descriptor inherited across fork shares its
        # flock with the parent, so pool children would not exclude each other.
        if self.pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd, self.pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self.fd

    def take(self) -> None:
        while True:
            with self.threads:
                fd = self._descriptor()
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    wait = self._take_or_wait(fd)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            if wait <= 0:
                return
            time.sleep(wait)

    def _take_or_wait(self, fd: int) -> float:
        """Refill by elapsed time and take a token (0), or say how long until one (seconds)."""
        now = time.monotonic()
        raw = os.pread(fd, self.STATE.size, 0)
        tokens, at = self.STATE.unpack(raw) if len(raw) == self.STATE.size else (self.burst, now)
        # max(0, ...): a file left from before a reboot holds a later time than now.
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        os.pwrite(fd, self.STATE.pack(tokens - 1 if wait <= 0 else tokens, now), 0)
        return wait


class Unlimited:
    def take(self) -> None:
        return None


def for_broker(broker_url: str, rate: float) -> Bucket:
    """Where the bucket lives: Redis, or a file beside an SQLite broker; none for rate 0.

    Any other broker gets an in-process bucket: one rate per worker process.
    """
    if rate <= 0:
        return Unlimited()
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisBucket(broker_url, rate=rate)
    database = broker_url.partition(":///")[2] if broker_url.startswith("sqla+sqlite:") else ""
    if database and database != ":memory:":
        return FileBucket(Path(database).with_name(Path(database).name + ".send-rate"), rate=rate)
    return LocalBucket(rate=rate)
