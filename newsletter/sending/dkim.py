"""DKIM signing (RFC 6376) with the key parsed once and OpenSSL doing the arithmetic
(through `cryptography`): rsa-sha256, and ed25519-sha256 (RFC 8463).

dkimpy signs RSA in pure Python and parses the key on every call: 25 to 100 ms a message.
Here a signature costs one SHA-256 over the body (shared with the delivery's record) and
one private-key operation (about 0.28 ms for RSA-2048, far less for Ed25519). A campaign
puts its fixed headers in canonical form once. Canonicalization is relaxed/relaxed; h=
covers both List-Unsubscribe headers, as RFC 8058 asks.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from newsletter.errors import NewsletterError

_WSP = re.compile(rb"[ \t]+")
# Only the runs that change: a tab, or two or more WSP (single spaces are most of a body).
_WSP_TO_CHANGE = re.compile(rb"\t[ \t]*| [ \t]+")
_FOLDED = re.compile(rb"\r\n(?=[ \t])")


def relaxed_lines(data: bytes) -> bytes:
    """The line rules of RFC 6376 3.4.4 over whole lines at once (line by line in Python
    costs more than the RSA signature): runs of WSP become one space, WSP at a line's end
    goes. Lines are independent, so pieces that each end a line canonicalize apart."""
    if b"\t" in data or b"  " in data:  # a search in C, far cheaper than the regex
        data = _WSP_TO_CHANGE.sub(b" ", data)
    return data.replace(b" \r\n", b"\r\n")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: relaxed_lines, then the empty lines at the end go, and a non-empty
    body ends with CRLF."""
    body = relaxed_lines(body)
    if body.endswith(b" "):
        body = body[:-1]
    while body.endswith(b"\r\n"):
        body = body[:-2]
    return body + b"\r\n" if body else b""


def relaxed_header(name: bytes, value: bytes) -> bytes:
    unfolded = _FOLDED.sub(b"", value)
    return name.strip().lower() + b":" + _WSP.sub(b" ", unfolded).strip(b" \t")


def canonical_headers(head: bytes) -> dict[bytes, bytes]:
    """Each header of a block in its relaxed form (RFC 6376 3.4.2), by lowercased name;
    folded lines stay with their header, and the last of a name is the one signed."""
    found: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and found:
            name, value = found[-1]
            found[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            name, value = line.split(b":", 1)
            found.append((name, value))
    return {name.strip().lower(): relaxed_header(name, value) for name, value in found}


class DkimSigner:
    """Signs messages for one domain and selector with one key, parsed here once."""

    HEADERS = (
        b"From",
        b"To",
        b"Subject",
        b"Date",
        b"Message-ID",
        b"MIME-Version",
        b"Content-Type",
        b"List-Id",
        b"List-Unsubscribe",
        b"List-Unsubscribe-Post",
        b"Feedback-ID",
    )
    SIGNED = tuple(name.lower() for name in HEADERS)
    PREHASHED = utils.Prehashed(hashes.SHA256())

    def __init__(self, domain: str, selector: str, key: bytes) -> None:
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError):
            raise NewsletterError(
                "NEWSLETTER_DKIM_KEY_FILE does not hold a PEM private key (RSA or Ed25519, "
                "without a passphrase)"
            ) from None
        if isinstance(private, rsa.RSAPrivateKey):
            if private.key_size < 1024:
                raise NewsletterError(
                    "NEWSLETTER_DKIM_KEY_FILE: an RSA key needs 1024 bits or more"
                )
            self.algorithm = "rsa-sha256"
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            self.algorithm = "ed25519-sha256"
        else:
            raise NewsletterError("NEWSLETTER_DKIM_KEY_FILE: DKIM signs with RSA or Ed25519 keys")
        self.private = private
        self.domain = domain
        self.selector = selector

    def public_record(self) -> bytes:
        """The DNS TXT record that publishes the public half (selector._domainkey)."""
        public = self.private.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    def _sign(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        if isinstance(self.private, rsa.RSAPrivateKey):
            # Hashed here: OpenSSL would look up its SHA-256 for each signature.
            return self.private.sign(digest, padding.PKCS1v15(), self.PREHASHED)
        assert isinstance(self.private, ed25519.Ed25519PrivateKey)
        # RFC 8463: Ed25519 signs the SHA-256 hash of the canonicalized data.
        return self.private.sign(digest)

    def sign(
        self, message: bytes, *, now: float | None = None, body_hash: bytes | None = None
    ) -> bytes:
        """The message with a DKIM-Signature header in front. body_hash: the SHA-256 of
        the canonical body, when the caller has it cheaper than canonicalizing here."""
        head, _, body = message.partition(b"\r\n\r\n")
        digest = body_hash or hashlib.sha256(relaxed_body(body)).digest()
        return self.header(canonical_headers(head), digest, now=now) + message

    def header(
        self, canonical: Mapping[bytes, bytes], body_hash: bytes, *, now: float | None = None
    ) -> bytes:
        """The DKIM-Signature header line for a message whose headers, in relaxed form by
        lowercased name, are canonical (see canonical_headers: a campaign works out its
        fixed headers once) and whose canonical body has this SHA-256."""
        names = [n for n in self.SIGNED if n in canonical]
        tags = (
            f"v=1; a={self.algorithm}; c=relaxed/relaxed; d={self.domain}; s={self.selector};"
            f" t={int(now if now is not None else time.time())};"
            f" h={b':'.join(names).decode('ascii')};"
            f" bh={base64.b64encode(body_hash).decode('ascii')}; b="
        )
        data = b"".join(canonical[n] + b"\r\n" for n in names)
        data += relaxed_header(b"DKIM-Signature", b" " + tags.encode("ascii"))
        signature = base64.b64encode(self._sign(data)).decode("ascii")
        folded = "\r\n\t".join(signature[i : i + 72] for i in range(0, len(signature), 72))
        header = "DKIM-Signature: " + tags.replace("; h=", ";\r\n\th=").replace(
            "; bh=", ";\r\n\tbh="
        )
        return f"{header}\r\n\t{folded}\r\n".encode("ascii")
