"""Celery bound to the Flask app: every task runs inside an app context.

The worker imports mailer, never the other way round: the web process
queues tasks by name (mailer.jobs), and this package registers them.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from mailer import jobs
from worker.schedule import beat_schedule

QUEUES = jobs.QUEUES

# kombu's SQLAlchemy transport (the embedded broker) sleeps this long whenever it
# finds nothing it may take, which includes every time the worker's prefetch is
# full: at its default of 1 s a worker took about `concurrency` tasks a second
# (2 confirmation mails a second under a signup burst, bench/embedded.py); at a
# fifth, about 10. Idle, it costs the worker about 1.5 % of a core in empty SQLite
# transactions (1 s: 0.3 %).
SQLITE_BROKER_POLLING = 0.2


def celery_init_app(app: Flask) -> Celery:
    """The worker's Celery app for `app` (made once), configured for mail that must not be lost.

    It also becomes the app's queueing helper, so a task that queues more
    work uses the worker's own broker connection.
    """
    if "celery" in app.extensions:
        return app.extensions["celery"]
    settings = app.extensions["mailer.settings"]
    if settings.broker_url.startswith("sqla+"):
        # Not a transport option: kombu hands those to create_engine, which refuses it.
        kombu_sqlalchemy.Transport.polling_interval = SQLITE_BROKER_POLLING

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():  # gives tasks get_session() and the mailroom
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(
        jobs.celery_config(settings),
        beat_schedule=beat_schedule(),
        include=["worker.tasks"],
    )
    celery.set_default()
    app.extensions["celery"] = celery
    app.extensions[jobs.KEY] = jobs.Jobs(celery)
    return celery
