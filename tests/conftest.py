"""Fixtures: real PostgreSQL, SQLite, Redis, an aiosmtpd relay and a real Celery worker."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session

from mailer import create_app
from mailer.cli import upgrade
from mailer.jobs import QUEUES
from mailer.models import Base
from mailer.sending import get_mailroom
from mailer.settings import Settings
from tests.helpers import free_port
from tests.smtp_sink import Inbox, start_sink
from worker import celery_init_app

PG_ADMIN = os.environ.get("MAILER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
# One database per test run (by process id), so that two runs on one machine
# (a developer's and CI's) never empty each other's tables.
PG_URL = os.environ.get(
    "MAILER_TEST_DATABASE_URL",
    f"postgresql+psycopg://postgres@127.0.0.1:5432/mailer_test_{os.getpid()}",
)
REDIS_BASE = os.environ.get("MAILER_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_LOCK = "mailer:test-run"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_redis_db() -> tuple[str, redis.Redis]:
    """Claim a Redis database number no other test run holds (15 down to 8)."""
    for number in range(15, 7, -1):
        client = redis.Redis.from_url(f"{REDIS_BASE}/{number}")
        if client.set(REDIS_LOCK, os.getpid(), nx=True, ex=4 * 3600):
            return f"{REDIS_BASE}/{number}", client
        holder = client.get(REDIS_LOCK)
        # Other tools claim databases too ("bench 17283"): the pid is the last word.
        pid = holder.split()[-1] if holder else b""
        if pid.isdigit() and not _alive(int(pid)):
            # A run that was killed left its claim: take the database over.
            client.set(REDIS_LOCK, os.getpid(), ex=4 * 3600)
            return f"{REDIS_BASE}/{number}", client
        client.close()
    raise RuntimeError("every Redis test database (8-15) is held by another test run")


REDIS_URL, _REDIS_CLAIM = _claim_redis_db()


def pytest_unconfigure(config: pytest.Config) -> None:
    # Whatever the run used, its Redis database is free again (a killed run's
    # claim is taken over by the next run, see _claim_redis_db).
    _REDIS_CLAIM.delete(REDIS_LOCK)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database of this run's own, built by the migrations themselves."""
    name = PG_URL.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    upgrade(PG_URL)
    yield PG_URL
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'mailer.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[Inbox, int]]:
    port = free_port()
    inbox, controller = start_sink(port)
    yield inbox, port
    controller.stop()


@pytest.fixture
def inbox(smtp: tuple[Inbox, int]) -> Inbox:
    smtp[0].reset()
    return smtp[0]


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    # Leftover task messages would be run by the next test's worker.
    # Keys other than the run's claim go; the claim stays.
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter():
        if key != REDIS_LOCK.encode():
            client.delete(key)
    yield
    client.close()


@pytest.fixture
def make_settings(smtp: tuple[Inbox, int], pg_url: str) -> Callable[..., Settings]:
    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "secret_key": "test-key-9f2c4e7a1b3d5f60-8e1a2c4b6d8f0a13",
            "base_url": "http://mailer.test",
            "sender": "Health Notices <notices@mailer.test>",
            "postal_address": "1 Test Street, Testville",
            "database_url": pg_url,
            "broker_url": REDIS_URL,
            "smtp_url": f"smtp://127.0.0.1:{smtp[1]}",
            "check_deliverability": False,
            "retry_backoff": 0.2,
            "retry_max": 4,
            "log_format": "text",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return build


def _truncate(app: Flask) -> None:
    engine = app.extensions["mailer.engine"]
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Flask]]:
    """Build apps with setting overrides; every table is emptied after the test."""
    apps: list[Flask] = []

    def build(**overrides: object) -> Flask:
        app = create_app(make_settings(**overrides))
        app.config["TESTING"] = True
        celery_init_app(app)  # tasks run in this app (apply(), the worker fixture)
        apps.append(app)
        return app

    yield build
    for app in apps:
        _truncate(app)
        get_mailroom(app).close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.extensions["mailer.sessionmaker"]() as db_session:
        yield db_session


@contextmanager
def running_worker(app: Flask, queues: Sequence[str] = QUEUES) -> Iterator[None]:
    """A real Celery worker consuming the app's broker (all its queues), in this process."""
    with start_worker(
        app.extensions["celery"],
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        shutdown_timeout=10,
        queues=list(queues),
    ):
        yield


@pytest.fixture
def worker(app: Flask) -> Iterator[None]:
    with running_worker(app):
        yield


@pytest.fixture
def campaign_app(make_app: Callable[..., Flask]) -> Flask:
    """An app whose campaigns finish quickly: short relay holds, no rate limit."""
    return make_app(relay_hold=0.3, throttle_hold=0.6, send_rate=0)


@pytest.fixture
def maildir(tmp_path) -> Iterator[object]:
    """An empty Maildir under tmp_path, as MAILER_BOUNCE_MAILBOX would name it."""
    import mailbox as stdlib_mailbox

    path = tmp_path / "bounces"
    stdlib_mailbox.Maildir(str(path), create=True)
    yield path
