"""Acting on subscribers (admins): bulk actions on ticked rows or a whole filter, and one
person's profile, unsubscribe and resent confirmation."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug import Response

from mailer import clock, db, subscriber_actions, subscriber_search
from mailer.errors import InvalidFilter, SubscriberNotFound
from mailer.jobs import get_jobs
from mailer.web.admin import bp
from mailer.web.admin.auth import admin_required, audit


def _scope() -> tuple[list[int], str, dict[str, str]]:
    """The ids the form names: its ticked rows, or every match of its filter (up to MAX_BULK)."""
    filter_args = {name: request.form.get(name, "") for name in ("q", "state", "topic")}
    if request.form.get("scope") == "filter":
        flt = subscriber_search.SubscriberFilter(
            query=filter_args["q"], state=filter_args["state"], topic=filter_args["topic"]
        )
        ids = subscriber_search.matching_ids(
            db.get_session(), flt, limit=subscriber_actions.MAX_BULK
        )
        return ids, "every match of the filter", filter_args
    ids = [int(item) for item in request.form.getlist("ids") if item.isdigit()]
    return ids, "the ticked subscribers", filter_args


def _list(filter_args: dict[str, str]) -> Response:
    args = {name: value for name, value in filter_args.items() if value}
    return redirect(url_for("admin.subscribers", **args), code=303)


@bp.post("/subscribers/bulk")
@admin_required
def subscribers_bulk() -> Response | str:
    action, topic = request.form.get("action", ""), request.form.get("bulk_topic", "")
    try:
        ids, scope, filter_args = _scope()
    except InvalidFilter as error:
        flash(f"Nothing done: {error}.", "error")
        return redirect(url_for("admin.subscribers"), code=303)
    if not ids:
        flash("Nothing done: tick some subscribers first, or choose every match.", "error")
        return _list(filter_args)
    if action in subscriber_actions.DESTRUCTIVE and request.form.get("confirmed") != "yes":
        # Asked once more, with the count: these cannot be undone from here.
        return render_template(
            "web/admin/subscribers_bulk_confirm.html",
            action=action,
            label=subscriber_actions.ACTIONS[action],
            count=len(ids),
            scope=scope,
            form=request.form,
        )
    session = db.get_session()
    try:
        outcome = subscriber_actions.apply_bulk(session, ids, action, topic=topic, now=clock.now())
    except InvalidFilter as error:
        session.rollback()
        flash(f"Nothing done: {error}.", "error")
        return _list(filter_args)
    # Counts only: which people is what the rows themselves record.
    audit(
        f"subscribers.{action}",
        "subscribers",
        f"{scope}: {outcome.changed} changed, {outcome.unchanged} left as they were"
        + (f" (topic {topic})" if action in subscriber_actions.NEEDS_TOPIC else ""),
    )
    session.commit()
    if outcome.mail_ids:
        get_jobs().send_mails(outcome.mail_ids, queue="transactional")
    flash(
        f"{subscriber_actions.ACTIONS[action]}: {outcome.changed} changed, "
        f"{outcome.unchanged} left as they were.",
        "ok",
    )
    return _list(filter_args)


def _person(subscriber_id: int) -> Response:
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id), code=303)


@bp.post("/subscribers/<int:subscriber_id>/profile")
@admin_required
def subscriber_profile(subscriber_id: int) -> Response:
    session = db.get_session()
    try:
        changed = subscriber_actions.update_profile(
            session,
            subscriber_id,
            name=request.form.get("name", ""),
            topics=request.form.getlist("topics"),
            frequency=request.form.get("frequency", ""),
            now=clock.now(),
        )
    except SubscriberNotFound:
        abort(404, f"There is no subscriber {subscriber_id}.")
    except InvalidFilter as error:
        session.rollback()
        flash(f"Not saved: {error}.", "error")
        return _person(subscriber_id)
    if changed:
        audit("subscriber.edit", f"subscriber {subscriber_id}", "changed " + ", ".join(changed))
    session.commit()
    flash(f"Saved: {', '.join(changed)}." if changed else "Nothing had changed.", "ok")
    return _person(subscriber_id)


@bp.post("/subscribers/<int:subscriber_id>/<action>")
@admin_required
def subscriber_action(subscriber_id: int, action: str) -> Response:
    if action not in ("unsubscribe", "resend_confirmation"):
        abort(404)
    session = db.get_session()
    outcome = subscriber_actions.apply_bulk(session, [subscriber_id], action, now=clock.now())
    if not outcome.changed and not outcome.unchanged:
        abort(404, f"There is no subscriber {subscriber_id}.")
    audit(f"subscriber.{action}", f"subscriber {subscriber_id}")
    session.commit()
    if outcome.mail_ids:
        get_jobs().send_mails(outcome.mail_ids, queue="transactional")
    if action == "unsubscribe":
        message = "Unsubscribed." if outcome.changed else "Was unsubscribed already."
    else:
        message = (
            "The confirmation mail is on its way again."
            if outcome.changed
            else "Not sent: the address had a confirmation mail within the hour, or three today."
        )
    flash(message, "ok" if outcome.changed else "info")
    return _person(subscriber_id)
