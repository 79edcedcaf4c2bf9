"""Subscribers in the console (admins only): search, one subscriber's record, export,
erase, and CSV import with a preview and a per-row report.

Large lists go through `mailer subscribers import|export` instead; the web
import takes files up to WEB_IMPORT_MAX_BYTES.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections import Counter
from collections.abc import Iterator

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from mailer import clock, db, imports, privacy, subscriber_actions, subscriber_search
from mailer.errors import SubscriberNotFound
from mailer.jobs import get_jobs
from mailer.models import Topic
from mailer.sending import get_mailroom
from mailer.web.admin import bp
from mailer.web.admin.auth import admin_required, audit, current_account
from mailer.web.forms import TOPIC_LABELS, frequency_choices

# About 10,000 rows: preview and import each take a few seconds, well inside a
# web worker's timeout (the confirmation mails alone cost ~0.5 ms each to queue).
WEB_IMPORT_MAX_BYTES = 512 * 1024
PREVIEW_ROWS = 10
SHOWN_OUTCOMES = 1000  # rows listed on the preview and report pages
IMPORT_ENDPOINTS = {"admin.subscribers_import_preview", "admin.subscribers_import_run"}


@bp.url_value_preprocessor
def _larger_bodies_for_imports(endpoint: str | None, _values: dict | None) -> None:
    """Let a signed-in admin post an import file larger than the site's body limit.

    This hook runs before any before_request function, so before CSRFProtect
    reads the form under the site's small limit (MAILER_MAX_BODY_BYTES), and
    only for admins, so nobody else can make the app parse a large body.
    """
    if endpoint in IMPORT_ENDPOINTS and current_user.is_authenticated and current_user.is_admin:
        # The preview page posts the file back base64-encoded: a third larger.
        request.max_content_length = WEB_IMPORT_MAX_BYTES * 2
        request.max_form_memory_size = WEB_IMPORT_MAX_BYTES * 2


def _filter() -> subscriber_search.SubscriberFilter:
    return subscriber_search.SubscriberFilter(
        query=request.args.get("q", ""),
        state=request.args.get("state", ""),
        topic=request.args.get("topic", ""),
    )


def _filter_args(flt: subscriber_search.SubscriberFilter) -> dict[str, str]:
    return {
        name: value
        for name, value in (("q", flt.query), ("state", flt.state), ("topic", flt.topic))
        if value
    }


def _sort() -> str:
    sort = request.args.get("sort", "newest")
    return sort if sort in subscriber_search.SORTS else "newest"


@bp.get("/subscribers")
@admin_required
def subscribers() -> tuple[str, int]:
    try:
        flt = _filter()
    except subscriber_search.InvalidFilter as error:
        return _list_page(subscriber_search.SubscriberFilter(), None, error=str(error)), 400
    sort, session = _sort(), db.get_session()
    page = subscriber_search.search(
        session,
        flt,
        after=subscriber_search.page_key(sort, request.args.get("after")),
        before=subscriber_search.page_key(sort, request.args.get("before")),
        sort=sort,
    )
    return _list_page(flt, page, total=subscriber_search.count(session, flt)), 200


def _list_page(
    flt: subscriber_search.SubscriberFilter,
    page: subscriber_search.Page | None,
    error: str = "",
    total: int | None = None,
) -> str:
    args = _filter_args(flt)
    return render_template(
        "web/admin/subscribers.html",
        flt=flt,
        typed=request.args,  # shown back in the form, also when it was refused
        args=args,
        sort=_sort(),
        sorts={"newest": "Newest first", "oldest": "Oldest first", "email": "Address, A to Z"},
        page=page,
        total=total,
        cap=subscriber_search.COUNT_CAP,
        error=error,
        states=subscriber_search.STATES,
        topics=subscriber_search.TOPICS,
        actions=subscriber_actions.ACTIONS,
    )


@bp.get("/subscribers/export.csv")
@admin_required
def subscribers_export() -> Response:
    """The current filter's subscribers as CSV, streamed a keyset batch at a time."""
    try:
        flt = _filter()
    except subscriber_search.InvalidFilter as error:
        abort(400, str(error))
    audit("subscribers.export", "subscribers", flt.audited())
    db.get_session().commit()
    # The stream outlives the request's session: it reads through its own,
    # closed when the last line is sent or the client goes away.
    make_session = current_app.extensions["mailer.sessionmaker"]

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(subscriber_search.EXPORT_COLUMNS)
        with make_session() as session:
            for count, row in enumerate(subscriber_search.iter_matching(session, flt), start=1):
                writer.writerow(subscriber_search.export_fields(row))
                if count % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    stamp = clock.now().strftime("%Y%m%d-%H%M")
    return Response(
        lines(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="subscribers-{stamp}.csv"'},
    )


def _record_or_404(subscriber_id: int) -> subscriber_search.SubscriberRecord:
    try:
        return subscriber_search.subscriber_record(db.get_session(), subscriber_id)
    except SubscriberNotFound:
        abort(404, f"There is no subscriber {subscriber_id}.")


@bp.get("/subscribers/<int:subscriber_id>")
@admin_required
def subscriber(subscriber_id: int) -> str:
    return render_template(
        "web/admin/subscriber.html",
        record=_record_or_404(subscriber_id),
        topic_labels=TOPIC_LABELS,
        frequencies=frequency_choices(),
    )


@bp.get("/subscribers/<int:subscriber_id>/export.json")
@admin_required
def subscriber_export(subscriber_id: int) -> Response:
    """Everything held about one subscriber, as a JSON download (GDPR Art. 15 and 20)."""
    session = db.get_session()
    try:
        data = privacy.export_subscriber(session, subscriber_id)
    except SubscriberNotFound:
        abort(404, f"There is no subscriber {subscriber_id}.")
    audit("subscriber.export", f"subscriber {subscriber_id}")
    session.commit()
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="subscriber-{subscriber_id}.json"'},
    )


@bp.route("/subscribers/<int:subscriber_id>/erase", methods=["GET", "POST"])
@admin_required
def subscriber_erase(subscriber_id: int) -> str | Response | tuple[str, int]:
    """Erasure asks first: the admin types the address to confirm, then it cannot be undone."""
    record = _record_or_404(subscriber_id)
    email = record.subscriber.email
    if request.method == "GET":
        return render_template("web/admin/subscriber_erase.html", record=record, error="")
    if request.form.get("confirm_email", "").strip().lower() != email:
        error = "Type the subscriber's address exactly to confirm the erasure."
        page = render_template("web/admin/subscriber_erase.html", record=record, error=error)
        return page, 400
    session = db.get_session()
    privacy.erase_subscriber(session, subscriber_id, now=clock.now())
    # The audit entry names the id only: the address itself is what was erased.
    audit("subscriber.erase", f"subscriber {subscriber_id}")
    session.commit()
    privacy.forget_outbox_mail(get_mailroom().transport, email)
    flash(f"Subscriber {subscriber_id} erased; the address's hash stays suppressed.", "ok")
    return redirect(url_for("admin.subscribers"), code=303)


# ---- CSV import: upload -> preview -> import -> report ----


def _options(filename: str) -> imports.ImportOptions:
    chosen = request.form.getlist("topics")
    return imports.ImportOptions(
        actor=current_account().email,
        source=filename.strip()[:200] or "upload.csv",
        default_topics=tuple(chosen) if chosen else imports.TOPICS,
        consent_proof=request.form.get("consent_proof", "").strip(),
    )


def _import_form(error: str = "", status: int = 200) -> tuple[str, int]:
    page = render_template(
        "web/admin/subscribers_import.html",
        error=error,
        topics=list(Topic),
        max_kilobytes=WEB_IMPORT_MAX_BYTES // 1024,
        form=request.form,
    )
    return page, status


@bp.get("/subscribers/import")
@admin_required
def subscribers_import() -> tuple[str, int]:
    return _import_form()


def _run(
    content: bytes, options: imports.ImportOptions, *, dry_run: bool
) -> tuple[list[imports.RowOutcome], int]:
    """Import `content` (a dry run for the preview); return the outcomes and rows read."""
    outcomes = [
        outcome
        for result in imports.import_file(
            db.get_session(),
            io.BytesIO(content),
            options,
            now=clock.now(),
            queue_mails=get_jobs().send_mails,
            dry_run=dry_run,
        )
        for outcome in result.outcomes
    ]
    return outcomes, len(outcomes)


def _counts(outcomes: list[imports.RowOutcome]) -> dict[str, int]:
    kinds = Counter(outcome.kind for outcome in outcomes if not outcome.imported)
    return {
        imports.REJECTION_WORDS[kind]: kinds[kind]
        for kind in imports.REJECTION_WORDS
        if kind in kinds
    }


@bp.post("/subscribers/import/preview")
@admin_required
def subscribers_import_preview() -> tuple[str, int]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _import_form("Choose a CSV file to import.", 400)
    content = upload.read(WEB_IMPORT_MAX_BYTES + 1)
    if len(content) > WEB_IMPORT_MAX_BYTES:
        return _import_form(
            f"The file is larger than {WEB_IMPORT_MAX_BYTES // 1024} KB: import it with "
            "the command `mailer subscribers import FILE.csv` instead.",
            413,
        )
    try:
        options = _options(upload.filename)
        summary = imports.check_file(io.BytesIO(content))
        first_rows = list(_first_rows(content))
        outcomes, rows = _run(content, options, dry_run=True)
    except imports.InvalidImportFile as error:
        return _import_form(f"Nothing was imported: {error}.", 400)
    rejected = [outcome for outcome in outcomes if not outcome.imported]
    page = render_template(
        "web/admin/subscribers_import_preview.html",
        filename=upload.filename,
        options=options,
        summary=summary,
        first_rows=first_rows,
        rows=rows,
        accepted=rows - len(rejected),
        rejected=rejected[:SHOWN_OUTCOMES],
        rejected_total=len(rejected),
        counts=_counts(outcomes),
        content=base64.b64encode(content).decode(),
    )
    return page, 200


def _first_rows(content: bytes) -> Iterator[imports.CsvRow]:
    for number, row in enumerate(imports.read_rows(io.BytesIO(content))):
        if number == PREVIEW_ROWS:
            return
        yield row


@bp.post("/subscribers/import")
@admin_required
def subscribers_import_run() -> tuple[str, int]:
    try:
        content = base64.b64decode(request.form.get("content", ""), validate=True)
    except (binascii.Error, ValueError):
        return _import_form("The upload was damaged on the way; choose the file again.", 400)
    if not content or len(content) > WEB_IMPORT_MAX_BYTES:
        return _import_form("Choose a CSV file to import.", 400)
    try:
        options = _options(request.form.get("filename", ""))
        imports.check_file(io.BytesIO(content))  # nothing is written unless the whole file reads
        outcomes, rows = _run(content, options, dry_run=False)
    except imports.InvalidImportFile as error:
        return _import_form(f"Nothing was imported: {error}.", 400)
    imported = [outcome for outcome in outcomes if outcome.imported]
    rejected = [outcome for outcome in outcomes if not outcome.imported]
    session = db.get_session()
    audit(
        "subscribers.import",
        options.source,
        f"{len(imported)} imported, {len(rejected)} rejected"
        + (f"; consent proof: {options.consent_proof}" if options.consent_proof else ""),
    )
    session.commit()
    page = render_template(
        "web/admin/subscribers_import_report.html",
        options=options,
        rows=rows,
        imported=imported[:SHOWN_OUTCOMES],
        imported_total=len(imported),
        rejected=rejected[:SHOWN_OUTCOMES],
        rejected_total=len(rejected),
        counts=_counts(outcomes),
    )
    return page, 200
