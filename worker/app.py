"""Entry point for `celery -A worker.app worker|beat`: where a worker process builds its app."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from mailer import create_app
from worker import celery_init_app

flask_app = create_app()
celery = celery_init_app(flask_app)


@worker_process_init.connect
def _fresh_pool(**_: Any) -> None:
    # Prefork children inherit the parent's pooled connections; sharing a
    # socket between processes corrupts both sides, so drop them unclosed.
    flask_app.extensions["mailer.engine"].dispose(close=False)
