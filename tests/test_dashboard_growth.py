"""The dashboard counts imports apart from signups and charts the net growth of the list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from mailer import stats, suppression
from mailer.models import Consent, Subscriber, SuppressionReason
from tests.admin_helpers import signed_in

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _person(
    session: Session, email: str, *, form: str, confirmed: bool, left: bool = False
) -> None:
    at = NOW - timedelta(hours=3)
    row = Subscriber(
        email=email,
        status="unsubscribed" if left else "confirmed" if confirmed else "pending",
        created_at=at,
        last_signup_at=at,
        confirmed_at=at if confirmed else None,
        unsubscribed_at=NOW - timedelta(hours=1) if left else None,
    )
    session.add(row)
    session.flush()
    session.add(
        Consent(
            subscriber_id=row.id,
            requested_at=at,
            ip="",
            form=form,
            wording="w",
            topics="article",
            confirmed_at=at if confirmed else None,
        )
    )
    session.flush()


def test_imports_apart_and_the_net_growth_after_unsubscribes_and_bounces(
    app, session: Session
) -> None:
    for number in range(4):  # a list imported with consent proof: confirmed at once
        _person(session, f"imported{number}@example.org", form="import", confirmed=True)
    _person(session, "reader@example.org", form="page", confirmed=True)
    _person(session, "waiting@example.org", form="embed", confirmed=False)
    _person(session, "leaver@example.org", form="page", confirmed=True, left=True)
    suppression.suppress(session, "imported0@example.org", SuppressionReason.HARD_BOUNCE, now=NOW)
    session.commit()

    [today] = stats.daily_signups(session, now=NOW, days=1)
    assert (today.signups, today.imports) == (3, 4)
    assert (today.confirmations, today.unsubscribes, today.bounces) == (6, 1, 1)
    assert today.net == 4
    # The rate is over the forms' signups only: 2 of 3, not 6 of 7.
    assert stats.confirmation_rate(session, now=NOW) == 2 / 3

    page = signed_in(app).get("/admin/").text
    assert "imported (" in page and "net growth after unsubscribes and bounces" in page
    assert 'class="line-net"' in page
