"""The one exception family the library raises; the CLI prints each as a single line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a file, 1-based, as editors and their editors count."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class NewsletterError(Exception):
    """Base of every error the tool reports to a person."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"

    def lines(self) -> list[str]:
        """The lines to show the user, one problem per line."""
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, at a place, under a dotted field path."""

    location: Location
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.location}: {self.path}: {self.message}"
        return f"{self.location}: {self.message}"


class InputError(NewsletterError):
    """A file the editor wrote (an issue, a segments file) has one or more problems."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.message if not first.path else f"{first.path}: {first.message}")
        self.location = first.location

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class TemplateError(NewsletterError):
    """A theme template or the MJML it produced is broken."""


class RenderError(NewsletterError):
    """The rendered email failed a structural check (leftover MJML, lost doctype...)."""


class ConfigError(NewsletterError):
    """A setting is missing or invalid."""
