"""A local HTTP server taking webhook POSTs as a CRM would: scripted answers, every call kept."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    def verified(self, secret: str) -> dict:
        """The payload, once the Standard Webhooks verifier accepted its signature."""
        return Webhook(secret).verify(self.body, self.headers)

    def forged_for(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return True
        return False


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (then 200); `hold` keeps the next
    call waiting until it is released (a worker killed while it waits)."""

    port: int = 0
    calls: list[Call] = field(default_factory=list)
    answers: deque[int] = field(default_factory=deque)
    hold: threading.Event | None = None
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Call]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"{len(self.calls)} webhook calls, not {count}, in {timeout}s")
            return list(self.calls)


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.arrived:
                receiver.calls.append(Call(dict(self.headers.items()), body))
                receiver.arrived.notify_all()
                status = receiver.answers.popleft() if receiver.answers else 200
                hold, receiver.hold = receiver.hold, None
            if hold is not None:
                hold.wait(30)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
