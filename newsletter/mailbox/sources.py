"""Where reports are read from: an IMAP mailbox over TLS, a Maildir, or an mbox file.

Each source hands out messages one at a time and files each one away after it has been
acted on: into a Processed folder, or an Unrecognised one for a person to read. Nothing
is ever deleted before a copy is in its folder.

    imaps://user@host[:port]/INBOX   password from NEWSLETTER_MAILBOX_PASSWORD
    maildir:/path/to/Maildir         (or a path to a folder with cur/, new/, tmp/)
    mbox:/path/to/file
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import select
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from newsletter.errors import ConfigError, NewsletterError

PROCESSED, UNRECOGNISED = "Processed", "Unrecognised"
MAX_MESSAGE = 10 * 1024 * 1024  # larger reports are filed as unrecognised unread


@dataclass(frozen=True)
class Item:
    key: str
    raw: bytes


class Source(Protocol):
    def messages(self) -> Iterator[Item]: ...
    def file(self, item: Item, folder: str) -> None: ...
    def close(self) -> None: ...


class MaildirSource:
    def __init__(self, path: Path) -> None:
        if not (path / "cur").is_dir():
            raise ConfigError(f"NEWSLETTER_MAILBOX_URL: {path} is not a Maildir (no cur/)")
        self.box = mailbox.Maildir(path, create=False)

    def messages(self) -> Iterator[Item]:
        for key in sorted(self.box.iterkeys()):
            with contextlib.suppress(KeyError, OSError):
                yield Item(key, self.box.get_bytes(key)[:MAX_MESSAGE])

    def file(self, item: Item, folder: str) -> None:
        target = (
            self.box.add_folder(folder)
            if folder not in self.box.list_folders()
            else (self.box.get_folder(folder))
        )
        target.add(self.box.get_bytes(item.key))  # the copy first, then the original goes
        self.box.remove(item.key)

    def close(self) -> None:
        pass


class MboxSource:
    """An mbox file; filed messages go to FILE.processed and FILE.unrecognised."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"NEWSLETTER_MAILBOX_URL: {path} is not an mbox file")
        self.path = path
        self.box = mailbox.mbox(path, create=False)
        self.box.lock()
        self.keys: dict[str, Any] = {}

    def messages(self) -> Iterator[Item]:
        for key in list(self.box.iterkeys()):
            self.keys[str(key)] = key
            yield Item(str(key), self.box.get_bytes(key)[:MAX_MESSAGE])

    def file(self, item: Item, folder: str) -> None:
        target = mailbox.mbox(self.path.with_name(f"{self.path.name}.{folder.lower()}"))
        target.lock()
        try:
            target.add(self.box.get_bytes(self.keys[item.key]))
            target.flush()
        finally:
            target.unlock()
        self.box.remove(self.keys[item.key])
        self.box.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.box.unlock()
            self.box.close()


class ImapSource:
    """IMAP over TLS; messages are moved with UID MOVE (RFC 6851), or copied and then
    expunged by UID (UIDPLUS) where MOVE is not offered."""

    def __init__(
        self, host: str, port: int, user: str, password: str, folder: str, ca_file: str | None
    ) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        try:
            self.imap = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=30)
            self.imap.login(user, password)
        except (OSError, imaplib.IMAP4.error) as exc:
            reason = str(exc)[:200]
            if password:
                reason = reason.replace(password, "[redacted]")  # a server may echo it
            raise NewsletterError(
                f"cannot open the mailbox imaps://{user}@{host}:{port}/{folder}: {reason}"
            ) from None
        self.folder = folder
        status, _ = self.imap.select(_quote(folder))
        if status != "OK":
            raise NewsletterError(f"the mailbox has no folder {folder}")
        capabilities = self.imap.capabilities
        self.can_move = "MOVE" in capabilities
        self.can_idle = "IDLE" in capabilities
        for name in (PROCESSED, UNRECOGNISED):
            self.imap.create(_quote(name))  # an existing folder answers NO: fine

    def messages(self) -> Iterator[Item]:
        status, data = self.imap.uid("SEARCH", "ALL")
        if status != "OK" or not data or not data[0]:
            return
        for uid in data[0].split():
            status, parts = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            if status != "OK":
                continue
            for part in parts:
                if isinstance(part, tuple):
                    yield Item(uid.decode(), bytes(part[1])[:MAX_MESSAGE])
                    break

    def file(self, item: Item, folder: str) -> None:
        if self.can_move:
            status, _ = self.imap.uid("MOVE", item.key, _quote(folder))
            if status == "OK":
                return
        status, _ = self.imap.uid("COPY", item.key, _quote(folder))
        if status != "OK":
            raise NewsletterError(f"the mailbox refused to file a message into {folder}")
        self.imap.uid("STORE", item.key, "+FLAGS.SILENT", r"(\Deleted)")
        self.imap.uid("EXPUNGE", item.key)

    def idle(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to seconds for new mail with IMAP IDLE (RFC 2177); True when some
        arrived. False at once when the server does not offer IDLE (see can_idle)."""
        if not self.can_idle:
            return False
        tag = self.imap._new_tag().decode()  # imaplib has no IDLE before Python 3.14
        self.imap.send(f"{tag} IDLE\r\n".encode())
        if not self.imap.readline().startswith(b"+"):
            return False
        arrived = False
        deadline = time.monotonic() + seconds
        sock = self.imap.socket()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                # Wait with select, not a socket timeout: a timed-out read leaves
                # imaplib's buffered reader unusable.
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                if not pending:
                    wait = min(1.0, max(0.05, deadline - time.monotonic()))
                    if not select.select([sock], [], [], wait)[0]:
                        continue
                line = self.imap.readline()
                if not line:
                    break  # the server hung up
                if b"EXISTS" in line or b"RECENT" in line:
                    arrived = True
                    break
        finally:
            self.imap.send(b"DONE\r\n")
            while not self.imap.readline().startswith(tag.encode()):
                pass
        return arrived

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.imap.close()
            self.imap.logout()


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SCHEMES = ("imaps", "maildir", "mbox")


def open_source(url: str, password: str | None, ca_file: str | None) -> Source:
    """The source a NEWSLETTER_MAILBOX_URL names."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "imaps":
        parts = urlsplit(url)
        if not parts.hostname or not parts.username:
            raise ConfigError("NEWSLETTER_MAILBOX_URL: write it as imaps://user@host/INBOX")
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        return ImapSource(
            parts.hostname,
            parts.port or 993,
            unquote(parts.username),
            password or "",
            folder,
            ca_file,
        )
    if scheme in ("maildir", "mbox"):
        rest = url.split(":", 1)[1]
        path = Path(rest[2:] if rest.startswith("//") else rest)
        return MaildirSource(path) if scheme == "maildir" else MboxSource(path)
    raise ConfigError(
        "NEWSLETTER_MAILBOX_URL: use imaps://user@host/INBOX, maildir:/path or mbox:/path"
    )
