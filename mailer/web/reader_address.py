"""Moving a subscription to a new address, and undoing a move, from links in mail.

The new address proves itself with a link mailed there; once the move is
done the old address gets a notice with a link that moves it back. Both
links lead to a page with a button: mail scanners fetch links, and only the
POST changes anything.
"""

from __future__ import annotations

from flask import render_template, request
from flask_wtf import FlaskForm

from mailer import clock, db, preferences, token_rows
from mailer.errors import AddressChangeRefused
from mailer.jobs import get_jobs
from mailer.web.reader import AddressForm, bp, keys, render_preferences, subscriber_of


@bp.post("/preferences/<token>/address")
def change_address(token: str):
    subscriber = subscriber_of(token)
    form = AddressForm(prefix="address")
    if not form.validate_on_submit():
        return render_preferences(token, subscriber, 400, address_form=form)
    session = db.get_session()
    try:
        mail_id = preferences.request_address_change(
            session, subscriber.id, form.email.data, now=clock.now()
        )
    except AddressChangeRefused as error:
        form.email.errors = [str(error)]
        return render_preferences(token, subscriber, 400, address_form=form)
    session.commit()
    if mail_id is not None:
        get_jobs().send_mail(mail_id)
    return render_preferences(token, subscriber, address_sent=form.email.data)


@bp.route("/change-address/<token>", methods=["GET", "POST"])
def confirm_address(token: str):
    """GET shows a button (mail scanners fetch links); the POST moves the subscription."""
    session = db.get_session()
    subscriber_id, email = token_rows.address_change(session, keys(), token)
    form = FlaskForm()
    if request.method == "GET":
        return render_template("web/change_address.html", form=form, email=email, done=None)
    if not form.validate_on_submit():
        return render_template("web/change_address.html", form=form, email=email, done=None), 400
    try:
        notice_id = preferences.confirm_address_change(
            session, subscriber_id, email, now=clock.now()
        )
    except AddressChangeRefused as error:
        session.rollback()
        return render_template(
            "web/change_address.html", form=None, email=email, done=False, error=str(error)
        ), 409
    session.commit()
    if notice_id is not None:
        get_jobs().send_mail(notice_id)  # tell the old address, with a way back
    return render_template("web/change_address.html", form=None, email=email, done=True)


@bp.route("/undo-address/<token>", methods=["GET", "POST"])
def undo_address(token: str):
    """The old address's way back after a move it did not ask for."""
    session = db.get_session()
    subscriber_id, old_email, new_email = token_rows.address_undo(session, keys(), token)
    form = FlaskForm()
    page = {"old_email": old_email, "new_email": new_email}
    if request.method == "GET":
        return render_template("web/undo_address.html", form=form, done=None, **page)
    if not form.validate_on_submit():
        return render_template("web/undo_address.html", form=form, done=None, **page), 400
    try:
        preferences.undo_address_change(
            session, subscriber_id, old_email, new_email, now=clock.now()
        )
    except AddressChangeRefused as error:
        session.rollback()
        return render_template(
            "web/undo_address.html", form=None, done=False, error=str(error), **page
        ), 409
    session.commit()
    return render_template("web/undo_address.html", form=None, done=True, **page)
