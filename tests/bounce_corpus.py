"""The real-world report corpus under tests/bounces/ and what each sample must come to.

tests/bounces/flufl/ holds the real bounces GNU Mailman's detector is tested
on (flufl.bounce 6.0.0's test data, Apache-2.0, see its LICENSE there):
AOL, Exchange, Postfix's old text format, qmail, Exim, Yahoo, GroupWise,
sendmail, SMTP32, Netscape and many RFC 3464 DSNs (with and without
report-type, nested in multipart/mixed, forwarded inside message/rfc822,
delay warnings). FLUFL_VERDICTS is flufl.bounce's own table of what each
reports (its tests/test_detectors.py). tests/bounces/written/ holds what that
set lacks, written after RFC 5965's example and the shapes providers send:
ARF complaints and auto-replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "bounces"

# file: (the addresses it reports failed, whether only temporarily)
FLUFL_VERDICTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "aol_01.txt": (("screenname@aol.com",), False),
    "bounce_02.txt": (("userx@example.com",), False),
    "bounce_03.txt": (("userx@example.uk",), False),
    "caiwireless_01.txt": (("userx@example.com",), False),
    **{
        f"dsn_{n:02}.txt": ((address,), False)
        for n, address in (
            (1, "userx@example.com"),
            (2, "zzzzz@example.uk"),
            (3, "userx@example.be"),
            (4, "userx@example.ch"),
            (9, "userx@example.com"),
            (10, "anne.person@dom.ain"),
            (11, "joem@example.com"),
            (12, "userx@example.jp"),
            (13, "userx@example.com"),
            (14, "userx@example.com.dk"),
            (15, "userx@example.com"),
            (16, "userx@example.com"),
            (18, "email@replaced.net"),
        )
    },
    **{
        f"dsn_{n:02}.txt": ((address,), True)
        for n, address in (
            (5, "userx@example.cz"),
            (6, "userx@example.com"),
            (7, "userx@example.nz"),
            (8, "userx@example.de"),
            (17, "userx@example.fi"),
        )
    },
    "exim_01.txt": (("userx@its.example.nl",), False),
    "groupwise_01.txt": (("userx@example.EDU",), False),
    "groupwise_02.txt": (("userx@example.com",), False),
    "hotpop_01.txt": (("userx@example.com",), False),
    "llnl_01.txt": (("user1@example.gov",), False),
    "microsoft_01.txt": (("userx@example.COM",), False),
    "microsoft_02.txt": (("userx@example.COM",), False),
    "microsoft_03.txt": (("userx@example.com",), False),
    "microsoft_04.txt": (("userx@example.COM",), False),
    "netscape_01.txt": (("aaaaa@corel.com", "bbbbb@corel.com"), False),
    "newmailru_01.txt": (("zzzzz@newmail.ru",), False),
    "postfix_01.txt": (("xxxxx@local.ie",), False),
    "postfix_02.txt": (("yyyyy@digicool.com",), False),
    "postfix_03.txt": (("ttttt@ggggg.com",), False),
    "postfix_04.txt": (("userx@mail1.example.com",), False),
    "postfix_05.txt": (("userx@example.net",), False),
    **{
        f"qmail_{n:02}.txt": ((address,), False)
        for n, address in (
            (1, "userx@example.de"),
            (2, "userx@example.com"),
            (3, "userx@example.jp"),
            (4, "userx@example.au"),
            (5, "userx@example.com"),
            (6, "ntl@xxx.com"),
            (7, "user@example.net"),
        )
    },
    "sendmail_01.txt": (("zzzzz@shaft.coal.nl", "zzzzz@nfg.nl"), False),
    **{
        f"simple_{n:02}.txt": ((address,), False)
        for n, address in (
            (1, "bbbsss@example.com"),
            (2, "userx@example.net"),
            (4, "userx@example.com"),
            (5, "userx@example.net"),
            (6, "userx@example.com"),
            (7, "userx@example.net"),
            (8, "userx@example.de"),
            (9, "userx@example.de"),
            (10, "userx@example.com"),
            (11, "userx@example.com"),
            (12, "userx@example.ac.jp"),
            (13, "userx@example.fr"),
            (15, "userx@example.be"),
            (16, "userx@example.com"),
            (17, "userx@example.com"),
            (18, "userx@example.com"),
            (19, "userx@example.com.ar"),
            (20, "userx@example.com"),
            (23, "userx@example.it"),
            (24, "userx@example.com"),
            (25, "userx@example.com"),
            (26, "userx@example.it"),
            (27, "userx@example.net.py"),
            (29, "userx@example.com"),
            (30, "userx@example.com"),
            (31, "userx@example.fr"),
            (32, "userx@example.com"),
            (33, "userx@example.com"),
            (34, "roland@example.com"),
            (36, "userx@example.com"),
            (37, "user@example.edu"),
            (38, "userx@example.com"),
            (39, "userx@example.ru"),
            (41, "userx@example.com"),
            (42, "david...@gmail.com"),
            (44, "user@example.com"),
            (45, "subscriber@earthlink.net"),
        )
    },
    "simple_14.txt": (("userx@example.com", "usery@example.com"), False),
    **{
        f"simple_{n:02}.txt": ((address,), True)
        for n, address in (
            (3, "userx@example.za"),
            (21, "userx@example.com"),
            (22, "User@example.org"),
            (28, "userx@example.com"),
            (35, "calvin@example.com"),
            (40, "user@example.com"),
        )
    },
    "sina_01.txt": (("userx@sina.com", "usery@sina.com"), False),
    **{
        f"smtp32_{n:02}.txt": ((address,), False)
        for n, address in (
            (1, "userx@example.ph"),
            (2, "userx@example.com"),
            (3, "userx@example.com"),
            (5, "userx@example.com"),
            (6, "Absolute_garbage_addr@example.net"),
            (7, "userx@example.com"),
        )
    },
    "smtp32_04.txt": (("after_another@example.net", "one_bad_address@example.net"), False),
    "yahoo_01.txt": (("userx@example.com",), False),
    "yahoo_02.txt": (("userx@example.es",), False),
    "yahoo_03.txt": (("userx@example.com",), False),
    "yahoo_04.txt": (("userx@example.es", "usery@example.uk"), False),
    "yahoo_05.txt": (("userx@example.com", "usery@example.com"), False),
    "yahoo_06.txt": (
        ("userx@example.com", "usery@example.com", "userz@example.com", "usera@example.com"),
        False,
    ),
    "yahoo_07.txt": (
        ("userw@example.com", "userx@example.com", "usery@example.com", "userz@example.com"),
        False,
    ),
    "yahoo_08.txt": (tuple(f"user{c}@example.com" for c in "abcdef"), False),
    "yahoo_09.txt": (("userx@example.com", "usery@example.com"), False),
    "yahoo_10.txt": (("userx@example.com", "usery@example.com", "userz@example.com"), False),
    "yahoo_11.txt": (("bad_user@aol.com",), False),
    "yahoo_12.txt": (("user@yahoo.com",), False),
    "yahoo_13.txt": (("bogus-address@example.net",), False),
    "yale_01.txt": (("userx@cs.yale.edu", "userx@yale.edu"), False),
}

# Where mailer and flufl.bounce part ways: these gave up on a temporary
# problem (4.x.x: expired in the queue, no connection, a server error), so
# they count soft, like a DSN "failed" with a 4.x.x status.
SOFT_THOUGH_PERMANENT = {"dsn_02.txt": "4.4.7", "simple_44.txt": "4.4.4", "yahoo_01.txt": "4.4.1"}
# Reports no detector understands (no address in them, or a person's reply):
# at a VERP address they are still about that mail and count soft.
UNRECOGNISED = ("bounce_01.txt", "dumbass_01.txt", "groupwise_03.txt", "simple_43.txt")
FAMILIES = {
    "aol": "AOL", "bounce": "assorted text", "caiwireless": "Caiwireless",
    "dsn": "RFC 3464 DSN", "dumbass": "Exchange (InterScan)", "exim": "Exim",
    "groupwise": "GroupWise", "hotpop": "HotPOP", "llnl": "sendmail (LLNL)",
    "microsoft": "Exchange", "netscape": "Netscape", "newmailru": "newmail.ru",
    "postfix": "Postfix (old text format)", "qmail": "qmail", "sendmail": "sendmail",
    "simple": "assorted text", "sina": "Sina", "smtp32": "SMTP32", "yahoo": "Yahoo",
    "yale": "Yale", "arf": "ARF (RFC 5965)", "autoreply": "auto-reply",
}  # fmt: skip
WRITTEN = {
    "arf_rfc5965.eml": ("complaint", ("reader@isp.example",)),
    "arf_headers_only.eml": ("complaint", ()),
    "arf_forwarded_without_report_type.eml": ("complaint", ("person@corp.example",)),
    "arf_not_spam.eml": ("ignored", ("reader@isp.example",)),
    "arf_auth_failure.eml": ("ignored", ("reader@receiver.example",)),
    "autoreply_rfc3834.eml": ("ignored", ()),
    "autoreply_exchange.eml": ("ignored", ()),
    "autoreply_x_autoreply.eml": ("ignored", ()),
}


@dataclass(frozen=True)
class Sample:
    path: Path
    expect: str  # hard, soft, complaint or ignored: what it must do at its mail's VERP address
    named: tuple[str, ...]  # the addresses it names, the first re-addressed to our reader

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def family(self) -> str:
        return FAMILIES[self.name.split("_")[0]]


def _flufl_expectation(name: str) -> str:
    if name in UNRECOGNISED or name in SOFT_THOUGH_PERMANENT:
        return "soft"
    if name == "qmail_08.txt":  # an auto-reply, not a bounce
        return "ignored"
    return "soft" if FLUFL_VERDICTS[name][1] else "hard"


def samples() -> list[Sample]:
    """Every sample, in file order."""
    found = []
    for path in sorted((CORPUS / "flufl").glob("*.txt")):
        named = FLUFL_VERDICTS.get(path.name, ((), False))[0]
        found.append(Sample(path, _flufl_expectation(path.name), named))
    for path in sorted((CORPUS / "written").glob("*.eml")):
        expect, named = WRITTEN[path.name]
        found.append(Sample(path, expect, named))
    return found


ENVELOPE = re.compile(rb"^(?:delivered-to|x-original-to|envelope-to|to):", re.I)


def readdress(sample: Sample, *, to: str, recipient: str) -> bytes:
    """The sample as our bounce mailbox would get it for the mail to `recipient`.

    Its envelope headers name `to` (a VERP address, or not), as the
    delivering MTA writes them; the address it reports failed becomes
    `recipient`, wherever it appears in plain text.
    """
    raw = sample.path.read_bytes()
    ends = [index for index in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if index >= 0]
    cut = min(ends)
    head, body = raw[:cut], raw[cut:]
    kept, dropping = [], False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = bool(ENVELOPE.match(line)) or line.startswith(b"From ")
        if not dropping:
            kept.append(line)
    message = f"Delivered-To: {to}\nTo: {to}\n".encode() + b"".join(kept) + body
    if sample.named:
        named = re.compile(re.escape(sample.named[0].encode()), re.I)
        message = named.sub(recipient.encode(), message)
    return message
