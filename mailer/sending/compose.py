"""The one mail composer: a template pair in, a complete multipart/alternative message out."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, parseaddr
from pathlib import Path

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from mailer.addresses import envelope_form
from mailer.sending.transport import Outgoing


@dataclass(frozen=True, slots=True)
class Attachment:
    data: bytes
    maintype: str
    subtype: str
    filename: str


class UnfoldedHeader(str):
    """A header value written as given, one comma-separated item per line.

    The email package RFC 2047-encodes any header word longer than the line
    limit, which turns a long signed URL in List-Unsubscribe into
    `=?utf-8?q?=3Chttps=3A//...` that no client follows. A value with a
    `name` and a `fold` method is taken as a header object and folded by us
    (email.policy.EmailPolicy.header_store_parse / fold).
    """

    name: str

    def __new__(cls, name: str, value: str) -> UnfoldedHeader:
        if "\r" in value or "\n" in value or not value.isascii():
            raise ValueError(f"{name}: header value must be one line of ASCII")
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy: Policy) -> str:
        items = [item.strip() for item in self.split(",")] if self.startswith("<") else [self]
        return f"{self.name}: " + f",{policy.linesep} ".join(items) + policy.linesep


# Headers whose value is a list of <URL>s (RFC 2369): never encoded, folded between items.
UNFOLDED = frozenset({"List-Unsubscribe", "List-Help", "List-Subscribe", "List-Archive"})

PLURALS = {"article": "articles", "video": "videos", "webinar": "webinars"}


def topic_phrase(topics: list[str]) -> str:
    """["article", "video"] -> "articles and videos"."""
    words = [PLURALS.get(topic, topic) for topic in topics] or ["notices"]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


class Composer:
    """Renders templates/email/<name>.{txt,html} inside their layout and builds the message."""

    def __init__(
        self, templates: Path, *, sender: str, sender_domain: str, defaults: Mapping[str, object]
    ) -> None:
        self.env = Environment(
            loader=FileSystemLoader(templates),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,  # a missing variable is a bug, not an empty string
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["topic_phrase"] = topic_phrase
        # Mail clients drop <style> blocks (Gmail, Outlook): inline every rule at render.
        # @media rules (dark mode, phones) cannot be inlined and stay in a <style>.
        self.inliner = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True)
        name, addr = parseaddr(sender)
        self.sender = Address(display_name=name, addr_spec=addr)
        self.sender_domain = sender_domain
        self.defaults = dict(defaults)

    def render(self, name: str, context: Mapping[str, object]) -> tuple[str, str]:
        """The text and the inlined HTML of email/<name>."""
        values = {**self.defaults, **context}
        text = self.env.get_template(f"email/{name}.txt").render(values)
        html = self.env.get_template(f"email/{name}.html").render(values)
        return text, self.inliner.inline(html)

    def build(
        self,
        name: str,
        *,
        to: str,
        subject: str,
        context: Mapping[str, object],
        now: datetime,
        headers: Mapping[str, str] | None = None,
        return_path: str | None = None,
        sender: Address | None = None,
    ) -> Outgoing:
        """A multipart/alternative message (text first, HTML last: RFC 2046 §5.1.4).

        Header values go through email.headerregistry, which RFC 2047-encodes
        non-ASCII display names and refuses CR/LF, so no field can add a header.
        """
        text, html = self.render(name, context)
        return self.assemble(
            to=to,
            subject=subject,
            text=text,
            html=html,
            now=now,
            headers=headers,
            return_path=return_path,
            sender=sender,
        )

    def assemble(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        now: datetime,
        headers: Mapping[str, str] | None = None,
        attachments: Sequence[Attachment] = (),
        return_path: str | None = None,
        sender: Address | None = None,
    ) -> Outgoing:
        """The message from already rendered parts (campaigns render once per audience).

        `return_path` is the envelope sender (MAIL FROM), where bounces go;
        by default the From address. `sender` is the From in force at send
        time (the site settings'); by default MAILER_FROM.
        """
        sender = sender or self.sender
        recipient = to if to.isascii() else envelope_form(to)  # skip the IDNA work when ASCII
        if recipient.isascii():
            message = EmailMessage(policy=policy.SMTP)
            message["To"] = Address(addr_spec=recipient)  # no display name: nothing typed
        else:
            # A non-ASCII mailbox is carried raw under SMTPUTF8 (RFC 6531/6532);
            # RFC 2047 may not encode an addr-spec. smtplib then asks the relay
            # for SMTPUTF8 and refuses if it is not offered.
            message = EmailMessage(policy=policy.SMTPUTF8)
            message["To"] = recipient
        message["From"] = sender
        message["Subject"] = subject
        message["Date"] = format_datetime(now)
        # 128 random bits from the OS: a bounce report that quotes this id is
        # taken as being about this mail (mailer.bounces.matching), so it must
        # not be guessable (make_msgid's part is 64 bits of Mersenne Twister).
        message["Message-ID"] = f"<{secrets.token_hex(16)}@{self.sender_domain}>"
        for key, value in (headers or {}).items():
            message[key] = UnfoldedHeader(key, value) if key in UNFOLDED else value
        # Quoted-printable, never 8bit: a relay that downgrades 8bit to 7bit on
        # the way would break the DKIM body hash (RFC 6376 §5.3).
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        for attachment in attachments:  # turns the message into multipart/mixed
            message.add_attachment(
                attachment.data,
                maintype=attachment.maintype,
                subtype=attachment.subtype,
                filename=attachment.filename,
            )
        return Outgoing(message, mail_from=return_path or sender.addr_spec, rcpt_to=recipient)
