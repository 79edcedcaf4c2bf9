"""DKIM signing: its cost per message, and campaign throughput with signing on and off.

Run: .venv/bin/python bench/signing.py     (about 4 minutes on 2 cores; --quick: about 1)

- cost: a real campaign message (bench/campaign.py's five-notice digest, built
  by the digest renderer for a subscriber with the worker's signed links and
  VERP return path, flattened as the transport sends it) is signed over and
  over, in this process, with a 2048-bit and a 1024-bit key: by dkimpy's own
  `dkim.sign` (its pure-Python RSA, the same h= list and relaxed/relaxed) and
  by mailer.sending.signing.DkimSigner (dkimpy's canonicalisation, RSA through
  `cryptography`). CPU time per message; every signature is checked once
  with dkim.verify against a DNS stub. Limit: < 1 ms a message.
- throughput: bench/campaign.py's `run_campaign` (a real celery worker with 2
  pool processes, PostgreSQL, Redis, the counting sink in its own process),
  the same list sent unsigned and signed, alternately, `--rounds` times. The
  first message the sink accepted in each run is checked: it verifies when
  signed, and carries no DKIM-Signature when not. Limit: signed >= 0.9x the
  unsigned msg/s.

Timing is reported, never asserted; the script exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import campaign as bench_campaign
import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.hashes import SHA256
from services import REDIS_BASE, empty_redis, fresh_database, redis_claim

PG_NAME = "mailer_bench_dkim"
REDIS_DBS = (12, 11, 10, 9, 8, 13)
SELECTOR, DOMAIN = "bench", "example.com"  # bench/campaign.py's MAILER_FROM domain
LIMIT_MS = 1.0
TARGET_RATIO = 0.9


@dataclass(frozen=True)
class Sizes:
    recipients: int  # per throughput run
    rounds: int  # unsigned + signed pairs
    signer_loops: int
    dkimpy_loops: int


DEFAULT = Sizes(recipients=10_000, rounds=2, signer_loops=3000, dkimpy_loops=300)
QUICK = Sizes(recipients=2_000, rounds=1, signer_loops=1000, dkimpy_loops=100)


def write_key(path: Path, bits: int) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


def dns_for(key: rsa.RSAPrivateKey) -> Any:
    from mailer.sending.signing import public_record

    record, name = public_record(key).encode(), f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
    return lambda asked, timeout=5: record if asked == name else None


def campaign_messages(app: Any, campaign_id: int, count: int) -> tuple[list[bytes], float]:
    """`count` messages as the worker builds them, flattened; and the CPU ms each took."""
    from mailer.sending import get_mailroom
    from mailer.sending.digest import Recipient
    from mailer.sending.transport import wire_bytes
    from mailer.tokens import Purpose

    mailroom = get_mailroom(app)
    links = mailroom.links
    with app.extensions["mailer.sessionmaker"]() as session:
        renderer = mailroom.renderers.get(session, campaign_id)
    renderer.build(_recipient(Recipient, links, campaign_id, 0), now=datetime.now(UTC))  # warm
    started = time.process_time()
    messages = []
    for number in range(1, count + 1):
        subscriber_id = 100_000 + number
        outgoing = renderer.build(
            _recipient(Recipient, links, campaign_id, subscriber_id),
            now=datetime.now(UTC),
            return_path=links.return_path(Purpose.BOUNCE, 200_000 + number),
        )
        assert outgoing is not None
        messages.append(wire_bytes(outgoing))
    return messages, 1000 * (time.process_time() - started) / count


def _recipient(kind: Any, links: Any, campaign_id: int, subscriber_id: int) -> Any:
    """What mailer.sending.batch gives the renderer for a subscriber of every topic."""
    from mailer.tokens import Purpose

    return kind(
        email=f"reader-{subscriber_id}@example.com",
        name="",
        topics=("article", "video", "webinar"),
        time_zone="",
        preferences_url=links.url("preferences", Purpose.PREFERENCES, subscriber_id),
        unsubscribe_url=links.unsubscribe_url(subscriber_id, campaign_id),
        unsubscribe_mailto=links.unsubscribe_mailto(subscriber_id, campaign_id),
    )


def per_message_ms(sign: Any, messages: list[bytes], loops: int) -> float:
    started = time.process_time()
    for number in range(loops):
        sign(messages[number % len(messages)])
    return 1000 * (time.process_time() - started) / loops


def measure_cost(messages: list[bytes], bits: int, work: Path, sizes: Sizes) -> list[str]:
    """One line of figures for a key of `bits`; problems are raised."""
    from mailer.sending.signing import DkimSigner, load_key

    path = work / f"cost-{bits}.pem"
    write_key(path, bits)
    key, pem = load_key(str(path)), path.read_bytes()
    signer = DkimSigner(key, selector=SELECTOR, domain=DOMAIN)
    dns = dns_for(key)
    ours = signer.sign(messages[0])
    _, include, _ = dkim.DKIM(ours).verify_headerprep()  # sign the same h= list

    def theirs(message: bytes) -> bytes:
        header = dkim.sign(
            message,
            SELECTOR.encode(),
            DOMAIN.encode(),
            pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
        return header + message

    for name, signed in (("DkimSigner", ours), ("dkimpy", theirs(messages[0]))):
        if not dkim.verify(signed, dnsfunc=dns):
            raise SystemExit(f"NOT VALID: a {bits}-bit {name} signature does not verify")
    digest = b"\x00" * 32
    rsa_only = per_message_ms(
        lambda _: key.sign(digest, padding.PKCS1v15(), utils.Prehashed(SHA256())),
        messages,
        sizes.signer_loops,
    )
    mine = per_message_ms(signer.sign, messages, sizes.signer_loops)
    slow = per_message_ms(theirs, messages, sizes.dkimpy_loops)
    return [
        f"  {bits}-bit key: dkimpy's own RSA {slow:.3f} ms/msg; DkimSigner {mine:.3f} ms/msg "
        f"(of which the RSA step {rsa_only:.3f} ms) = {slow / mine:.1f}x faster",
        f"    target < {LIMIT_MS:.0f} ms/msg: {mine / LIMIT_MS:.2f} of the limit "
        f"({'met' if mine < LIMIT_MS else 'MISSED'})",
    ]


def check_sample(sample: Path, dns: Any, signed: bool, label: str) -> list[str]:
    if not sample.exists():
        return [f"{label}: no sample message"]
    raw = sample.read_bytes()
    if not signed:
        return [f"{label}: signed though signing is off"] if b"DKIM-Signature:" in raw else []
    return [] if dkim.verify(raw, dnsfunc=dns) else [f"{label}: the signature does not verify"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about 1 minute")
    parser.add_argument("--recipients", type=int, help="recipients of each throughput run")
    parser.add_argument("--rounds", type=int, help="unsigned + signed pairs of runs")
    parser.add_argument("--skip-throughput", action="store_true", help="the cost figures only")
    args = parser.parse_args()
    base = QUICK if args.quick else DEFAULT
    sizes = Sizes(
        recipients=args.recipients or base.recipients,
        rounds=args.rounds or base.rounds,
        signer_loops=base.signer_loops,
        dkimpy_loops=base.dkimpy_loops,
    )

    # Ctrl-C and SIGTERM unwind the ExitStack: processes, database and Redis are cleaned up.
    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    wall = bench_campaign.clock()
    problems: list[str] = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailer-dkim-")))
        broker = stack.enter_context(redis_claim(REDIS_DBS, "bench-dkim", ttl=3600))
        db = stack.enter_context(fresh_database(PG_NAME))
        print(f"machine: {bench_campaign.machine(db, broker)}", flush=True)
        redis_db = broker.connection_pool.connection_kwargs["db"]
        env = bench_campaign.mailer_env(
            bench_campaign.database_url(PG_NAME), f"{REDIS_BASE}/{redis_db}"
        )
        app = bench_campaign.make_app(env)
        notice_ids = bench_campaign.create_notices(app)
        messages, build_ms = campaign_messages(
            app, bench_campaign.create_campaign(app, notice_ids), 200
        )
        print(
            f"\ncost of signing one campaign message ({len(messages[0]) / 1024:.1f} KB, "
            f"5 notices, text + HTML + .ics; building and flattening it took {build_ms:.2f} "
            "ms CPU), CPU per message in one process:",
            flush=True,
        )
        for bits in (2048, 1024):
            for line in measure_cost(messages, bits, work, sizes):
                print(line, flush=True)

        if not args.skip_throughput:
            key_file = work / "campaign.pem"
            dns = dns_for(write_key(key_file, 2048))
            signed_env = {
                **env,
                "MAILER_DKIM_KEY_FILE": str(key_file),
                "MAILER_DKIM_SELECTOR": SELECTOR,
            }
            grown = bench_campaign.grow_pg(db, sizes.recipients)
            print(
                f"\nthroughput: {sizes.recipients:,} recipients a run, {sizes.rounds} round(s) "
                f"of unsigned then signed (2048-bit key); subscribers ready (+{grown:.1f} s)",
                flush=True,
            )
            runs: dict[bool, list[Any]] = {False: [], True: []}
            for number in range(1, sizes.rounds + 1):
                for signed in (False, True):
                    name = f"{'signed' if signed else 'unsigned'}-{number}"
                    run = bench_campaign.run_campaign(
                        f"{name}: PostgreSQL + Redis",
                        app,
                        signed_env if signed else env,
                        notice_ids,
                        sizes.recipients,
                        work,
                    )
                    empty_redis(broker)
                    problems += run.problems
                    problems += check_sample(work / f"sink-{name}.eml", dns, signed, name)
                    runs[signed].append(run)
                    print(
                        f"  {name}: {run.rate:.0f} msg/s start to last ({run.seconds:.1f} s), "
                        f"steady {run.sending_rate:.0f} msg/s, worker CPU "
                        f"{run.per_message_ms(run.sender_cpu):.2f} ms/msg, "
                        f"{run.bytes_per_message / 1024:.1f} KB/msg",
                        flush=True,
                    )
            app.extensions["mailer.engine"].dispose()
            print()
            totals = {}
            for signed, done in runs.items():
                sent = sum(run.recipients for run in done)
                rate = sent / sum(run.seconds for run in done)
                cpu = 1000 * sum(run.sender_cpu for run in done) / sent
                totals[signed] = (rate, cpu)
                print(
                    f"  {'signed' if signed else 'unsigned':8} {sent:7,} messages: "
                    f"{rate:.0f} msg/s, worker CPU {cpu:.2f} ms/msg"
                )
            ratio = totals[True][0] / totals[False][0]
            verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
            print(
                f"  throughput signed/unsigned: {ratio:.2f}x; target >= {TARGET_RATIO}x: "
                f"{ratio / TARGET_RATIO:.2f} of the limit ({verdict})"
            )
            extra = totals[True][1] - totals[False][1]
            print(
                f"  worker CPU per message, signed - unsigned: {extra:+.2f} ms "
                "(steadier than msg/s when other processes share the cores)"
            )
    print(f"\ncommand: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"took {bench_campaign.clock() - wall:.0f} s")
    if problems:
        sys.exit("NOT VALID:\n  " + "\n  ".join(problems))
    print("checks: all passed (signatures verify, each message once, campaign states)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as stop:
        sys.exit(f"interrupted ({stop}): processes stopped, database and Redis keys removed")
