"""Service set-up shared by the benchmarks: a free port, a claimed Redis db, a fresh database."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
import redis

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_BASE = "redis://127.0.0.1:6379"
# The test suite's claim key: a benchmark and a test run never empty each other's database.
REDIS_LOCK = "mailer:test-run"


def database_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def redis_claim(numbers: Sequence[int], label: str, ttl: int) -> Iterator[redis.Redis]:
    """Take a free Redis database, emptied; empty it and let go of it afterwards."""
    for number in numbers:
        client = redis.Redis.from_url(f"{REDIS_BASE}/{number}")
        if client.set(REDIS_LOCK, f"{label} {os.getpid()}", nx=True, ex=ttl):
            break
        client.close()
    else:
        sys.exit(f"every Redis database in {tuple(numbers)} is held by a test run; try later")
    empty_redis(client)
    try:
        yield client
    finally:
        empty_redis(client)
        client.delete(REDIS_LOCK)
        client.close()


def empty_redis(client: redis.Redis) -> None:
    """Delete every key but the claim (FLUSHDB would drop the claim too)."""
    for key in client.scan_iter(count=1000):
        if key != REDIS_LOCK.encode():
            client.unlink(key)


@contextmanager
def fresh_database(name: str) -> Iterator[psycopg.Connection]:
    """Recreate database `name` from the migrations; drop it afterwards."""
    from mailer.cli import upgrade

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(database_url(name))
        with psycopg.connect(database_url(name).replace("+psycopg", ""), autocommit=True) as db:
            yield db
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
