"""SpamAssassin's local tests on the built message (--spam)."""

from __future__ import annotations

import re
from typing import Any

from newsletter.checks import Finding, Severity


def check_spam(message: bytes) -> tuple[dict[str, Any] | None, list[Finding]]:
    """SpamAssassin's local tests on the built message; None when it is not installed."""
    import shutil
    import subprocess

    if shutil.which("spamassassin") is None:
        return None, []
    done = subprocess.run(
        ["spamassassin", "-t", "-L"], input=message, capture_output=True, timeout=120
    )
    head = done.stdout.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
    unfolded = re.sub(r"\r?\n[ \t]+", " ", head)
    status = re.search(r"^X-Spam-Status: .*?score=(-?[\d.]+).*?tests=(\S*)", unfolded, re.M)
    if status is None:
        return {"score": None, "rules": [], "error": done.stderr.decode()[-300:]}, []
    score = float(status.group(1))
    rules = [r for r in status.group(2).split(",") if r and r != "none"]
    result = {"score": score, "rules": rules}
    if score >= 2:
        severity: Severity = "error" if score >= 5 else "warning"
        return result, [
            Finding("spam.score", severity, f"SpamAssassin scores it {score} ({', '.join(rules)})")
        ]
    return result, []
