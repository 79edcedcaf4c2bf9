"""`mailer subscribers import FILE.csv` and `mailer subscribers export`: lists of any size.

Both stream: the import reads and commits a chunk of rows at a time, the
export reads a keyset batch at a time, so a million rows never sit in memory.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from mailer import admins, clock, db, imports, subscriber_search
from mailer.cli.common import fail, who
from mailer.errors import MailerError
from mailer.jobs import get_jobs

SHOWN_REJECTIONS = 10


@click.group("subscribers", cls=AppGroup)
def subscribers_group() -> None:
    """Import and export subscriber lists as CSV."""


def _topics(value: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def _report_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejected.csv")


@subscribers_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--consent-proof",
    default="",
    help="where and when these people consented; they are then confirmed at once, no mail",
)
@click.option(
    "--topics",
    default=",".join(imports.TOPICS),
    show_default=True,
    help="topics for rows whose topics cell is empty",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of the rejected rows; default FILE.rejected.csv beside the file",
)
def subscribers_import(path: Path, consent_proof: str, topics: str, report: Path | None) -> None:
    """Import subscribers from PATH (UTF-8 CSV with a header: email,name,topics).

    Without --consent-proof each new address gets a confirmation mail and is
    subscribed once its owner confirms. Rejected rows (invalid, duplicate,
    suppressed, already subscribed, unknown topic) go to the report file.
    """
    actor = who()
    try:
        options = imports.ImportOptions(
            actor=actor,
            source=path.name,
            default_topics=_topics(topics),
            consent_proof=consent_proof.strip(),
        )
        with path.open("rb") as stream:
            summary = imports.check_file(stream)
    except MailerError as error:
        fail(error)
    report = report or _report_path(path)
    session, now = db.get_session(), clock.now()
    imported, kinds, shown = 0, Counter[str](), []
    with (
        path.open("rb") as stream,
        report.open("w", newline="", encoding="utf-8") as report_file,
        click.progressbar(length=summary.rows, label="Importing", file=sys.stderr) as bar,
    ):
        writer = csv.writer(report_file)
        writer.writerow(["row", "email", "reason"])
        try:
            for result in imports.import_file(
                session, stream, options, now=now, queue_mails=get_jobs().send_mails
            ):
                imported += result.imported
                for outcome in result.outcomes:
                    if not outcome.imported:
                        writer.writerow([outcome.row, outcome.email, outcome.reason])
                        kinds[outcome.kind] += 1
                        if len(shown) < SHOWN_REJECTIONS:
                            shown.append(outcome)
                bar.update(len(result.outcomes))
        except (MailerError, SQLAlchemyError) as error:
            session.rollback()
            raise click.ClickException(
                f"stopped at an error ({error}); {imported} rows were imported before it. "
                "Importing the same file again rejects those as existing subscribers "
                "and adds the rest."
            ) from error
    rejected = sum(kinds.values())
    admins.audit(
        session,
        actor,
        "subscribers.import",
        target=path.name[:200],
        detail=f"{imported} imported, {rejected} rejected"
        + (f"; consent proof: {options.consent_proof}" if options.consent_proof else ""),
        now=clock.now(),
    )
    session.commit()
    _final_report(path, summary, imported, kinds, shown, report, bool(consent_proof))


def _final_report(
    path: Path,
    summary: imports.FileSummary,
    imported: int,
    kinds: Counter[str],
    shown: list[imports.RowOutcome],
    report: Path,
    confirmed: bool,
) -> None:
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    how = "confirmed (consent proof recorded)" if confirmed else "pending, confirmation mail queued"
    echo(
        f"{path.name}: {summary.rows} rows, {imported} imported ({how}), "
        f"{sum(kinds.values())} rejected"
    )
    if summary.ignored_columns:
        echo(f"ignored columns: {', '.join(summary.ignored_columns)}")
    if not kinds:
        report.unlink(missing_ok=True)
        return
    for kind, count in kinds.most_common():
        echo(f"  {count:>8}  {imports.REJECTION_WORDS[kind]}")
    for outcome in shown:
        echo(f"  row {outcome.row}: {outcome.email[:80]}: {outcome.reason}")
    echo(f"every rejected row with its reason: {report}")


@subscribers_group.command("export")
@click.option("--state", type=click.Choice(subscriber_search.STATES), help="only this state")
@click.option("--topic", type=click.Choice(subscriber_search.TOPICS), help="only this topic")
@click.option("--search", "query", default="", help="address or name contains this")
def subscribers_export(state: str | None, topic: str | None, query: str) -> None:
    """Write the matching subscribers to stdout as CSV, newest first."""
    try:
        flt = subscriber_search.SubscriberFilter(query=query, state=state or "", topic=topic or "")
    except MailerError as error:
        fail(error)
    session = db.get_session()
    admins.audit(
        session,
        who(),
        "subscribers.export",
        "subscribers",
        flt.audited(),
        now=clock.now(),
    )
    session.commit()
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(subscriber_search.EXPORT_COLUMNS)
    for row in subscriber_search.iter_matching(session, flt):
        writer.writerow(subscriber_search.export_fields(row))
