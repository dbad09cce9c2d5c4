"""Starting a project: the folder an editor works in, made ready to use."""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from newsletter import languages
from newsletter.errors import NewsletterError
from newsletter.fields import header_safe
from newsletter.files import write_atomically
from newsletter.issue import source_issues
from newsletter.render import PACKAGED_THEMES

SCAFFOLD = Path(__file__).resolve().parent.parent / "scaffold"


@dataclass
class Started:
    folder: Path
    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # there already: left as they were


def init(folder: Path, name: str | None = None, today: dt.date | None = None) -> Started:
    """Make folder a working project: issues/ with a starter issue for this month, the
    default theme in templates/ (to change as you like), segments.yaml, a .env with a
    fresh secret key and a local base URL, and a .gitignore. Nothing that exists is
    touched, so running it in a project only adds what is missing."""
    if name is not None:
        try:
            header_safe(name)
        except ValueError as exc:
            raise NewsletterError(f"--name: {exc}") from None
    today = today or dt.date.today()
    first = today.replace(day=1)
    slug = f"{first:%Y-%m}"
    values = {
        "{slug}": slug,
        "{date}": first.isoformat(),
        "{month}": languages.month(first, "en"),
        "{name}": (name or "Our bulletin").replace("\\", "").replace('"', "'"),
        "{secret}": secrets.token_urlsafe(32),
    }
    started = Started(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        issues = folder / "issues"
        if issues.is_dir() and source_issues(issues):
            started.kept.append(issues)
        else:
            _write(started, issues / f"{slug}.yaml", "issue.yaml", values)
        theme = folder / "templates" / "default"
        if theme.exists():
            started.kept.append(theme)
        else:
            shutil.copytree(PACKAGED_THEMES / "default", theme)
            started.created.append(theme)
        _write(started, folder / "segments.yaml", "segments.yaml", values)
        env = (SCAFFOLD / "env").read_text(encoding="utf-8")
        if name is None:  # the sender's name stays the default (or what .env.example says)
            env = "".join(row for row in env.splitlines(True) if "{name}" not in row)
        _put(started, folder / ".env", _fill(env, values))
        _write(started, folder / ".gitignore", "gitignore", values)
    except OSError as exc:
        raise NewsletterError(f"cannot set up {folder}: {exc.strerror or exc}") from None
    return started


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def _write(started: Started, target: Path, source: str, values: dict[str, str]) -> None:
    _put(started, target, _fill((SCAFFOLD / source).read_text(encoding="utf-8"), values))


def _put(started: Started, target: Path, text: str) -> None:
    if target.exists():
        started.kept.append(target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, text.encode("utf-8"))
    started.created.append(target)
