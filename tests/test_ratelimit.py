"""The global send rate on the embedded default: one bucket for every worker process."""

from __future__ import annotations

import multiprocessing
import time

from mailer.sending import ratelimit

RATE = 40.0  # tokens a second
TAKES = 40  # by each process: together twice what one second allows
BURST = max(1.0, RATE / 10)


def _take_all(bucket: ratelimit.Bucket, start, results) -> None:
    """In a forked child, as a Celery pool process: wait for the start, take, report when."""
    start.wait()
    began = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process
    for _ in range(TAKES):
        bucket.take()
    results.put((began, time.monotonic()))


def _tokens_granted_by_two_processes(bucket: ratelimit.Bucket) -> tuple[int, float]:
    """Two forked processes share `bucket`; return the tokens granted and the seconds it took."""
    fork = multiprocessing.get_context("fork")  # how Celery's prefork pool makes its children
    start, results = fork.Event(), fork.Queue()
    children = [fork.Process(target=_take_all, args=(bucket, start, results)) for _ in range(2)]
    for child in children:
        child.start()
    start.set()
    spans = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=10)
        assert child.exitcode == 0
    window = max(end for _, end in spans) - min(began for began, _ in spans)
    return TAKES * len(children), window


def test_worker_processes_of_the_embedded_default_share_one_rate(tmp_path):
    bucket = ratelimit.for_broker(f"sqla+sqlite:///{tmp_path / 'broker.db'}", RATE)
    assert isinstance(bucket, ratelimit.FileBucket)
    bucket.take()  # the parent uses it before forking, as the worker's main process may

    granted, window = _tokens_granted_by_two_processes(bucket)

    # Every grant fell inside the window: at most a full bucket plus the refill.
    # (A bucket per process, as before, lets both take 40 within about 0.9 s.)
    assert granted <= RATE * window + BURST, (granted, window)
    assert (tmp_path / "broker.db.send-rate").stat().st_size == 16


def test_redis_and_other_brokers_keep_their_buckets():
    assert isinstance(ratelimit.for_broker("redis://127.0.0.1:6379/0", RATE), ratelimit.RedisBucket)
    assert isinstance(ratelimit.for_broker("memory://", RATE), ratelimit.LocalBucket)
    assert isinstance(ratelimit.for_broker("sqla+sqlite:///var/broker.db", 0), ratelimit.Unlimited)
