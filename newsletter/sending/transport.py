"""Transports: an SMTP relay over pooled persistent connections, or the outbox folder.

SMTP replies are read as RFC 5321 says: 2xx sent; 4xx temporary; 5xx permanent, and a
recipient refusal (550, 551, 553) means the address bounced; 552 is treated as temporary.
A 421 or a dropped connection closes that connection, and the message is temporary.

Threaded smtplib was chosen over aiosmtplib by measurement (see the design notes and
bench/send.py): about 0.7 ms of CPU per message against 2.2 ms. DATA is written by hand:
a campaign's messages need no dot-stuffing at all (see message._qp), others get one scan,
not smtplib's regex over the body.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import SecretStr

from newsletter.errors import NewsletterError
from newsletter.files import write_atomically
from newsletter.settings import Settings

Kind = Literal["sent", "deferred", "failed"]
BOUNCE_CODES = frozenset({550, 551, 553})


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    code: int | None
    reply: str
    bounced: bool = False

    def __str__(self) -> str:
        return f"{self.code} {self.reply}" if self.code else self.reply


class SendAborted(NewsletterError):
    """The relay cannot be used at all (authentication, TLS); nothing was changed."""


def classify(code: int, reply: str) -> Outcome:
    text = " ".join(reply.split())[:400]
    if 200 <= code < 300:
        return Outcome("sent", code, text)
    if 400 <= code < 500 or code == 552:
        return Outcome("deferred", code, text)
    return Outcome("failed", code, text, bounced=code in BOUNCE_CODES)


def dot_stuff(message: bytes) -> bytes:
    """DATA's content, transparent (RFC 5321 4.5.2), ending with the lone dot: one scan
    and one copy (bytes.replace scans twice)."""
    view = memoryview(message)
    pieces: list[bytes | memoryview] = [b"."] if message.startswith(b".") else []
    start = 0
    while (at := message.find(b"\r\n.", start)) != -1:
        pieces += [view[start : at + 2], b"."]
        start = at + 2
    pieces += [view[start:], _end(message)]
    return b"".join(pieces)


def _end(message: bytes) -> bytes:
    """The end of DATA after message."""
    return b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n"


class Transport(Protocol):
    def open(self) -> None: ...
    def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        *,
        key: str,
        transparent: bool = False,
        then: Callable[[], None] | None = None,
    ) -> Outcome:
        """transparent: no line of message starts with a dot, so it goes out without
        SMTP's dot-stuffing (a MessageTemplate's messages are built so). then: run once
        the message is written, while the server's verdict is awaited (it must not
        raise); not at all when the message is refused before."""
        ...

    def abort(self) -> None: ...
    def close(self) -> None: ...


class OutboxTransport:
    """Writes each message to OUTBOX/<folder>/<key>.eml: the embedded default, no server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SendAborted(f"cannot create the outbox {self.folder}: {exc.strerror}") from None

    def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        *,
        key: str,
        transparent: bool = False,
        then: Callable[[], None] | None = None,
    ) -> Outcome:
        target = self.folder / f"{key}.eml"
        try:
            write_atomically(target, message)
        except OSError as exc:
            # A full disk or a lost folder is this message's failure to deliver, for now.
            return Outcome("deferred", None, f"cannot write {target}: {exc.strerror or exc}")
        if then is not None:  # as the protocol says: once the message is written
            then()
        return Outcome("sent", 250, f"written to {target}")

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


class SmtpTransport:
    """A pool of persistent SMTP connections, one per sending thread.

    Where the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out together and
    their replies are read in order: two round trips a message instead of four. Each
    message has a deadline (NEWSLETTER_SMTP_TIMEOUT for the whole transaction): a server
    that answers a line a second cannot hold a connection forever.
    """

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.security = settings.smtp_security
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.timeout = settings.smtp_timeout
        self._secrets = _secret_forms(self.username, self.password)
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        # Connections in a transaction, with the moment it must be over.
        self._deadlines: dict[smtplib.SMTP, float] = {}
        self._expired: set[smtplib.SMTP] = set()
        self._watching = threading.Event()
        self._watchdog: threading.Thread | None = None

    def describe(self) -> str:
        return f"{self.host}:{self.port} ({self.security})"

    def _connect(self) -> smtplib.SMTP:
        """A logged-in connection, or SendAborted / OSError / SMTPException."""
        if self.security == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            # No TLS machinery for a connection that does not use TLS.
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise SendAborted(
                        f"{self.describe()} does not offer STARTTLS; refusing to go on "
                        "unencrypted (set NEWSLETTER_SMTP_SECURITY=none for a local relay "
                        "without credentials)"
                    )
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self.username:
                if self.security == "none":
                    raise SendAborted(
                        "refusing to send the SMTP password unencrypted: "
                        "NEWSLETTER_SMTP_SECURITY is none while NEWSLETTER_SMTP_USERNAME is set"
                    )
                password = self.password.get_secret_value() if self.password else ""
                try:
                    conn.login(self.username, password)
                except smtplib.SMTPAuthenticationError as exc:
                    raise SendAborted(
                        f"{self.describe()} refused the login for {self.username} "
                        f"({exc.smtp_code} {self._text(exc.smtp_error)}); nothing was sent"
                    ) from None
                except smtplib.SMTPNotSupportedError:
                    raise SendAborted(f"{self.describe()} does not offer AUTH") from None
        except BaseException:
            _quietly_close(conn)
            raise
        return conn

    def open(self) -> None:
        """Check the relay before anything changes: reachable, TLS as set, login accepted."""
        try:
            conn = self._connect()
        except SendAborted:
            raise
        except smtplib.SMTPResponseException as exc:
            raise SendAborted(
                f"{self.describe()} answered {exc.smtp_code} {self._text(exc.smtp_error)}; "
                "nothing was sent"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendAborted(
                f"cannot reach {self.describe()}: {_reason(exc)}; nothing was sent"
            ) from None
        _quietly_close(conn)
        self._watching.set()
        self._watchdog = threading.Thread(target=self._watch, name="smtp-deadlines", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        """Cut connections whose transaction ran past its deadline."""
        while self._watching.is_set():
            now = time.monotonic()
            with self._lock:
                late = [c for c, at in self._deadlines.items() if at < now]
                for conn in late:
                    del self._deadlines[conn]
                    self._expired.add(conn)
            for conn in late:
                _shutdown(conn)
            time.sleep(0.1)

    def abort(self) -> None:
        """Cut every connection now (a second Ctrl-C): the messages on the wire end as
        deferred, to be retried."""
        with self._lock:
            conns = list(self._all)
            self._expired.update(conns)
        for conn in conns:
            _shutdown(conn)

    def _connection(self) -> smtplib.SMTP:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
                self._expired.discard(conn)
            _quietly_close(conn)

    def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        *,
        key: str,
        transparent: bool = False,
        then: Callable[[], None] | None = None,
    ) -> Outcome:
        conn: smtplib.SMTP | None = None
        try:
            conn = self._connection()
            with self._lock:
                self._deadlines[conn] = time.monotonic() + self.timeout
            if conn.has_extn("pipelining"):
                return self._pipelined(conn, sender, recipient, message, transparent, then)
            code, reply = conn.mail(sender)
            if code != 250:
                return self._refused(conn, code, reply)
            code, reply = conn.rcpt(recipient)
            if code not in (250, 251):
                return self._refused(conn, code, reply)
            code, reply = conn.docmd("DATA")
            if code != 354:
                return self._refused(conn, code, reply)
            return self._content(conn, message, transparent, then)
        except SendAborted:
            raise
        except smtplib.SMTPResponseException as exc:  # e.g. 421 at the greeting
            self._drop()
            return Outcome("deferred", exc.smtp_code, self._text(exc.smtp_error))
        except (OSError, smtplib.SMTPException) as exc:
            expired = conn is not None and conn in self._expired
            self._drop()
            if expired:
                return Outcome(
                    "deferred", None, f"no complete answer within {self.timeout:g} s; cut off"
                )
            return Outcome("deferred", None, f"connection lost: {self._text(_reason(exc))}")
        finally:
            if conn is not None:
                with self._lock:
                    self._deadlines.pop(conn, None)

    def _pipelined(
        self,
        conn: smtplib.SMTP,
        sender: str,
        recipient: str,
        message: bytes,
        transparent: bool,
        then: Callable[[], None] | None,
    ) -> Outcome:
        """MAIL, RCPT and DATA in one write; each reply keeps its meaning."""
        conn.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode("ascii"))
        mail, rcpt, data = conn.getreply(), conn.getreply(), conn.getreply()
        refused = next(
            (r for r, ok in ((mail, (250,)), (rcpt, (250, 251)), (data, (354,))) if r[0] not in ok),
            None,
        )
        if refused is None:
            return self._content(conn, message, transparent, then)
        if data[0] == 354:
            # DATA was accepted although the envelope was not: end it with nothing in it.
            conn.send(b".\r\n")
            conn.getreply()
        return self._refused(conn, *refused)

    def _content(
        self,
        conn: smtplib.SMTP,
        message: bytes,
        transparent: bool,
        then: Callable[[], None] | None,
    ) -> Outcome:
        # One write: a small one after a large one could wait for an acknowledgement.
        conn.send(message + _end(message) if transparent else dot_stuff(message))
        if then is not None:
            then()
        code, reply = conn.getreply()
        if code == 421:
            self._drop()
        return classify(code, self._text(reply))

    def _text(self, reply: bytes | str) -> str:
        """A server reply as text, with any form of the credentials blotted out: a relay
        may echo what it was sent."""
        return redact(_text(reply), self._secrets)

    def _refused(self, conn: smtplib.SMTP, code: int, reply: bytes) -> Outcome:
        outcome = classify(code, self._text(reply))
        if code == 421:
            self._drop()
        else:
            try:
                conn.rset()
            except (OSError, smtplib.SMTPException):
                self._drop()
        return outcome

    def close(self) -> None:
        self._watching.clear()
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                _quietly_close(conn)


def _secret_forms(username: str | None, password: SecretStr | None) -> list[str]:
    """The password as it may come back from a relay: plain, or base64 as AUTH PLAIN and
    AUTH LOGIN send it."""
    if password is None or not password.get_secret_value():
        return []
    secret = password.get_secret_value()
    user = username or ""
    forms = [secret]
    for raw in (secret, f"\0{user}\0{secret}", f"{user}\0{secret}"):
        encoded = base64.b64encode(raw.encode("utf-8")).decode("ascii")
        forms += [encoded, encoded.rstrip("=")]
    # Longest first, so that a form containing another is blotted out whole.
    return sorted({f for f in forms if len(f) >= 3}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


def _shutdown(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError, AttributeError):
        conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]


def _quietly_close(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        conn.close()


def make_transport(settings: Settings, outbox_folder: str) -> SmtpTransport | OutboxTransport:
    if settings.smtp_host:
        return SmtpTransport(settings)
    return OutboxTransport(Path(settings.outbox_dir) / outbox_folder)
