"""The `newsletter` command: a thin layer that parses arguments, calls one library
function and prints. Library errors arrive as NewsletterError and leave as one line each.

Commands import the library inside their bodies, so `--help` and `validate` do not pay
for loading the renderer (premailer alone takes over 100 ms to import).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from newsletter.errors import NewsletterError

# Locals stay hidden: the SMTP password is one of them once sending exists.
app = typer.Typer(
    help="Compose, preview and send a monthly email bulletin from a git repository.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


def _report(error: NewsletterError) -> None:
    for line in error.lines():
        typer.echo(line if error.location is not None else f"Error: {line}", err=True)


def reports_errors(func: F) -> F:
    """Print a NewsletterError as its lines and exit 1, never as a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as error:
            _report(error)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Issue files to check.", show_default=False)],
) -> None:
    """Check issue files against the schema; every problem is one file:line:col line.

    Exits 0 when every file is valid and 1 otherwise.

    Example: newsletter validate issues/*.yaml
    """
    from newsletter.issue import load_issue

    failed = 0
    for path in files:
        try:
            load_issue(path)
        except NewsletterError as error:
            failed += 1
            _report(error)
        else:
            typer.echo(f"{path}: ok")
    if failed:
        raise typer.Exit(1)


@app.command()
@reports_errors
def build(
    file: Annotated[Path, typer.Argument(help="The issue file.", show_default=False)],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder. [default: build/]")
    ] = None,
) -> None:
    """Render an issue to OUT/<slug>/index.html, index.txt and a sample message.eml.

    Example: newsletter build issues/2021-05.yaml --out build/
    """
    from newsletter.build import build as build_issue
    from newsletter.render import GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES
    from newsletter.settings import load_settings

    result = build_issue(file, load_settings(), out)
    size = result.rendered.html_size
    typer.echo(f"Built {file} (content hash {result.rendered.content_hash[:12]})")
    typer.echo(f"  {result.html}   web version, {size / 1024:.1f} KB of HTML")
    typer.echo(f"  {result.text}    plain-text part")
    typer.echo(f"  {result.message}  sample message, as a subscriber would get it")
    if size > GMAIL_CLIP_BYTES:
        typer.echo(
            f"Warning: the HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB and "
            "hides the unsubscribe link",
            err=True,
        )
    elif size > SIZE_WARNING_BYTES:
        typer.echo(
            f"Warning: the HTML is {size / 1024:.0f} KB, close to Gmail's 102 KB clipping limit",
            err=True,
        )
    typer.echo(f"Open {result.html} in a browser to see it.")


@app.command()
@reports_errors
def new(
    slug: Annotated[str, typer.Argument(help="Name of the new issue, e.g. 2021-06.")],
) -> None:
    """Start issues/SLUG.yaml as a copy of the latest issue, ready to edit.

    Example: newsletter new 2021-06
    """
    from newsletter.issue import new_issue
    from newsletter.settings import load_settings

    created, source = new_issue(slug, Path(load_settings().issues_dir))
    typer.echo(f"Created {created} from {source}. Edit it, then run: newsletter validate {created}")


def main() -> None:
    app()
