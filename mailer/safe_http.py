"""Fetching a URL that someone else chose, without letting it reach anything internal.

`fetch(url, policy)` is the one way mailer makes an HTTP request to a URL from
outside (a feed today, outbound webhooks later). Every hop, redirects
included, is checked the same way:

- http or https only, on ports 80 and 443 unless `policy.ports` allows more;
- the host is resolved once (through `policy.resolver`, else the system's
  resolver), every address it resolves to must be public: loopback, private,
  link-local, shared, multicast, reserved and unspecified addresses are
  refused (also when embedded in IPv6), unless in `policy.allow`;
- the connection goes to the very address that was checked, and the address
  actually connected to is checked again, so DNS rebinding (a second answer
  pointing inside) has nothing to work with;
- one deadline for the whole fetch, enforced on every read of the socket (a
  server dripping a byte a second is cut off on time), and a size cap.

Errors are FetchError: `public` is fit to show a user and says nothing about
internal ports or banners; `detail` is for the log.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import urljoin, urlsplit

import dns.exception
import dns.resolver

from mailer import redact
from mailer.settings import Settings, resolver_address

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECTS = {301, 302, 303, 307, 308}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchError(Exception):
    """The fetch failed or was refused. `public` is safe to show; `detail` is for the log."""

    def __init__(self, public: str, detail: str = "") -> None:
        super().__init__(public)
        self.public = public
        self.detail = detail or public


@dataclass(frozen=True)
class Policy:
    """What a fetch may do. `Policy.from_settings` reads MAILER_FETCH_*."""

    timeout: float = 10.0  # seconds for the whole fetch, redirects included
    max_bytes: int = 5 * 1024 * 1024
    allow: tuple[Network, ...] = ()  # internal networks that may be reached all the same
    ports: frozenset[int] = frozenset()  # beyond 80 and 443
    resolver: str = ""  # "ADDRESS[:PORT]" of a DNS server; "" = the system's resolver
    max_redirects: int = 5
    user_agent: str = "mailer/0.1"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            timeout=settings.fetch_timeout,
            max_bytes=settings.fetch_max_bytes,
            allow=tuple(
                ipaddress.ip_network(part.strip(), strict=False)
                for part in settings.fetch_allow.split(",")
                if part.strip()
            ),
            ports=frozenset(int(part) for part in settings.fetch_ports.split(",") if part.strip()),
            resolver=settings.fetch_resolver,
        )


@dataclass(frozen=True)
class Response:
    url: str  # the last hop's URL, after redirects
    status: int
    headers: Message
    body: bytes


def is_internal(address: IPAddress) -> bool:
    """Whether an address is anything but an ordinary public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and is_internal(embedded):
            return True
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    )


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"deadline of {self.seconds:g} s passed")
        return left


class _DeadlineSocket:
    """A connected socket whose every send and receive must end by the deadline.

    http.client reads through `makefile()`; each read it makes comes here,
    gets the time that is left as its timeout, and fails once none is left.
    """

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock, self.deadline = sock, deadline
        # As socket.socket does: closing the connection while its response is
        # still being read closes the socket only once the reader is done.
        self.readers, self.closed = 0, False

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(self.deadline.remaining())
        self.sock.sendall(data)

    def recv_into(self, buffer: memoryview, nbytes: int = 0) -> int:
        self.sock.settimeout(self.deadline.remaining())
        return self.sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *_args: object, **_kwargs: object) -> io.BufferedReader:
        self.readers += 1
        return io.BufferedReader(_Reader(self))

    def reader_closed(self) -> None:
        self.readers -= 1
        if self.closed and self.readers <= 0:
            self.sock.close()

    def close(self) -> None:
        self.closed = True
        if self.readers <= 0:
            self.sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self.sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self.sock.reader_closed()
        super().close()


class _Connection(http.client.HTTPConnection):
    """http.client over a socket we connected (and checked) ourselves."""

    def __init__(self, host: str, port: int, sock: _DeadlineSocket, default_port: int) -> None:
        super().__init__(host, port)
        self.sock = sock  # type: ignore[assignment]
        self._raw = sock
        self.default_port = default_port  # the Host header names the port only when unusual

    def connect(self) -> None:  # already connected
        return None

    def sock_closer(self) -> None:
        """Close the socket for good, whoever still holds a reader (the hop is over)."""
        self._raw.sock.close()


def _addresses(host: str, port: int, policy: Policy, deadline: _Deadline) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    if not policy.resolver:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [ipaddress.ip_address(info[4][0]) for info in infos]
    server, server_port = resolver_address(policy.resolver)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [server], server_port
    found: list[IPAddress] = []
    for kind in ("A", "AAAA"):
        try:
            answer = resolver.resolve(host, kind, lifetime=deadline.remaining())
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            continue
        except dns.exception.Timeout:
            raise TimeoutError(f"the DNS server {policy.resolver} did not answer") from None
        found += [ipaddress.ip_address(record.address) for record in answer]
    return found


def _allowed(address: IPAddress, policy: Policy) -> bool:
    return not is_internal(address) or any(address in network for network in policy.allow)


def _connect(url: str, policy: Policy, deadline: _Deadline) -> tuple[_Connection, str]:
    """A connection to the URL's host, to an address that passed the checks; and the path."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise FetchError("refused: only http and https URLs are fetched", redact.url(url))
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise FetchError(
            "refused: the URL's port is not a number", f"bad port in {url!r}"
        ) from None
    if port not in (DEFAULT_PORTS[scheme], *policy.ports):
        raise FetchError("refused: only the standard ports (80, 443) are fetched", f"port {port}")
    host = parts.hostname
    addresses = _addresses(host, port, policy, deadline)
    if not addresses:
        raise FetchError("could not be reached (no such host)", f"{host} has no address")
    refused = [str(address) for address in addresses if not _allowed(address, policy)]
    if refused:
        raise FetchError(
            "refused: the URL leads to an internal address",
            f"{host} resolves to internal {', '.join(refused)}",
        )
    last_error: OSError | None = None
    for address in addresses:
        try:
            sock = socket.create_connection((str(address), port), timeout=deadline.remaining())
        except OSError as error:
            last_error = error
            continue
        peer = ipaddress.ip_address(sock.getpeername()[0])
        if not _allowed(peer, policy):  # what we reached, not only what DNS said
            sock.close()
            raise FetchError(
                "refused: the URL leads to an internal address", f"connected to {peer}"
            )
        if scheme == "https":
            sock.settimeout(deadline.remaining())
            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError):
                sock.close()
                raise
        connection = _Connection(host, port, _DeadlineSocket(sock, deadline), DEFAULT_PORTS[scheme])
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return connection, path
    raise last_error or OSError("no address to connect to")


def _hop(
    url: str,
    policy: Policy,
    deadline: _Deadline,
    headers: Mapping[str, str],
    *,
    method: str = "GET",
    body: bytes | None = None,
) -> Response:
    connection, path = _connect(url, policy, deadline)
    try:
        connection.request(
            method, path, body=body, headers={"User-Agent": policy.user_agent, **headers}
        )
        answer = connection.getresponse()
        if answer.status in REDIRECTS:
            return Response(url, answer.status, answer.headers, b"")
        length = answer.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > policy.max_bytes:
            raise FetchError(
                f"larger than {policy.max_bytes // 2**20} MB", f"{url}: {length} bytes"
            )
        body = bytearray()
        while chunk := answer.read(64 * 1024):
            body += chunk
            if len(body) > policy.max_bytes:
                raise FetchError(f"larger than {policy.max_bytes // 2**20} MB")
        return Response(url, answer.status, answer.headers, bytes(body))
    finally:
        connection.close()
        connection.sock_closer()


def fetch(url: str, policy: Policy, *, headers: Mapping[str, str] | None = None) -> Response:
    """GET `url` under `policy`, following redirects; any final status is returned.

    Raises FetchError when a hop is refused, the deadline passes, the body is
    too large, or the server cannot be reached or speaks no HTTP.
    """
    deadline = _Deadline(policy.timeout)
    sent = {**policy.headers, **(headers or {})}
    current = url
    try:
        for _hop_number in range(policy.max_redirects + 1):
            response = _hop(current, policy, deadline, sent)
            location = response.headers.get("Location", "")
            if response.status not in REDIRECTS or not location:
                return response
            current = urljoin(current, location.strip())
    except TimeoutError as error:
        raise FetchError(
            f"took longer than {policy.timeout:g} s", f"{redact.url(current)}: {error}"
        ) from None
    except ssl.SSLError as error:
        raise FetchError("the TLS handshake failed", f"{redact.url(current)}: {error!r}") from None
    except (OSError, http.client.HTTPException, UnicodeError, ValueError) as error:
        raise FetchError("could not be reached", f"{redact.url(current)}: {error!r}") from None
    raise FetchError(
        "too many redirects", f"more than {policy.max_redirects} from {redact.url(url)}"
    )


def post(url: str, policy: Policy, *, body: bytes, headers: Mapping[str, str]) -> Response:
    """POST `body` to `url` under `policy` and return the answer, whatever its status.

    One hop: a redirect is not followed but returned (a webhook endpoint
    answers where it was asked; following would re-send the body elsewhere).
    Raises FetchError as `fetch` does.
    """
    deadline = _Deadline(policy.timeout)
    sent = {**policy.headers, **headers}
    try:
        return _hop(url, policy, deadline, sent, method="POST", body=body)
    except TimeoutError as error:
        raise FetchError(
            f"took longer than {policy.timeout:g} s", f"{redact.url(url)}: {error}"
        ) from None
    except ssl.SSLError as error:
        raise FetchError("the TLS handshake failed", f"{redact.url(url)}: {error!r}") from None
    except (OSError, http.client.HTTPException, UnicodeError, ValueError) as error:
        raise FetchError("could not be reached", f"{redact.url(url)}: {error!r}") from None
