"""Local stand-ins for the outside world an attacker controls: HTTP sites, DNS, IMAP."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from tests.helpers import free_port

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>%(title)s</title><link>https://health.example/</link>
<description>d</description>
<item><title>%(title)s</title><link>https://health.example/%(slug)s</link>
<guid>%(slug)s</guid><description>Fine print.</description></item>
</channel></rss>"""


def rss(title: str, slug: str) -> bytes:
    return RSS % {b"title": title.encode(), b"slug": slug.encode()}


class Site:
    """An HTTP server on one loopback address: path -> (status, headers, body), and its hits."""

    def __init__(
        self, host: str, routes: dict[str, tuple[int, dict[str, str], bytes]], port: int = 0
    ) -> None:
        self.routes = routes
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                status, headers, body = site.routes.get(self.path, (404, {}, b"no such page"))
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.host, self.port = host, self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DrippingSite:
    """Answers 200 with a feed's headers, then one byte every `interval` for `seconds`."""

    def __init__(self, host: str = "127.0.0.2", *, seconds: float, interval: float = 0.2) -> None:
        self.active = 0  # responses still dripping
        self.completed = 0  # responses dripped to the end: the client waited for all of it
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.active += 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(interval)
                    site.completed += 1
                except OSError:
                    pass  # the client hung up: what a deadline does
                finally:
                    site.active -= 1

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/feed.rss") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DnsStub:
    """A DNS server on 127.0.0.1 (UDP): name -> addresses, or a function of the query count.

    `answers["rebind.test"] = lambda n: "127.0.0.2" if n == 1 else "127.0.0.1"` answers
    the first question with one address and every later one with another.
    """

    def __init__(self, answers: dict[str, str | Callable[[int], str]]) -> None:
        self.answers = answers
        self.queries: dict[str, int] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while self._running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            response = dns.message.make_response(query)
            answer = self.answers.get(name)
            if answer is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A:
                self.queries[name] = self.queries.get(name, 0) + 1
                address = answer(self.queries[name]) if callable(answer) else answer
                response.answer.append(dns.rrset.from_text(question.name, 0, "IN", "A", address))
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._running = False
        self.sock.close()


class FakeImap(socketserver.ThreadingTCPServer):
    """Just enough IMAP to meet a client: a greeting, CAPABILITY, STARTTLS answered NO.

    Every line the client sends is kept in `lines`, so a test can see whether
    a LOGIN (with its password) ever crossed the wire.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, capabilities: str = "IMAP4rev1 AUTH=PLAIN", ssl_context=None) -> None:
        self.capabilities = capabilities
        self.lines: list[bytes] = []
        self.ssl_context = ssl_context
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def setup(self) -> None:
                if server.ssl_context is not None:
                    try:
                        self.request = server.ssl_context.wrap_socket(
                            self.request, server_side=True
                        )
                    except OSError:
                        self.request.close()
                        raise
                super().setup()

            def handle(self) -> None:
                self.wfile.write(b"* OK [CAPABILITY " + server.capabilities.encode() + b"] hi\r\n")
                for line in self.rfile:
                    server.lines.append(line)
                    tag, _, rest = line.decode(errors="replace").strip().partition(" ")
                    command = rest.split(" ", 1)[0].upper()
                    if command == "CAPABILITY":
                        self.wfile.write(b"* CAPABILITY " + server.capabilities.encode() + b"\r\n")
                        self.wfile.write(f"{tag} OK done\r\n".encode())
                    elif command == "STARTTLS":
                        self.wfile.write(f"{tag} NO not today\r\n".encode())
                    elif command == "LOGOUT":
                        self.wfile.write(f"* BYE\r\n{tag} OK bye\r\n".encode())
                        return
                    else:
                        self.wfile.write(f"{tag} OK fine\r\n".encode())

        super().__init__(("127.0.0.1", free_port()), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@contextmanager
def serving(*servers: object) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.close()  # type: ignore[attr-defined]
