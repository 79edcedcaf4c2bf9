"""The floor for bench/signup.py: a Flask handler that only parses, inserts and enqueues.

POST /subscribe reads the signup form's fields, INSERTs a row into the real
`subscriber` table in one transaction, publishes a Celery task to the same
Redis, and redirects to /check-inbox like the real view. No CSRF, no
validation, no rate limit, no consent record. It reads MAILER_DATABASE_URL and
MAILER_BROKER_URL, and runs under gunicorn as `bare_app:app` with `--pythonpath bench`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from celery import Celery
from flask import Flask, redirect, request
from sqlalchemy import create_engine, text
from werkzeug import Response

QUEUE = "bench_bare"  # a queue of its own: no mailer worker ever takes these tasks
INSERT = text(
    "INSERT INTO subscriber (email, name, status, created_at, last_signup_at)"
    " VALUES (:email, :name, 'pending', :now, :now) RETURNING id"
)

app = Flask(__name__)
engine = create_engine(os.environ["MAILER_DATABASE_URL"])
celery = Celery("bench_bare", broker=os.environ["MAILER_BROKER_URL"])
celery.conf.update(task_ignore_result=True, task_default_queue=QUEUE)


@app.post("/subscribe")
def subscribe() -> Response:
    """Parse the form, insert one row, queue one task: nothing else."""
    email = request.form.get("email", "").strip().lower()
    name = request.form.get("name", "").strip()
    topics = request.form.getlist("topics")
    with engine.begin() as connection:
        row_id = connection.execute(
            INSERT, {"email": email, "name": name, "now": datetime.now(UTC)}
        ).scalar_one()
    celery.send_task("bench.bare_signup", args=[row_id, topics])
    return redirect("/check-inbox")
