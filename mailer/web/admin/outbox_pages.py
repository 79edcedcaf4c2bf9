"""The outbox of the embedded default: every captured mail, shown as its recipient sees it.

Only there when MAILER_SMTP_URL is `outbox:`; with a real relay these pages are 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from flask import Response, abort, render_template, url_for

from mailer.web.admin import bp
from mailer.web.admin.auth import login_required
from mailer.web.admin.campaign_pages import mail_frame
from mailer.web.admin.common import outbox_directory

# What OutboxTransport names its files: nothing else, so no path can leave the folder.
NAME = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{12}\.eml$")
LISTED = 200
SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Id")


@dataclass(frozen=True, slots=True)
class Captured:
    name: str
    date: str
    to: str
    subject: str


def _folder() -> Path:
    folder = outbox_directory()
    if folder is None:
        abort(404, "There is no outbox: mail goes to a real relay.")
    return folder


def _file(name: str) -> Path:
    path = _folder() / name
    if not NAME.match(name) or not path.is_file():
        abort(404, "There is no such mail in the outbox.")
    return path


def _read(path: Path, *, headers_only: bool = False) -> EmailMessage:
    with path.open("rb") as handle:
        return BytesParser(policy=policy.default).parse(handle, headersonly=headers_only)


@bp.get("/outbox")
@login_required
def outbox() -> str:
    folder = _folder()
    names = sorted((path.name for path in folder.glob("*.eml")), reverse=True)  # newest first
    mails = []
    for name in names[:LISTED]:
        if NAME.match(name):
            message = _read(folder / name, headers_only=True)
            mails.append(
                Captured(
                    name,
                    str(message["Date"] or ""),
                    str(message["To"] or ""),
                    str(message["Subject"] or ""),
                )
            )
    return render_template(
        "web/admin/outbox.html", mails=mails, total=len(names), folder=folder, listed=LISTED
    )


@bp.get("/outbox/<name>")
@login_required
def outbox_mail(name: str) -> str:
    message = _read(_file(name))
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    attachments = [
        (part.get_filename() or "(no name)", part.get_content_type())
        for part in message.iter_attachments()
    ]
    return render_template(
        "web/admin/outbox_mail.html",
        name=name,
        headers=[(key, str(message[key])) for key in SHOWN_HEADERS if message[key] is not None],
        all_headers=[(key, str(value)) for key, value in message.items()],
        text=text.get_content() if text is not None else "",
        html_url=url_for("admin.outbox_html", name=name) if html is not None else None,
        attachments=attachments,
    )


@bp.get("/outbox/<name>/html")
@login_required
def outbox_html(name: str) -> Response:
    html = _read(_file(name)).get_body(("html",))
    if html is None:
        abort(404, "This mail has no HTML part.")
    return mail_frame(html.get_content())


@bp.get("/outbox/<name>/raw")
@login_required
def outbox_raw(name: str) -> Response:
    # Read whole: a captured mail is small, and no file handle outlives the request.
    return Response(
        _file(name).read_bytes(),
        mimetype="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
