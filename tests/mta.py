"""A private Postfix on a loopback port, for tests and benchmarks: its own configuration
folder, queue and log, nothing of the machine's own mail system touched.

Mail for example.com (and any domain in `discard`) is accepted, queued to disk and
discarded; every delivery is a line in its log, which `delivered()` counts. Needs
Debian's postfix and root (Postfix drops privileges to its own user).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"

SERVICES = """\
{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def self_signed(key: Path, cert: Path) -> None:
    """A key and a self-signed certificate for 127.0.0.1 (to be trusted explicitly)."""
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def available() -> bool:
    return Path(POSTFIX).exists() and os.geteuid() == 0


class PrivatePostfix:
    def __init__(self, folder: Path, port: int, *, extra: dict[str, str] | None = None) -> None:
        self.folder = folder.resolve()
        self.port = port
        self.config = self.folder / "etc"
        self.log = self.folder / "postfix.log"
        self.extra = extra or {}

    def settings(self) -> dict[str, str]:
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.folder / "spool"),
            "data_directory": str(self.folder / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mta.test",
            "mydomain": "mta.test",
            "myorigin": "mta.test",
            "mydestination": "",
            "relay_domains": "example.com",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "default_transport": "discard",
            "relay_transport": "discard",
            "local_transport": "discard",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.folder),
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "default_process_limit": "100",
            "message_size_limit": "10240000",
            "biff": "no",
            **self.extra,
        }

    def start(self) -> PrivatePostfix:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.config.mkdir(parents=True)
        (self.config / "main.cf").write_text(
            "".join(f"{k} = {v}\n" for k, v in self.settings().items())
        )
        (self.config / "master.cf").write_text(SERVICES.format(port=f"127.0.0.1:{self.port}"))
        for name in ("dynamicmaps.cf", "postfix-files"):
            shutil.copy(f"/etc/postfix/{name}", self.config / name)
        shutil.copytree("/etc/postfix/postfix-files.d", self.config / "postfix-files.d")
        shutil.copytree("/etc/postfix/dynamicmaps.cf.d", self.config / "dynamicmaps.cf.d")
        (self.folder / "spool").mkdir()
        (self.folder / "data").mkdir()
        shutil.chown(self.folder / "data", "postfix", "postfix")
        self._postfix("check")
        self._postfix("start")
        deadline = time.monotonic() + 20
        while not self._listening():
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix did not start: {self.log_text()[-2000:]}")
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        import socket

        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def _postfix(self, command: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config), command], capture_output=True, text=True
        )
        if done.returncode != 0 and command != "stop":
            raise RuntimeError(f"postfix {command}: {done.stderr.strip()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def delivered(self) -> int:
        return self.log_text().count(" status=sent ")

    def wait_delivered(self, count: int, timeout: float = 600) -> int:
        deadline = time.monotonic() + timeout
        while (n := self.delivered()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return n

    def stop(self) -> None:
        self._postfix("stop")

    def __enter__(self) -> PrivatePostfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


DOVECOT = "/usr/sbin/dovecot"

DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
info_log_path = {folder}/dovecot.log
ssl = required
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
auth_mechanisms = plain
disable_plaintext_auth = yes
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
default_internal_user = dovecot
default_login_user = dovenull
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={folder}/home/%u
}}
"""


def dovecot_available() -> bool:
    return Path(DOVECOT).exists() and os.geteuid() == 0


class PrivateDovecot:
    """Debian's Dovecot as an IMAP server over TLS on a loopback port, with one user and
    a self-signed certificate (`cert` is the file to trust)."""

    def __init__(self, folder: Path, port: int, user: str, password: str) -> None:
        self.folder = folder.resolve()
        self.port, self.user, self.password = port, user, password
        self.config = self.folder / "dovecot.conf"
        self.cert = self.folder / "cert.pem"

    def start(self) -> PrivateDovecot:
        import pwd

        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self_signed(self.folder / "key.pem", self.cert)
        owner = pwd.getpwnam("dovecot")
        (self.folder / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        home = self.folder / "home" / self.user
        home.mkdir(parents=True)
        for path in (self.folder / "home", home):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.config.write_text(
            DOVECOT_CONF.format(
                folder=self.folder, port=self.port, uid=owner.pw_uid, gid=owner.pw_gid
            )
        )
        # Dovecot forks into the background: its output goes to its log, not to a pipe
        # this process would wait on.
        done = subprocess.run(
            [DOVECOT, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"dovecot did not start: {self.folder / 'dovecot.log'}")
        import socket

        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError("dovecot did not start")
            time.sleep(0.1)

    def url(self) -> str:
        return f"imaps://{self.user}@127.0.0.1:{self.port}/INBOX"

    def imap(self):  # type: ignore[no-untyped-def]
        import imaplib
        import ssl

        client = imaplib.IMAP4_SSL(
            "127.0.0.1", self.port, ssl_context=ssl.create_default_context(cafile=self.cert)
        )
        client.login(self.user, self.password)
        return client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        client = self.imap()
        try:
            status, _ = client.append(folder, "", None, raw)
            assert status == "OK", status
        finally:
            client.logout()

    def count(self, folder: str) -> int:
        client = self.imap()
        try:
            status, data = client.select(f'"{folder}"', readonly=True)
            return int(data[0]) if status == "OK" and data and data[0] else 0
        finally:
            client.logout()

    def stop(self) -> None:
        subprocess.run(
            [DOVECOT, "-c", str(self.config), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> PrivateDovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reporting_postfix(folder: Path, port: int) -> tuple[PrivatePostfix, Path]:
    """A private Postfix that produces real DSNs: mail to any user at users.example.net bounces
    (no such local user), mail to slow.example.net is deferred (its relay never answers, and
    a delay warning follows after a second), mail to example.com is discarded. Reports
    to example.org (the return path) land in the Maildir returned."""
    import pwd

    owner = pwd.getpwnam("postfix")
    vmail = folder.resolve() / "vmail"
    vmail.mkdir(parents=True)
    os.chown(vmail, owner.pw_uid, owner.pw_gid)
    postfix = PrivatePostfix(
        folder / "postfix",
        port,
        extra={
            "relay_domains": "example.com, slow.example.net",
            "mydestination": "users.example.net",
            "local_recipient_maps": "",
            "local_transport": "local",
            "alias_maps": "",
            "alias_database": "",
            "transport_maps": "inline:{ slow.example.net=smtp:[127.0.0.1]:9 }",
            "virtual_mailbox_domains": "example.org",
            "virtual_mailbox_base": str(vmail),
            "virtual_mailbox_maps": "static:reports/",
            "virtual_uid_maps": f"static:{owner.pw_uid}",
            "virtual_gid_maps": f"static:{owner.pw_gid}",
            "virtual_minimum_uid": "1",
            "recipient_delimiter": "+",
            "delay_warning_time": "1s",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        },
    )
    return postfix, vmail / "reports"
