"""Failed logins slow down one (account, client IP) pair; nobody can lock an account (item 3).

The attack: ten wrong passwords for the admin, from ten addresses, and the
admin's right password got 429. Failures now count per (account name, client
IP): that pair waits, twice as long after each further failure; every other
client, the owner's included, logs in as before.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from mailer.login_throttle import FREE_FAILURES
from mailer.models import AdminSession, LoginFailure
from tests.admin_helpers import login, make_account

WRONG = "a wrong password, long enough"
WAIT = re.compile(r"Try again in (\d+) seconds")


def _time_passes(session, span: timedelta) -> None:
    """The failures recorded so far happened `span` earlier: no sleeping in tests."""
    session.expire_all()
    for failure in session.scalars(select(LoginFailure)):
        failure.last_failed_at = failure.last_failed_at - span
    session.commit()


def test_failures_from_other_clients_never_lock_the_owner_out(app, session):
    make_account(app)
    for number in range(10):
        answer = login(app.test_client(), password=WRONG, ip=f"203.0.113.{number}")
        assert answer.status_code == 401

    owner = login(app.test_client(), ip="198.51.100.1")

    assert owner.status_code == 302 and owner.headers["Location"] == "/admin/"
    assert session.scalar(select(AdminSession.admin_id)) is not None


def test_a_failing_client_waits_for_that_account_only(app, session):
    make_account(app)
    make_account(app, "ed@example.com", "editor")
    guesser = app.test_client()
    for _ in range(FREE_FAILURES + 1):
        assert login(guesser, password=WRONG, ip="203.0.113.7").status_code == 401

    refused = login(guesser, ip="203.0.113.7")  # even the right password, from that pair

    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many failed attempts" in refused.text
    assert app.test_client().get("/admin/").status_code == 302  # and no session
    assert login(app.test_client(), ip="198.51.100.1").status_code == 302  # owner elsewhere
    assert login(app.test_client(), "ed@example.com", ip="203.0.113.7").status_code == 302

    # Once the wait is over (the failure was that long ago), the pair may try again.
    _time_passes(session, timedelta(hours=1))
    assert login(app.test_client(), ip="203.0.113.7").status_code == 302
    session.expire_all()
    assert session.scalars(select(LoginFailure)).all() == []  # a success clears the pair


def test_the_wait_grows_with_each_failure(app, session):
    make_account(app)
    for _ in range(FREE_FAILURES):  # a typo or three cost nothing
        assert login(app.test_client(), password=WRONG, ip="203.0.113.9").status_code == 401
    waits = []
    for _ in range(4):
        assert login(app.test_client(), password=WRONG, ip="203.0.113.9").status_code == 401
        refused = login(app.test_client(), ip="203.0.113.9")
        assert refused.status_code == 429
        waits.append(int(WAIT.search(refused.text).group(1)))
        assert int(refused.headers["Retry-After"]) >= waits[-1]
        _time_passes(session, timedelta(seconds=waits[-1]))
    assert waits == [1, 2, 4, 8]
