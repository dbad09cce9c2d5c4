"""DKIM: the configured key signs, the signature verifies, and h= covers what it must."""

from __future__ import annotations

import re
from pathlib import Path

from newsletter.checks import Finding, Subject
from newsletter.errors import NewsletterError
from newsletter.settings import Settings


def check(s: Subject) -> None:
    if not any(f.rule == "dkim.signature" for f in s.findings):
        s.findings.extend(check_dkim(s.message, s.settings))


DKIM_REQUIRED = (
    "from",
    "subject",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


ED25519_ALONE = (
    "the key is Ed25519, and Gmail, Outlook.com and Yahoo did not verify ed25519-sha256 "
    "signatures when this was written: their users would get the bulletin with no valid "
    "DKIM signature; sign with an RSA key of 2048 bits"
)


def check_dkim(message: bytes, settings: Settings) -> list[Finding]:
    """Sign the built message with the configured key, verify it, and check h=."""
    if not (settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file):
        return []
    import dkim

    from newsletter.sending.dkim import DkimSigner

    key_path = Path(settings.dkim_key_file)
    where = str(key_path)
    try:
        signer = DkimSigner(settings.dkim_domain, settings.dkim_selector, key_path.read_bytes())
    except OSError as exc:
        return [Finding("dkim.signature", "error", f"cannot use the DKIM key: {exc}", where)]
    except NewsletterError as exc:
        return [Finding("dkim.signature", "error", exc.message, where)]
    record = signer.public_record()
    signed = signer.sign(message)
    findings = []
    if signer.algorithm == "ed25519-sha256":
        findings.append(Finding("dkim.algorithm", "warning", ED25519_ALONE, where))
    if not dkim.verify(signed, dnsfunc=lambda *_args, **_kw: record):
        findings.append(
            Finding("dkim.signature", "error", "the signed message does not verify", where)
        )
    header = signed.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    match = re.search(r"\bh=([^;]+)", header.replace("\r\n", "").replace(" ", "").replace("\t", ""))
    covered = {h.strip().lower() for h in (match.group(1).split(":") if match else [])}
    for name in DKIM_REQUIRED:
        if name not in covered:
            findings.append(Finding("dkim.headers", "error", f"h= does not cover {name}", where))
    return findings
