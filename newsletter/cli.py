"""The `newsletter` command: a thin layer that parses arguments, calls one library
function and prints. Library errors arrive as NewsletterError and leave as one line each.

Commands import the library inside their bodies, so `--help` and `validate` do not pay
for loading the renderer (premailer alone takes over 100 ms to import).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from newsletter.errors import Location, NewsletterError

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
    from newsletter.services import issues

    failed = 0
    for path in files:
        try:
            issues.validate(path)
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
    from newsletter.render import GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES
    from newsletter.services import issues
    from newsletter.settings import load_settings

    result = issues.build(file, load_settings(), out)
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
    from newsletter.services import issues
    from newsletter.settings import load_settings

    created, source = issues.new(slug, load_settings())
    typer.echo(f"Created {created} from {source}. Edit it, then run: newsletter validate {created}")


@app.command()
@reports_errors
def init(
    folder: Annotated[
        Path, typer.Argument(help="The project folder (created if needed).", show_default=True)
    ] = Path("."),
    name: Annotated[
        str | None, typer.Option("--name", help="The bulletin's name, as readers see it.")
    ] = None,
) -> None:
    """Set up a project folder: a starter issue, the default theme, segments.yaml, a .env
    with a fresh secret key and a local base URL, and a .gitignore.

    Files that exist are left as they are: in an existing project it only adds what is
    missing (such as the .env).

    Example: newsletter init my-bulletin --name "Regional Migration News"
    """
    from newsletter.services import project

    started = project.init(folder, name)
    for path in started.created:
        typer.echo(f"Created {path}")
    for path in started.kept:
        typer.echo(f"Kept    {path} (already there)")
    issues = sorted((folder / "issues").glob("*.yaml"))
    if issues:
        where = "" if folder == Path(".") else f"cd {folder} && "
        typer.echo(
            f"Next: {where}newsletter preview {issues[-1].relative_to(folder)}, then "
            "newsletter serve for the links in the emails."
        )


@app.command()
@reports_errors
def translate(
    file: Annotated[Path, typer.Argument(help="The issue file (the source).", show_default=False)],
    lang: Annotated[str, typer.Option("--lang", help="The language, e.g. es or pt-BR.")],
) -> None:
    """Start the translation of an issue into a language, or add the items it lacks.

    Writes issues/SLUG.LANG.yaml beside the issue. Items still to translate hold the
    source's words and `todo: true`; `newsletter check` lists them, and the stale ones.

    Example: newsletter translate issues/2021-05.yaml --lang es
    """
    from newsletter.services import issues

    result = issues.translate(file, lang)
    if result.created:
        typer.echo(f"Created {result.path}: {result.added} items to translate (todo: true).")
    elif result.added:
        typer.echo(f"Updated {result.path}: {result.added} items added to translate.")
    else:
        typer.echo(f"{result.path} has every item; `newsletter check {file}` lists stale ones.")


# Audience: subscribers, lists, segments and the database.

subscribers_app = typer.Typer(
    help="Add, import, export, show and remove subscribers.", no_args_is_help=True
)
lists_app = typer.Typer(help="Create lists and see their counts.", no_args_is_help=True)
segments_app = typer.Typer(
    help="See the segments declared in the segments file.", no_args_is_help=True
)
db_app = typer.Typer(help="The subscriber database.", no_args_is_help=True)
mailbox_app = typer.Typer(
    help="Read bounces, complaints and mailto unsubscribes, and act on them.",
    no_args_is_help=True,
)
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(lists_app, name="lists")
app.add_typer(segments_app, name="segments")
app.add_typer(db_app, name="db")
app.add_typer(mailbox_app, name="mailbox")

ListOption = Annotated[
    str | None, typer.Option("--list", help="List name. [default: NEWSLETTER_DEFAULT_LIST]")
]
TagOption = Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")]


def _local(moment: Any, settings: Any) -> str:
    from zoneinfo import ZoneInfo

    return f"{moment.astimezone(ZoneInfo(settings.timezone)):%Y-%m-%d %H:%M} {settings.timezone}"


def _when(moment: Any) -> str:
    # SQLite hands datetimes back without their zone; every stored time is UTC.
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else ""


def _settings() -> Any:
    from newsletter.settings import load_settings

    return load_settings()


@subscribers_app.command("import")
@reports_errors
def subscribers_import(
    file: Annotated[
        Path, typer.Argument(help="CSV file with an email column.", show_default=False)
    ],
    list_name: ListOption = None,
    tag: TagOption = None,
    unconfirmed: Annotated[
        bool, typer.Option("--unconfirmed", help="Leave memberships pending double opt-in.")
    ] = False,
) -> None:
    """Import subscribers from CSV into a list, in one transaction.

    Columns email, name, language, status, tags and subscription map to fields; any other
    column becomes an attribute. Bad rows are reported and skipped. Nobody who
    unsubscribed, bounced, complained or was erased is brought back.

    Example: newsletter subscribers import people.csv --list bulletin --tag 2021
    """
    from newsletter.audience.csvio import MAX_PROBLEMS_KEPT
    from newsletter.services import subscribers

    report = subscribers.import_file(
        _settings(), file, list_name=list_name, tag_names=tag, confirmed=not unconfirmed
    )
    for line in report.problems:
        typer.echo(line, err=True)
    if report.rejected > MAX_PROBLEMS_KEPT:
        typer.echo(f"... and {report.rejected - MAX_PROBLEMS_KEPT} more rejected rows", err=True)
    typer.echo(report.summary())


@subscribers_app.command("export")
@reports_errors
def subscribers_export(
    list_name: Annotated[
        str | None, typer.Option("--list", help="Only members of this list.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of to the screen.")
    ] = None,
) -> None:
    """Write subscribers as CSV that `subscribers import` reads back to the same data.

    Example: newsletter subscribers export --list bulletin --out bulletin.csv
    """
    from newsletter.services import subscribers

    count = subscribers.export_file(_settings(), out, list_name=list_name)
    if out is not None:
        typer.echo(f"Exported {count} subscribers to {out}")


@subscribers_app.command("add")
@reports_errors
def subscribers_add(
    email: Annotated[str, typer.Argument(help="The address.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="The subscriber's name.")] = "",
    language: Annotated[str | None, typer.Option("--language", help="e.g. en or es.")] = None,
    list_name: Annotated[
        list[str] | None,
        typer.Option("--list", help="A list; repeat for more. [default: NEWSLETTER_DEFAULT_LIST]"),
    ] = None,
    tag: TagOption = None,
) -> None:
    """Add a subscriber, or add lists and tags to an existing one.

    Example: newsletter subscribers add ana@example.com --name "Ana Pérez" --tag press
    """
    from newsletter.services import subscribers

    subscriber, created = subscribers.add(
        _settings(), email, name=name, language=language, list_names=list_name, tag_names=tag
    )
    verb = "Added" if created else "Updated"
    typer.echo(f"{verb} {subscriber.email} (lists: {', '.join(subscriber.lists)})")


@subscribers_app.command("show")
@reports_errors
def subscribers_show(
    email: Annotated[str, typer.Argument(help="The address.", show_default=False)],
) -> None:
    """Show everything stored about one subscriber.

    Example: newsletter subscribers show ana@example.com
    """
    from newsletter.services import subscribers

    s = subscribers.show(_settings(), email)
    rows = [
        ("email", s.email),
        ("name", s.name),
        ("language", s.language or ""),
        ("status", s.status),
        ("lists", ", ".join(f"{n} ({st})" for n, st in s.lists.items())),
        ("tags", ", ".join(s.tags)),
        ("attributes", ", ".join(f"{k}={v}" for k, v in sorted(s.attributes.items()))),
        ("consent", ", ".join(x for x in (s.consent_source, _when(s.consent_at)) if x)),
        ("created", _when(s.created_at)),
        ("updated", _when(s.updated_at)),
    ]
    for label, value in rows:
        typer.echo(f"{label + ':':<12}{value}".rstrip())
    from newsletter.services.mailbox import events_of

    for event in events_of(_settings(), s.id):
        campaign = f" (campaign {event.campaign_id})" if event.campaign_id else ""
        report = f"report {event.report_id}" if event.report_id else ""
        evidence = ", ".join(x for x in (event.status, event.diagnostic, report) if x)
        line = f"{_when(event.at)} {event.kind}{campaign}"
        typer.echo(f"{'event:':<12}{line}" + (f": {evidence}" if evidence else ""))


@subscribers_app.command("list")
@reports_errors
def subscribers_list(
    status: Annotated[
        str | None, typer.Option("--status", help="active, unsubscribed, bounced or complained.")
    ] = None,
    list_name: Annotated[
        str | None, typer.Option("--list", help="Only members of this list.")
    ] = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Only subscribers with this tag.")
    ] = None,
) -> None:
    """List subscribers, one per line: email, name, status, lists, tags (tab-separated).

    Example: newsletter subscribers list --status active --list bulletin
    """
    from newsletter.services import subscribers

    count = 0
    for s in subscribers.find(_settings(), status=status, list_name=list_name, tag=tag):
        if count == 0:
            typer.echo("email\tname\tstatus\tlists\ttags")
        lists_text = ",".join(f"{n}:{st}" for n, st in s.lists.items())
        typer.echo(f"{s.email}\t{s.name}\t{s.status}\t{lists_text}\t{','.join(s.tags)}")
        count += 1
    typer.echo(f"{count} subscriber{'s' if count != 1 else ''}", err=True)


@subscribers_app.command("unsubscribe")
@reports_errors
def subscribers_unsubscribe(
    email: Annotated[str, typer.Argument(help="The address.", show_default=False)],
    list_name: Annotated[str | None, typer.Option("--list", help="Only from this list.")] = None,
) -> None:
    """Unsubscribe someone from everything, or from one list.

    Example: newsletter subscribers unsubscribe ana@example.com
    """
    from newsletter.services import subscribers

    s = subscribers.unsubscribe_address(_settings(), email, list_name)
    where = f"the list '{list_name}'" if list_name else "everything"
    typer.echo(f"Unsubscribed {s.email} from {where}")


@subscribers_app.command("remove")
@reports_errors
def subscribers_remove(
    email: Annotated[str, typer.Argument(help="The address.", show_default=False)],
) -> None:
    """Erase a subscriber for good (an erasure request). A hash of the address is kept so
    that a later import does not bring them back.

    Example: newsletter subscribers remove ana@example.com
    """
    from newsletter.services import subscribers

    address = subscribers.erase(_settings(), email)
    typer.echo(f"Erased {address}; a hash of the address is kept so that imports skip it")


@lists_app.command("create")
@reports_errors
def lists_create(
    name: Annotated[str, typer.Argument(help="Letters, digits, dashes.", show_default=False)],
    description: Annotated[str, typer.Option("--description", help="What the list is for.")] = "",
) -> None:
    """Create a list.

    Example: newsletter lists create events --description "Event invitations"
    """
    from newsletter.services import subscribers

    subscribers.create_list(_settings(), name, description)
    typer.echo(f"Created the list '{name}'")


@lists_app.command("list")
@reports_errors
def lists_list() -> None:
    """Show every list with its member counts.

    Example: newsletter lists list
    """
    from newsletter.services import subscribers

    infos = subscribers.lists(_settings())
    width = max([len("list"), *(len(i.name) for i in infos)])
    typer.echo(f"{'list':<{width}}  confirmed  unconfirmed  unsubscribed  description")
    for i in infos:
        typer.echo(
            f"{i.name:<{width}}  {i.confirmed:>9}  {i.unconfirmed:>11}  {i.unsubscribed:>12}  "
            f"{i.description}".rstrip()
        )


@segments_app.command("list")
@reports_errors
def segments_list() -> None:
    """Show every segment with its recipient count.

    Example: newsletter segments list
    """
    from newsletter.services import subscribers

    rows = [
        (named.name, n, named.segment.description) for named, n in subscribers.segments(_settings())
    ]
    width = max(len(r[0]) for r in rows)
    typer.echo(f"{'segment':<{width}}  recipients  description")
    for name, n, description in rows:
        typer.echo(f"{name:<{width}}  {n:>10}  {description}".rstrip())


@segments_app.command("show")
@reports_errors
def segments_show(
    name: Annotated[str, typer.Argument(help="The segment's name.", show_default=False)],
    limit: Annotated[int, typer.Option("--limit", help="How many recipients to show.")] = 10,
) -> None:
    """Show a segment's filter, its recipient count and its first recipients.

    Example: newsletter segments show everyone --limit 5
    """
    from newsletter.services import subscribers

    named, total, first = subscribers.segment(_settings(), name, limit)
    typer.echo(f"segment:     {named.name}")
    if named.segment.description:
        typer.echo(f"description: {named.segment.description}")
    typer.echo(f"lists:       {', '.join(named.lists)}")
    typer.echo(f"recipients:  {total}")
    for r in first:
        typer.echo(f"  {r.email}" + (f"  {r.name}" if r.name else ""))
    shown = len(first)
    if total > shown:
        typer.echo(f"  ... and {total - shown} more")


@db_app.command("upgrade")
@reports_errors
def db_upgrade() -> None:
    """Create the database's schema, or upgrade it to this version's. Every command does
    this itself when needed; this command does only that.

    Example: newsletter db upgrade
    """
    from newsletter.services import upgrade_database

    before, after = upgrade_database(_settings())
    if before == after:
        typer.echo(f"The database is at schema version {after}; nothing to do")
    else:
        typer.echo(f"Upgraded the database from schema version {before} to {after}")


# Sending and campaigns.

campaigns_app = typer.Typer(
    help="See campaigns and their ledgers; retry deferred messages.",
    invoke_without_command=True,
)
app.add_typer(campaigns_app, name="campaigns")


def _summary_lines(campaign_id: int | None, summary: Any) -> list[str]:
    prefix = f"Campaign {campaign_id}: " if campaign_id is not None else "Test send: "
    lines = [prefix + summary.line()]
    if summary.paused:
        lines.append(f"Paused: {summary.paused}. Run the same command again to resume.")
    if summary.interrupted:
        lines.append("Stopped. Run the same command again to resume where it left off.")
    if summary.deferred and summary.next_attempt is not None and campaign_id is not None:
        lines.append(
            f"{summary.deferred} deferred; the next attempt is due at "
            f"{_when(summary.next_attempt)}: run the same command again then, or "
            f"`newsletter campaigns retry {campaign_id}` now."
        )
    return lines


def _progress(total: int) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    class Rate(TransferSpeedColumn):
        def render(self, task: Any) -> Any:
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:.0f} msg/s" if speed else "- msg/s")

    return Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


@app.command()
@reports_errors
def send(
    file: Annotated[Path, typer.Argument(help="The issue file.", show_default=False)],
    test: Annotated[
        bool, typer.Option("--test", help="Send a [TEST] copy to the test recipients.")
    ] = False,
    live: Annotated[
        bool, typer.Option("--live", help="Send the campaign to the issue's audience.")
    ] = False,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="With --test: send to this address instead.")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="With --live: do not ask for confirmation.")
    ] = False,
    new_campaign: Annotated[
        bool, typer.Option("--new-campaign", help="Start a new campaign even if one exists.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help='With --live: schedule it, e.g. "2021-06-01 09:00" (NEWSLETTER_TIMEZONE); '
            "newsletter worker sends it.",
        ),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option("--lang", help="With --test: the edition in this language, e.g. es."),
    ] = None,
) -> None:
    """Send a test copy (--test) or the live campaign (--live), now or --at a time.

    A live send shows what it will do and asks first. Interrupted, it resumes when run
    again: nobody gets it twice, except messages that were on the wire at the time.

    Example: newsletter send issues/2021-05.yaml --test --to me@example.org
    """
    from newsletter.services import campaigns
    from newsletter.settings import load_settings

    if test == live:
        raise NewsletterError("choose one: --test or --live")
    settings = load_settings()
    if lang is not None and not test:
        raise NewsletterError("--lang goes with --test: a live send gives everyone their edition")
    if test:
        summary = campaigns.send_test(file, settings, to or None, language=lang)
        for address, outcome in summary.outcomes:
            typer.echo(f"{address}: {outcome}")
        typer.echo(_summary_lines(None, summary)[0])
        if summary.sent != len(summary.outcomes):
            raise typer.Exit(1)
        return
    when = campaigns.parse_time(at, settings) if at is not None else None
    plan = campaigns.plan(file, settings, new_campaign=new_campaign)
    typer.echo(f"Issue:      {plan.issue_path}")
    typer.echo(f"Subject:    {plan.rendered.subject}")
    description = (
        f" ({plan.segment.segment.description})" if plan.segment.segment.description else ""
    )
    typer.echo(f"Segment:    {plan.segment.name}{description}")
    typer.echo(f"Recipients: {plan.recipients}")
    if len(plan.editions) > 1:
        for n, (language, edition) in enumerate(plan.editions.items()):
            label = "Editions:   " if n == 0 else " " * 12
            typer.echo(
                f"{label}{language:<6} {plan.per_edition.get(language, 0):>7} "
                f"recipients  content {edition.content_hash[:12]}  {edition.subject}"
            )
    typer.echo(f"Content:    {(plan.content_hash or plan.rendered.content_hash)[:12]}")
    typer.echo(f"Via:        {plan.transport}")
    if plan.unreachable:
        typer.echo(
            f"Images:     {len(plan.unreachable)} of {plan.images} do not answer (fine for the "
            "outbox; a send over SMTP would be refused):"
        )
        for problem in plan.unreachable[:3]:
            typer.echo(f"            {problem}")
        if len(plan.unreachable) > 3:
            typer.echo(f"            and {len(plan.unreachable) - 3} more")
    elif plan.images:
        typer.echo(f"Images:     {plan.images}, each answers at its address")
    if plan.campaign is not None and plan.remaining is not None:
        r = plan.remaining
        left = r["pending"] + r["sending"] + r["deferred"]
        typer.echo(
            f"Campaign:   resuming campaign {plan.campaign.id} ({r['sent']} sent, {left} to go)"
        )
    else:
        typer.echo("Campaign:   new")
    if when is not None:
        typer.echo(f"When:       {_local(when, settings)}")
    question = "Schedule it?" if when is not None else "Send it?"
    if plan.already:
        typer.echo(
            f"Already:    {plan.already} of these {plan.recipients} recipients received this "
            "issue in an earlier campaign: they would get it again"
        )
        question = f"Send it again to those {plan.already}, and to the others?"
    if not yes and not typer.confirm(question, default=False):
        typer.echo("Nothing was sent.")
        raise typer.Exit(1)
    if when is not None:
        scheduled = campaigns.schedule(plan, settings, when, new_campaign=new_campaign)
        typer.echo(
            f"Campaign {scheduled.id} is scheduled for {_local(when, settings)}; "
            "`newsletter worker` sends it then."
        )
        return
    if settings.secret_key is None:
        typer.echo(
            "Warning: NEWSLETTER_SECRET_KEY is not set; the outbox copies are signed with an "
            "insecure development key",
            err=True,
        )
    due = plan.remaining
    remaining = (
        plan.recipients if due is None else due["pending"] + due["sending"] + due["deferred"]
    )
    transport = campaigns.connect(plan, settings)
    if remaining == 0:
        campaign, summary = campaigns.send(
            plan, settings, transport=transport, new_campaign=new_campaign
        )
        for line in _summary_lines(campaign.id, summary):
            typer.echo(line)
        return
    with _progress(remaining) as bar:
        task = bar.add_task("send", total=remaining)

        def advance(summary: Any) -> None:
            bar.update(
                task, completed=summary.sent + summary.failed + summary.deferred + summary.skipped
            )

        campaign, summary = campaigns.send(
            plan, settings, transport=transport, progress=advance, new_campaign=new_campaign
        )
        advance(summary)
    for line in _summary_lines(campaign.id, summary):
        typer.echo(line)
    if summary.interrupted:
        raise typer.Exit(130)
    if summary.paused:
        raise typer.Exit(1)


@campaigns_app.callback()
@reports_errors
def campaigns_list(ctx: typer.Context) -> None:
    """List campaigns with their counts per state.

    Example: newsletter campaigns
    """
    if ctx.invoked_subcommand is not None:
        return
    from newsletter.services import campaigns

    rows = campaigns.overview(_settings())
    if not rows:
        typer.echo("No campaigns yet. Start one with: newsletter send ISSUE --live")
        return
    typer.echo(
        "id  issue       segment           recipients  sent  deferred  failed  skipped  pending  "
        "created"
    )
    for c, n in rows:
        typer.echo(
            f"{c.id:<3} {c.issue:<11} {c.segment:<17} {c.recipients:>10}  {n['sent']:>4}  "
            f"{n['deferred']:>8}  {n['failed']:>6}  {n['skipped']:>7}  "
            f"{n['pending'] + n['sending']:>7}  {_when(c.created_at)}"
        )


@campaigns_app.command("report")
@reports_errors
def campaigns_report(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The folder to write into.")] = Path("reports"),
) -> None:
    """Write a campaign's report: an HTML page with charts (deliveries over time, the
    outcome per edition, what came back) and the failures, and the same figures as JSON.

    The page is self-contained: it fetches nothing when opened.

    Example: newsletter campaigns report 1
    """
    from newsletter.services import report

    written = report.write(_settings(), campaign_id, out)
    typer.echo(f"Wrote {written.html} and {written.json}")


@campaigns_app.command("show")
@reports_errors
def campaigns_show(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id.", show_default=False)],
) -> None:
    """Show a campaign's counts, and its failed and deferred messages with the replies.

    Example: newsletter campaigns show 1
    """
    from newsletter.services import campaigns

    report = campaigns.show(_settings(), campaign_id)
    c, n = report.campaign, report.counts
    typer.echo(f"campaign:   {c.id}")
    typer.echo(f"issue:      {c.issue_path} ({c.content_hash[:12]})")
    typer.echo(f"subject:    {c.subject}")
    typer.echo(f"segment:    {c.segment}")
    typer.echo(f"state:      {c.state}")
    typer.echo(f"created:    {_when(c.created_at)}")
    if c.send_at is not None:
        typer.echo(f"send at:    {_when(c.send_at)}")
    if c.git_commit:
        changed = " (the file had uncommitted changes)" if c.git_dirty else ""
        typer.echo(f"git commit: {c.git_commit}{changed}")
    typer.echo(
        f"recipients: {c.recipients}: {n['sent']} sent, {n['deferred']} deferred, "
        f"{n['failed']} failed, {n['skipped']} skipped, {n['pending'] + n['sending']} pending"
    )
    if len(report.editions) > 1:
        for language, states in sorted(report.editions.items(), key=lambda e: str(e[0])):
            done = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
            typer.echo(f"  {language or '(one render)':<10} {done}")
    from newsletter.services.mailbox import campaign_events

    returned = campaign_events(_settings(), c.id)
    if returned:
        typer.echo("came back: " + ", ".join(f"{n} {kind}" for kind, n in sorted(returned.items())))
    for p in report.problems:
        who = p.email or f"subscriber {p.subscriber_id} (erased)"
        when = (
            f", next attempt {_when(p.next_attempt_at)}"
            if p.status == "deferred" and p.next_attempt_at
            else ""
        )
        code = f"{p.code} " if p.code else ""
        typer.echo(f"  {p.status:<8} {who}: {code}{p.reply or ''} (attempts: {p.attempts}{when})")


@campaigns_app.command("retry")
@reports_errors
def campaigns_retry(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id.", show_default=False)],
) -> None:
    """Send a campaign's deferred messages now instead of waiting for their next attempt.

    Example: newsletter campaigns retry 1
    """
    from newsletter.services import campaigns

    campaign, summary = campaigns.retry(campaign_id, _settings())
    for line in _summary_lines(campaign.id, summary):
        typer.echo(line)
    if summary.paused:
        raise typer.Exit(1)


def _control(campaign_id: int, action: str) -> None:
    from newsletter.services import campaigns

    campaign = campaigns.control(_settings(), campaign_id, action)
    typer.echo(f"Campaign {campaign.id} is {campaign.state}")


@campaigns_app.command("pause")
@reports_errors
def campaigns_pause(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id.", show_default=False)],
) -> None:
    """Pause a campaign: no sender sends anything more until it is resumed.

    Example: newsletter campaigns pause 3
    """
    _control(campaign_id, "pause")


@campaigns_app.command("resume")
@reports_errors
def campaigns_resume(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id.", show_default=False)],
) -> None:
    """Resume a paused campaign; `newsletter worker` (or `send --live`) goes on with it.

    Example: newsletter campaigns resume 3
    """
    _control(campaign_id, "resume")


@campaigns_app.command("cancel")
@reports_errors
def campaigns_cancel(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id.", show_default=False)],
) -> None:
    """Cancel a campaign for good: nothing more of it is sent.

    Example: newsletter campaigns cancel 3
    """
    _control(campaign_id, "cancel")


@campaigns_app.command("verify")
@reports_errors
def campaigns_verify(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id.", show_default=False)],
    email: Annotated[str, typer.Argument(help="The recipient's address.", show_default=False)],
    message: Annotated[Path, typer.Argument(help="The message, saved as .eml.")],
) -> None:
    """Tell whether a saved message is the copy the campaign sent to that address.

    Exits 0 when it is, 1 when it is not.

    Example: newsletter campaigns verify 3 ana@example.com message.eml
    """
    from newsletter.services import campaigns

    try:
        raw = message.read_bytes()
    except OSError as exc:
        raise NewsletterError(f"cannot read it: {exc.strerror}", Location(str(message))) from None
    verdict = campaigns.verify(_settings(), campaign_id, email, raw)
    typer.echo(f"{message}: {verdict.explanation}")
    if not verdict.matches:
        raise typer.Exit(1)


@mailbox_app.command("process")
@reports_errors
def mailbox_process() -> None:
    """Read NEWSLETTER_MAILBOX_URL once: bounces mark subscribers bounced, complaints and
    mailto unsubscribes unsubscribe them; every report is filed in Processed or, if not
    recognised, in Unrecognised. Nothing is deleted; running it again changes nothing.

    Example: newsletter mailbox process
    """
    from newsletter.services import mailbox

    summary = mailbox.process(_settings(), report=lambda line: typer.echo(line))
    typer.echo(f"Mailbox: {summary.line()}")


@app.command()
@reports_errors
def worker(
    once: Annotated[bool, typer.Option("--once", help="Do what is due now, then stop.")] = False,
) -> None:
    """Run the sending worker: scheduled campaigns at their time, retries when they fall
    due, and the rows of senders that died. SIGTERM or Ctrl-C: the messages on the wire
    finish, then it exits. Run one per machine; they share the work.

    Example: newsletter worker
    """
    import datetime as dt
    import signal

    from newsletter.sending.runner import Stop, stop_on_signals
    from newsletter.services import campaigns

    settings = _settings()
    stop = Stop()
    restore = stop_on_signals(stop, signal.SIGINT, signal.SIGTERM)

    def report(line: str) -> None:
        typer.echo(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} {line}", err=True)

    report(f"worker started (checks every {settings.worker_poll:g} s)")
    try:
        campaigns.work(settings, stop, once=once, report=report)
    finally:
        restore()
    report("worker stopped")


@app.command()
@reports_errors
def preview(
    file: Annotated[Path, typer.Argument(help="The issue file.", show_default=False)],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8025,
    as_email: Annotated[
        str | None, typer.Option("--as", help="Fill the placeholders with this subscriber's data.")
    ] = None,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser.")] = False,
) -> None:
    """Preview the issue in a browser; every save re-renders it at once.

    Serves on 127.0.0.1 only. Ctrl-C stops it.

    Example: newsletter preview issues/2021-05.yaml --as ana@example.com
    """
    import socket
    import webbrowser

    from newsletter.preview.server import serve
    from newsletter.preview.state import Preview
    from newsletter.settings import load_settings

    settings = load_settings()
    state = Preview(path=file, settings=settings, recipient_email=as_email)
    if as_email:
        from newsletter.services import subscribers

        subscribers.show(settings, as_email)
    state.rebuild()
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise NewsletterError(
                f"port {port} on 127.0.0.1 is in use; pick another with --port"
            ) from None

    def ready(url: str) -> None:
        typer.echo(f"Previewing {file} at {url} (Ctrl-C to stop)")
        if state.error:
            for line in state.error:
                typer.echo(line, err=True)
        if not no_open:
            webbrowser.open(url)

    # uvicorn shuts down cleanly on Ctrl-C, then hands the signal on as KeyboardInterrupt.
    with contextlib.suppress(KeyboardInterrupt):
        serve(state, port=port, on_ready=ready)
    typer.echo("Stopped.")


@app.command()
@reports_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
) -> None:
    """Run the public web service: unsubscribe, preferences, signup and the archive.

    Put it behind a reverse proxy that terminates TLS (see the README); links are built
    from NEWSLETTER_BASE_URL.

    Example: newsletter serve --host 127.0.0.1 --port 8000
    """
    import uvicorn

    from newsletter.settings import load_settings
    from newsletter.web.app import create_web_app

    settings = load_settings()
    application = create_web_app(settings)  # refuses to start without a real secret key
    typer.echo(f"Serving {settings.base_url} on http://{host}:{port}/ (Ctrl-C to stop)")
    # The proxy on this machine says who the client is (X-Forwarded-For), for rate limits.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_level="warning",
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1",
        )
    typer.echo("Stopped.")


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="The issue file.", show_default=False)],
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too.")] = False,
    links: Annotated[bool, typer.Option("--links", help="Also fetch every link online.")] = False,
    spam: Annotated[bool, typer.Option("--spam", help="Also score it with SpamAssassin.")] = False,
    output: Annotated[
        str, typer.Option("--format", help="text or json.", show_default=True)
    ] = "text",
) -> None:
    """Check an issue before sending: size, images, links, subject, preheader, unsubscribe,
    plain text and DKIM. Exits 0 or 1, so CI can gate an issue on it.

    Example: newsletter check issues/2021-05.yaml --strict --spam
    """
    import json

    from newsletter.services import issues
    from newsletter.settings import load_settings

    if output not in ("text", "json"):
        _report(NewsletterError("--format is text or json"))
        raise typer.Exit(2)
    report = issues.check(file, load_settings(), links=links, spam=spam)
    if output == "json":
        typer.echo(json.dumps(report.as_json(str(file)), indent=2, default=str))
    else:
        for finding in report.findings:
            typer.echo(str(finding), err=finding.severity == "error")
        if spam:
            if report.spam and report.spam.get("installed") is False:
                typer.echo(
                    "SpamAssassin is not installed (apt-get install spamassassin); "
                    "--spam checked nothing"
                )
            elif report.spam:
                rules = ", ".join(report.spam.get("rules", [])) or "none"
                typer.echo(f"SpamAssassin score: {report.spam.get('score')} (rules: {rules})")
        typer.echo(f"{file}: {report.errors} errors, {report.warnings} warnings")
    if report.failed(strict):
        raise typer.Exit(1)
