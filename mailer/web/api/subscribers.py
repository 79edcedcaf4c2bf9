"""/api/v1/subscribers: a CMS adds, finds, changes, unsubscribes and erases readers."""

from __future__ import annotations

from flask import Response, current_app, jsonify, request, url_for

from mailer import addresses, admins, clock, db, metrics, privacy, subscriber_search, subscriptions
from mailer import subscribers as managed
from mailer.errors import AddressLimited, InvalidAddress, SubscriberConflict, SubscriberRefused
from mailer.jobs import get_jobs
from mailer.settings import Settings
from mailer.web.api import TAGS, actor, bp, problems
from mailer.web.api.fields import MAX_ID
from mailer.web.api.subscriber_models import (
    Created,
    SubscriberChange,
    SubscriberIn,
    SubscriberListed,
    SubscriberOut,
    SubscriberPage,
    SubscriberPath,
    SubscriberQuery,
)

TAG = [TAGS["subscribers"]]


def _settings() -> Settings:
    return current_app.extensions["mailer.settings"]


@bp.errorhandler(SubscriberConflict)
def conflict(error: SubscriberConflict) -> Response:
    return problems.problem(409, str(error))


@bp.errorhandler(SubscriberRefused)
def refused(error: SubscriberRefused) -> Response:
    return problems.problem(422, str(error))


@bp.errorhandler(AddressLimited)
def limited(error: AddressLimited) -> Response:
    metrics.signup_refused(str(error))
    return problems.problem(
        429, f"no confirmation mail now: {error}", headers={"Retry-After": "3600"}
    )


def _subscriber_json(subscriber_id: int) -> dict[str, object]:
    session = db.get_session()
    subscriber = managed.get(session, subscriber_id)
    return SubscriberOut.of(subscriber, managed.state_of(session, subscriber)).model_dump(
        mode="json"
    )


def _new_subscriber(body: SubscriberIn) -> managed.NewSubscriber:
    settings = _settings()
    try:
        email = addresses.normalise(
            body.email,
            check_deliverability=settings.check_deliverability,
            timeout=settings.deliverability_timeout,
        )
    except InvalidAddress as error:
        raise SubscriberRefused(f"email: {error}") from None
    return managed.NewSubscriber(
        email=email,
        name=body.name,
        topics=body.topics,
        frequency=body.frequency or settings.default_frequency,
    )


@bp.post(
    "/subscribers",
    tags=TAG,
    operation_id="createSubscriber",
    responses={
        201: Created,
        202: Created,
        **problems.responses(409, 422),
        429: problems.described(429, "The address had a confirmation mail recently"),
    },
)
def create_subscriber(body: SubscriberIn) -> tuple[Response, int, dict[str, str]]:
    """Add a subscriber

    With `consent_proof`: confirmed at once (201), no mail, the proof kept as the
    consent record. Without: pending (202) and a confirmation mail, as a signup
    on the site, under the same limits per address (429 past them). An address
    that is a subscriber already, or one that left or bounced, is a 409 with a
    consent proof: only the person can bring it back, by confirming a signup.
    """
    new = _new_subscriber(body)
    session = db.get_session()
    now = clock.now()
    if body.consent_proof is not None:
        subscriber_id = managed.add_with_consent(
            session, new, proof=body.consent_proof, actor=actor(), now=now
        )
        mail_id = None
    else:
        subscriber_id, mail_id = managed.add_pending(
            session,
            new,
            request=subscriptions.SignupRequest(
                ip=request.remote_addr or "",
                user_agent=request.user_agent.string,
                form="api",
                source_url=body.source_url,
                wording=f"Signed up through the site's API ({actor()}); subscribed only once "
                "the address's owner confirms the emailed link.",
            ),
            now=now,
        )
    session.commit()  # commit before enqueueing: the worker must find the row
    metrics.signup_accepted("api")
    if mail_id is not None:
        get_jobs().send_mail(mail_id)
    answer = Created(
        subscriber=SubscriberOut.model_validate(_subscriber_json(subscriber_id)),
        confirmation_mail="none" if mail_id is None else "queued",
    )
    location = url_for("api.get_subscriber", subscriber_id=subscriber_id)
    status = 201 if mail_id is None else 202
    return jsonify(answer.model_dump(mode="json")), status, {"Location": location}


@bp.get(
    "/subscribers",
    tags=TAG,
    operation_id="listSubscribers",
    responses={200: SubscriberPage, **problems.responses(422)},
)
def list_subscribers(query: SubscriberQuery) -> Response:
    """Find subscribers

    Newest first, `limit` at a time; filter by state, topic and a search in
    address and name. Keyset paging: a deep page costs what the first does.
    """
    flt = subscriber_search.SubscriberFilter(
        query=query.search, state=query.state or "", topic=query.topic or ""
    )
    # Every id is below a cursor past the largest an id can be: the first page, then.
    after = int(query.cursor) if query.cursor and int(query.cursor) <= MAX_ID else None
    page = subscriber_search.search(db.get_session(), flt, after=after, limit=query.limit)
    body = SubscriberPage(
        items=[SubscriberListed.of(row) for row in page.rows],
        next_cursor=str(page.after) if page.after is not None else None,
    )
    return jsonify(body.model_dump(mode="json"))


@bp.get(
    "/subscribers/<int:subscriber_id>",
    tags=TAG,
    operation_id="getSubscriber",
    responses={200: SubscriberOut, **problems.responses(404)},
)
def get_subscriber(path: SubscriberPath) -> Response:
    """One subscriber"""
    return jsonify(_subscriber_json(path.subscriber_id))


@bp.patch(
    "/subscribers/<int:subscriber_id>",
    tags=TAG,
    operation_id="changeSubscriber",
    responses={200: SubscriberOut, **problems.responses(404, 409, 422)},
)
def change_subscriber(path: SubscriberPath, body: SubscriberChange) -> Response:
    """Change topics, name, frequency or time zone

    Only a confirmed subscriber's (409 otherwise); the next mail follows the change.
    """
    session = db.get_session()
    managed.change(
        session, path.subscriber_id, **body.model_dump(exclude_none=True), now=clock.now()
    )
    session.commit()
    return jsonify(_subscriber_json(path.subscriber_id))


@bp.post(
    "/subscribers/<int:subscriber_id>/unsubscribe",
    tags=TAG,
    operation_id="unsubscribeSubscriber",
    responses={200: SubscriberOut, **problems.responses(404)},
)
def unsubscribe_subscriber(path: SubscriberPath) -> Response:
    """Unsubscribe

    At once, from everything, for every send under way (channel `api`);
    repeating it changes nothing. Coming back takes a new confirmed signup.
    """
    session = db.get_session()
    managed.get(session, path.subscriber_id)
    subscriptions.unsubscribe(session, path.subscriber_id, now=clock.now(), channel="api")
    session.commit()
    return jsonify(_subscriber_json(path.subscriber_id))


@bp.delete(
    "/subscribers/<int:subscriber_id>",
    tags=TAG,
    operation_id="eraseSubscriber",
    responses={204: None, **problems.responses(404)},
)
def erase_subscriber(path: SubscriberPath) -> tuple[str, int]:
    """Erase every piece of personal data

    As the console's Erase (GDPR Art. 17): only the address's hash stays,
    suppressed, so it is never imported or mailed again. Audited by id.
    """
    session = db.get_session()
    now = clock.now()
    privacy.erase_subscriber(session, path.subscriber_id, now=now)
    # The audit entry names the id only: the address itself is what was erased.
    admins.audit(session, actor(), "subscriber.erase", f"subscriber {path.subscriber_id}", now=now)
    session.commit()
    return "", 204
