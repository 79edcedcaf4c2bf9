"""An SMTP sink for bench/campaign.py, run in its own process: accepts everything, counts it.

    python bench/counting_sink.py PORT STATUS_FILE SAMPLE_FILE

aiosmtpd on 127.0.0.1:PORT. Every accepted message is counted with its envelope
recipients (all of them kept in a set, to find duplicates) and its size; the
first message is written to SAMPLE_FILE so the caller can check what was sent.
STATUS_FILE is rewritten (atomically) every 0.2 s and once more on SIGTERM or
SIGINT, as JSON. Times are CLOCK_MONOTONIC, which is one clock for every
process on a Linux machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP


def clock() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class Counter:
    def __init__(self, sample: Path) -> None:
        self.sample = sample
        self.messages = 0
        self.recipients: set[str] = set()
        self.bytes = 0
        self.connections = 0
        self.first: float | None = None
        self.last: float | None = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope) -> str:
        now = clock()
        if self.first is None:
            self.first = now
            self.sample.write_bytes(envelope.original_content)
        self.last = now
        self.messages += 1
        self.recipients.update(envelope.rcpt_tos)
        self.bytes += len(envelope.original_content)
        return "250 2.0.0 OK"

    def status(self) -> dict[str, object]:
        usage = os.times()
        return {
            "messages": self.messages,
            "unique_recipients": len(self.recipients),
            "bytes": self.bytes,
            "connections": self.connections,
            "first": self.first,
            "last": self.last,
            "cpu": usage.user + usage.system,
            "at": clock(),
        }


def write(path: Path, counter: Counter) -> None:
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(counter.status()))
    scratch.rename(path)


async def serve(port: int, status: Path, counter: Counter) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(counter, hostname="bench-sink", enable_SMTPUTF8=True),
        host="127.0.0.1",
        port=port,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    write(status, counter)  # the caller waits for this file: the port is open
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
        write(status, counter)
    server.close()


def main() -> None:
    port, status, sample = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    asyncio.run(serve(port, status, Counter(sample)))


if __name__ == "__main__":
    main()
