"""The limit for bench/campaign.py: the campaign's digest, built and sent in a bare loop.

    python bench/bare_campaign.py CAMPAIGN_ID FIRST COUNT   (MAILER_* from the environment)

One process of the limit. Before the clock starts it renders the campaign's
digest once through the app (the same templates, notices, CSS inlining and
.ics invitation a worker sends), connects to MAILER_SMTP_URL, prints "ready"
and waits for a line on stdin. Then, for each of COUNT recipients, it builds
an email.message.EmailMessage with the same headers and parts as the app's
message (the greeting and the preferences link filled in per recipient) and
sends it over that one persistent smtplib connection. No database, no broker,
no token signing, no bookkeeping. At the end it prints one JSON line with its
CPU seconds.
"""

from __future__ import annotations

import json
import os
import smtplib
import sys
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import urlsplit

from mailer import create_app
from mailer.sending import get_mailroom
from mailer.sending.digest import Recipient

PREFERENCES = "@@bench-preferences@@"
UNSUBSCRIBE = "@@bench-unsubscribe@@"
# The length of a real preferences link's token (itsdangerous, a 6-digit id).
TOKEN = "MTIzNDU2.aQx1Zw.Yl3iK0rHq2bS5mQ8vT1nW4pX7eA"


def rendered(campaign_id: int) -> tuple[str, str, str, list[tuple[bytes, str, str, str]]]:
    """Subject, text, HTML and attachments of the campaign's digest, rendered once."""
    app = create_app()
    with app.extensions["mailer.sessionmaker"]() as session:
        renderer = get_mailroom(app).renderers.get(session, campaign_id)
    probe = renderer.build(
        Recipient(
            "probe@example.com",
            "",
            ("article", "video", "webinar"),
            "",
            PREFERENCES,
            UNSUBSCRIBE,
            "mailto:probe@example.com",
        ),
        now=datetime.now(UTC),
    )
    assert probe is not None
    message = probe.message
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    attachments = [
        (
            part.get_payload(decode=True),
            part.get_content_maintype(),
            part.get_content_subtype(),
            part.get_filename() or "",
        )
        for part in message.iter_attachments()
    ]
    return str(message["Subject"]), text, html, attachments


def main() -> None:
    campaign_id, first, count = (int(value) for value in sys.argv[1:4])
    subject, text, html, attachments = rendered(campaign_id)
    name, sender = parseaddr(os.environ["MAILER_FROM"])
    domain = sender.rpartition("@")[2]
    base_url = os.environ["MAILER_BASE_URL"].rstrip("/")
    relay = urlsplit(os.environ["MAILER_SMTP_URL"])
    connection = smtplib.SMTP(relay.hostname, relay.port)
    connection.ehlo()
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts every process at once

    for number in range(first, first + count):
        email = f"bare-{number}@example.com"
        link = f"{base_url}/preferences/{TOKEN}"
        unsubscribe = f"{base_url}/u/{number}-0-abcdefghijklmnop"
        # The same headers as mailer's list mail; a 998 line limit keeps the URLs unencoded.
        message = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
        message["To"] = Address(addr_spec=email)
        message["From"] = Address(display_name=name, addr_spec=sender)
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=domain)
        message["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:unsubscribe+x@{domain}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["List-Id"] = f"<notices.{domain}>"
        message["List-Post"] = "NO"
        message.set_content(text.replace(PREFERENCES, link).replace(UNSUBSCRIBE, unsubscribe))
        message.add_alternative(
            html.replace(PREFERENCES, link).replace(UNSUBSCRIBE, unsubscribe), subtype="html"
        )
        for data, maintype, subtype, filename in attachments:
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        connection.send_message(message, from_addr=sender, to_addrs=[email])

    connection.quit()
    usage = os.times()
    print(json.dumps({"cpu": usage.user + usage.system}), flush=True)


if __name__ == "__main__":
    main()
