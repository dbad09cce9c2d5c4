"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1 with a handler that injects
faults per recipient address, and records what it accepted."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    rcpt: str
    data: bytes
    mail_from: str = ""

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.SMTP)  # type: ignore[return-value]


@dataclass
class FaultHandler:
    """rcpt_replies / data_replies map an address to the reply to give it (e.g. "550 no
    such user"); drop_after_dot holds addresses whose DATA is taken, then the connection
    dropped before the reply; on_message runs after each accepted message."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    drop_after_dot: set[str] = field(default_factory=set)
    on_message: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0].lower()
        reply = self.data_replies.get(rcpt)
        if reply:
            return reply
        item = Received(rcpt, envelope.original_content or envelope.content, envelope.mail_from)
        with self.lock:
            self.received.append(item)
        if self.on_message is not None:
            self.on_message(item)
        if rcpt in self.drop_after_dot:
            self.drop_after_dot.discard(rcpt)  # once
            server.transport.close()
        return "250 2.0.0 queued"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.rcpt == address.lower()]


class Server:
    def __init__(self, handler: FaultHandler, **smtp_options: Any) -> None:
        self.handler = handler
        self.port = free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **smtp_options)

    def __enter__(self) -> Server:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def refusing_logins(
    _server: Any, _session: Any, _envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    assert isinstance(auth_data, LoginPassword)
    return AuthResult(success=False, handled=False)


class GreetingServer:
    """Answers every connection with one line (e.g. a 421) and hangs up."""

    def __init__(self, line: bytes) -> None:
        self.line = line
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.line)

    def __enter__(self) -> GreetingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
