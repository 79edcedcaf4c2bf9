"""Notices (list, create, edit, delete) and the feeds they are imported from."""

from __future__ import annotations

import logging
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug import Response
from werkzeug.datastructures import MultiDict

from mailer import automatic, clock, db, feeds, forecast, notices, time_zones
from mailer.errors import InvalidFeed, InvalidNotice
from mailer.jobs import get_jobs
from mailer.models import Feed, Notice, NoticeKind
from mailer.web.admin import bp
from mailer.web.admin.auth import admin_required, audit, login_required
from mailer.web.admin.common import from_local_input, settings, to_local_input, zone_name
from mailer.web.site_context import site_settings

log = logging.getLogger("mailer.web.admin")
PAGE = 50
FIELDS = (
    "kind",
    "title",
    "url",
    "summary",
    "image_url",
    "image_alt",
    "published_at",
    "starts_at",
    "duration_minutes",
    "time_zone",
    "join_url",
)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None  # notices.check names the bad zone


def _draft(form: MultiDict[str, str]) -> notices.NoticeDraft:
    """The form's values as a draft; notices.check then checks them."""
    zone = _zone(form.get("time_zone", "").strip())
    times = {}
    for name in ("published_at", "starts_at"):
        try:
            times[name] = from_local_input(form.get(name, ""), zone)
        except ValueError as error:
            raise InvalidNotice(f"{name}: {error}") from None
    minutes = form.get("duration_minutes", "").strip()
    if minutes and not minutes.isdigit():
        raise InvalidNotice("duration_minutes must be a whole number of minutes")
    return notices.NoticeDraft(
        kind=form.get("kind", ""),
        title=form.get("title", ""),
        url=form.get("url", ""),
        summary=form.get("summary", ""),
        image_url=form.get("image_url", ""),
        image_alt=form.get("image_alt", ""),
        time_zone=form.get("time_zone", "").strip(),
        join_url=form.get("join_url", ""),
        duration_minutes=int(minutes) if minutes else None,
        **times,
    )


def _bad_field(message: str) -> str:
    """Which field an InvalidNotice message is about, to show the error beside it."""
    return next((name for name in FIELDS if re.search(rf"\b{name}\b", message)), "")


def _form_page(values: dict[str, str], *, notice_id: int | None, error: str = "") -> str:
    return render_template(
        "web/admin/notice_form.html",
        values=values,
        notice_id=notice_id,
        kinds=list(NoticeKind),
        error=error,
        bad_field=_bad_field(error),
        zone=zone_name(),
        zone_groups=time_zones.grouped(clock.now()),
    )


@bp.get("/notices")
@login_required
def notices_list() -> str:
    before = request.args.get("before", type=int)
    query = select(Notice).order_by(Notice.id.desc()).limit(PAGE + 1)
    if before:
        query = query.where(Notice.id < before)
    session = db.get_session()
    rows = list(session.scalars(query))
    return render_template(
        "web/admin/notices.html",
        notices=rows[:PAGE],
        next_before=rows[PAGE - 1].id if len(rows) > PAGE else None,
        forecasts=forecast.forecast(
            session,
            rows[:PAGE],
            automatic.Schedule.from_settings(settings()),
            ready=site_settings().ready,
            now=clock.now(),
        ),
    )


@bp.route("/notices/new", methods=["GET", "POST"])
@login_required
def notice_new() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return _form_page({"kind": "article"}, notice_id=None)
    session = db.get_session()
    try:
        notice_id = notices.create_notice(
            session, _draft(request.form), source="admin", now=clock.now()
        )
    except InvalidNotice as error:
        return _form_page(request.form.to_dict(), notice_id=None, error=str(error)), 400
    audit("notice.create", f"notice {notice_id}", request.form.get("title", "").strip())
    session.commit()
    flash(f"Notice {notice_id} saved.", "ok")
    return redirect(url_for("admin.notices_list"), code=303)


def _values(notice: Notice) -> dict[str, str]:
    zone = _zone(notice.time_zone)
    return {
        "kind": notice.kind,
        "title": notice.title,
        "url": notice.url,
        "summary": notice.summary,
        "image_url": notice.image_url,
        "image_alt": notice.image_alt,
        "published_at": to_local_input(notice.published_at),
        "starts_at": to_local_input(notice.starts_at, zone),
        "duration_minutes": str(notice.duration_minutes or ""),
        "time_zone": notice.time_zone,
        "join_url": notice.join_url,
    }


@bp.route("/notices/<int:notice_id>/edit", methods=["GET", "POST"])
@login_required
def notice_edit(notice_id: int) -> str | Response | tuple[str, int]:
    session = db.get_session()
    notice = session.get(Notice, notice_id)
    if notice is None:
        abort(404, f"There is no notice {notice_id}.")
    if request.method == "GET":
        return _form_page(_values(notice), notice_id=notice_id)
    try:
        notices.update_notice(session, notice_id, _draft(request.form))
    except InvalidNotice as error:
        session.rollback()
        return _form_page(request.form.to_dict(), notice_id=notice_id, error=str(error)), 400
    audit("notice.edit", f"notice {notice_id}", notice.title)
    session.commit()
    flash(f"Notice {notice_id} saved.", "ok")
    return redirect(url_for("admin.notices_list"), code=303)


@bp.post("/notices/<int:notice_id>/delete")
@login_required
def notice_delete(notice_id: int) -> Response:
    session = db.get_session()
    notice = session.get(Notice, notice_id)
    if notice is None:
        abort(404, f"There is no notice {notice_id}.")
    title = notice.title
    try:
        notices.delete_notice(session, notice_id)
    except InvalidNotice as error:
        session.rollback()
        flash(f"Not deleted: {error}.", "error")
        return redirect(url_for("admin.notices_list"), code=303)
    audit("notice.delete", f"notice {notice_id}", title)
    session.commit()
    flash(f"Notice {notice_id} deleted.", "ok")
    return redirect(url_for("admin.notices_list"), code=303)


def _feeds_page(error: str = "", values: dict[str, str] | None = None) -> str:
    rows = db.get_session().scalars(select(Feed).order_by(Feed.id)).all()
    return render_template(
        "web/admin/feeds.html",
        feeds=rows,
        kinds=list(NoticeKind),
        error=error,
        values=values or {"kind": "article"},
    )


@bp.get("/feeds")
@login_required
def feeds_list() -> str:
    return _feeds_page()


@bp.post("/feeds")
@admin_required
def feed_add() -> str | Response | tuple[str, int]:
    """Admins only: a feed makes the workers fetch a URL and mail what it says."""
    session = db.get_session()
    url, kind = request.form.get("url", ""), request.form.get("kind", "")
    review = bool(request.form.get("review"))
    try:
        feed_id = feeds.add_feed(session, url=url, kind=kind, now=clock.now(), review=review)
    except InvalidFeed as error:
        session.rollback()
        return _feeds_page(str(error), request.form.to_dict()), 400
    audit("feed.add", f"feed {feed_id}", url.strip())
    session.commit()
    flash(f"Feed {feed_id} added; it is polled every 15 minutes.", "ok")
    return redirect(url_for("admin.feeds_list"), code=303)


FEED_ACTIONS = {
    "disable": {"enabled": False},
    "enable": {"enabled": True},
    "review": {"review": True},
    "no-review": {"review": False},
}


@bp.post("/feeds/<int:feed_id>/<action>")
@admin_required
def feed_action(feed_id: int, action: str) -> Response:
    session = db.get_session()
    if action not in {*FEED_ACTIONS, "delete"}:
        abort(404)
    try:
        if action == "delete":
            feeds.delete_feed(session, feed_id)
        else:
            feeds.set_feed(session, feed_id, **FEED_ACTIONS[action])
    except InvalidFeed as error:
        abort(404, str(error))
    audit(f"feed.{action}", f"feed {feed_id}")
    session.commit()
    flash(f"Feed {feed_id}: {action} done.", "ok")
    return redirect(url_for("admin.feeds_list"), code=303)


@bp.post("/notices/<int:notice_id>/approve")
@login_required
def notice_approve(notice_id: int) -> Response:
    """Release a notice from a reviewed feed to automatic sends."""
    session = db.get_session()
    try:
        approved = notices.approve_notice(session, notice_id, now=clock.now())
    except InvalidNotice as error:
        abort(404, str(error))
    if approved:
        audit("notice.approve", f"notice {notice_id}")
    session.commit()
    flash(f"Notice {notice_id} approved: it goes out with the next automatic mail.", "ok")
    return redirect(url_for("admin.notices_list"), code=303)


@bp.post("/feeds/poll")
@admin_required
def feeds_poll() -> Response:
    audit("feed.poll")
    db.get_session().commit()
    if get_jobs().poll_feeds():
        flash("Polling every feed now; reload this page in a minute.", "ok")
    else:
        flash("The task queue is unreachable; the feeds are polled at the next round.", "error")
    return redirect(url_for("admin.feeds_list"), code=303)
