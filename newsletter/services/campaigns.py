"""Use cases on campaigns: plan a live send (checks first), send it, send a test copy,
retry deferred messages, list and show campaigns."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from newsletter import languages, tokens
from newsletter.audience import audience_of, declared_segments
from newsletter.audience.addresses import normalize_address
from newsletter.audience.segments import count_by_language
from newsletter.checks import ChecksFailed
from newsletter.errors import NewsletterError
from newsletter.issue import IssueFile, load_issue
from newsletter.render import RenderedIssue, render_issue
from newsletter.sending import ledger
from newsletter.sending.message import (
    Addressee,
    campaign_template,
    record_digest,
    unsubscribe_mailto,
)
from newsletter.sending.runner import (
    Plan,
    Pool,
    Stop,
    Summary,
    run_campaign,
    stop_on_signals,
    transport_name,
)
from newsletter.sending.transport import Outcome, Transport, make_transport
from newsletter.services import database
from newsletter.services.issues import editions, load_edition, publish_media, render_and_check
from newsletter.settings import Settings
from newsletter.store import utcnow


def send_test(
    path: Path | str,
    settings: Settings,
    to: list[str] | None = None,
    *,
    language: str | None = None,
) -> Summary:
    """Send the issue (its edition nearest language) to the test recipients, through the
    same building and transport as a live send, with [TEST] before the subject. Nothing
    goes into the ledger."""
    rendered = render_issue(load_edition(path, language), settings)
    wanted = to or settings.test_recipient_list()
    if not wanted:
        raise NewsletterError(
            "no test recipients: set NEWSLETTER_TEST_RECIPIENTS or pass --to ADDRESS"
        )
    addresses = []
    for raw in wanted:
        try:
            addresses.append(normalize_address(raw))
        except ValueError as exc:
            raise NewsletterError(f"'{raw}' is not a valid email address: {exc}") from None
    key = tokens.signing_key(settings)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    template = campaign_template(
        rendered, settings, f"test-{rendered.slug}", f"[TEST] {rendered.subject}"
    )
    transport = make_transport(settings, f"test-{rendered.slug}")
    transport.open()
    pool = Pool(transport, settings)
    summary = Summary()
    try:
        futures = []
        for n, email in enumerate(addresses, 1):
            token = tokens.sign(key, 0, tokens.TEST)
            to_ = Addressee(
                subscriber_id=0,
                email=email,
                name="",
                message_id=f"<test.{rendered.content_hash[:12]}.{stamp}.{n}@"
                f"{settings.sender_domain()}>",
                unsubscribe_url=settings.public_url("unsubscribe", token),
                unsubscribe_mailto=unsubscribe_mailto(settings, token),
            )
            sender = tokens.return_path(settings, key, "t", int(stamp), n)
            build = functools.partial(template.build_recorded, to_)
            futures.append((email, pool.submit(build, sender, email, f"{stamp}-{n}")))
        for email, answer in futures:
            result = answer.get()
            if isinstance(result, BaseException):
                raise result
            outcome = result[0] if result else Outcome("deferred", None, "not sent")
            summary.outcomes.append((email, outcome))
            setattr(summary, outcome.kind, getattr(summary, outcome.kind) + 1)
    finally:
        pool.close()
    return summary


def plan(path: Path | str, settings: Settings, *, new_campaign: bool = False) -> Plan:
    """Validate, render, run the checks and resolve everything a live send needs; change
    nothing. An issue with check errors is refused here."""
    issue_file = load_issue(path)
    everything = editions(issue_file)
    renders, report = render_and_check(issue_file, settings, everything)
    source = languages.canonical(issue_file.issue.language)
    rendered = renders[source]
    tokens.signing_key(settings)
    if report.errors:
        raise ChecksFailed(report, issue_file.path)
    engine = database(settings)
    named = audience_of(issue_file, settings)
    content_hash = ledger.editions_hash(renders)
    written = _source_hash(everything, renders)
    existing = None if new_campaign else ledger.latest_campaign(engine, rendered.slug, named.name)
    if existing is not None and existing.content_hash != content_hash:
        if existing.source_hash == written:
            what = (
                "the issue is as it was, but a setting or the theme that shapes the email "
                "changed (such as NEWSLETTER_BASE_URL, the sender, the templates)"
            )
        else:
            what = f"{issue_file.path} (or a translation or an image of it) changed"
        raise NewsletterError(
            f"campaign {existing.id} was made from another version: {what} (content hash "
            f"{existing.content_hash[:12]}, now {content_hash[:12]}). The campaign sends "
            "the version it froze and will not mix two: `newsletter send --live` without "
            "changes resumes it, `--new-campaign` starts another with this version (and "
            "says who already received the issue)"
        )
    already = ledger.already_received(engine, rendered.slug, named) if new_campaign else 0
    for each in renders.values():
        publish_media(each, settings)
    images, unreachable = _images_answer(list(renders.values()), settings)
    remaining = None
    if existing is not None:
        recipients, remaining = existing.recipients, ledger.counts(engine, existing.id)
        per_edition = {
            str(language or source): sum(states.values())
            for language, states in ledger.edition_counts(engine, existing.id).items()
        }
    else:
        per_edition = dict.fromkeys(renders, 0)
        for language, n in count_by_language(engine, named).items():
            per_edition[languages.pick(language, renders, source)] += n
        recipients = sum(per_edition.values())
    return Plan(
        issue_file.path,
        rendered,
        named,
        recipients,
        existing,
        remaining,
        transport_name(settings),
        images,
        unreachable,
        renders,
        per_edition,
        content_hash,
        written,
        already,
    )


def _source_hash(everything: dict[str, IssueFile], renders: dict[str, RenderedIssue]) -> str:
    """A hash of what the editor wrote: every edition's words and links, and the images
    (by the names of their prepared files, which are their content)."""
    digest = hashlib.sha256()
    for language, each in sorted(everything.items()):
        digest.update(language.encode() + b"\0" + each.issue.model_dump_json().encode())
        for image in renders[language].media:
            digest.update(image.name.encode() + b"\0")
    return digest.hexdigest()


def _images_answer(renders: list[RenderedIssue], settings: Settings) -> tuple[int, tuple[str, ...]]:
    """How many images the emails show, and those that do not answer where they load them
    from. Over SMTP that refuses the send: every reader would get broken pictures."""
    from newsletter.checks.images import image_urls, unreachable

    problems = tuple(dict.fromkeys(p for each in renders for p in unreachable(each, settings)))
    if problems and settings.smtp_host:
        raise NewsletterError(
            f"{len(problems)} of the email's images do not answer, and every reader would see "
            f"them broken: {'; '.join(problems)}. Publish the media folder "
            f"({settings.media_dir}) at {settings.media_base()}/ (newsletter serve does), "
            "then send again"
        )
    return len({url for each in renders for url in image_urls(each)}), problems


def connect(plan: Plan, settings: Settings) -> Transport:
    """The transport, checked: authentication and TLS problems stop a send here, before
    any ledger row changes."""
    transport = make_transport(settings, plan.rendered.slug)
    transport.open()
    return transport


def parse_time(text: str, settings: Settings) -> dt.datetime:
    """A moment the editor wrote ("2021-06-01 09:00", in NEWSLETTER_TIMEZONE, or with
    its own offset), in UTC."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise NewsletterError(
            f"--at '{text}' is not a time such as \"2021-06-01 09:00\" (in {settings.timezone})"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    return moment.astimezone(dt.UTC)


def _git(path: str) -> tuple[str | None, bool | None]:
    """The commit the issue file was last committed in, and whether the file has changes
    since; (None, None) outside a git repository or without git."""
    folder = str(Path(path).resolve().parent)
    try:
        head = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--", str(Path(path).resolve())],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    if head.returncode != 0 or status.returncode != 0:
        return None, None
    return head.stdout.strip()[:40] or None, bool(status.stdout.strip())


def create(
    plan: Plan,
    settings: Settings,
    *,
    new_campaign: bool = False,
    send_at: dt.datetime | None = None,
) -> ledger.Campaign:
    """The planned campaign, frozen: the render it will send, its content hash and the
    issue file's git commit. Two commands racing make one campaign."""
    if plan.campaign is not None:
        return plan.campaign
    engine = database(settings)
    generation = (
        ledger.next_generation(engine, plan.rendered.slug, plan.segment.name) if new_campaign else 1
    )
    commit, dirty = _git(plan.issue_path)
    campaign, _ = ledger.create_campaign(
        engine,
        issue_path=plan.issue_path,
        rendered=plan.rendered,
        editions=plan.editions,
        source_hash=plan.source_hash or None,
        named=plan.segment,
        generation=generation,
        send_at=send_at,
        git_commit=commit,
        git_dirty=dirty,
    )
    return campaign


def send(
    plan: Plan,
    settings: Settings,
    *,
    transport: Transport | None = None,
    progress: Callable[[Summary], None] | None = None,
    new_campaign: bool = False,
) -> tuple[ledger.Campaign, Summary]:
    """Create (or resume) the planned campaign and send its frozen render until nothing
    is due. Ctrl-C and SIGTERM stop it cleanly."""
    campaign = create(plan, settings, new_campaign=new_campaign)
    if campaign.state in ("paused", "cancelled"):
        raise NewsletterError(
            f"campaign {campaign.id} is {campaign.state}"
            + (
                f"; resume it with: newsletter campaigns resume {campaign.id}"
                if campaign.state == "paused"
                else ""
            )
        )
    transport = transport or connect(plan, settings)
    return campaign, _run(campaign, settings, transport, progress=progress)


def _run(
    campaign: ledger.Campaign,
    settings: Settings,
    transport: Transport,
    *,
    progress: Callable[[Summary], None] | None = None,
    stop: Stop | None = None,
) -> Summary:
    engine = database(settings)
    frozen = ledger.frozen_editions(engine, campaign.id)
    if not frozen:  # a campaign from before campaigns were frozen
        frozen = {None: render_issue(load_issue(campaign.issue_path), settings)}
    segment = declared_segments(settings).get(campaign.segment)
    own_stop = stop is None
    stop = stop or Stop()
    restore = stop_on_signals(stop, signal.SIGINT, signal.SIGTERM) if own_stop else None
    try:
        return run_campaign(
            engine, campaign, frozen, segment, settings, transport, stop=stop, progress=progress
        )
    finally:
        if restore is not None:
            restore()


def schedule(
    plan: Plan, settings: Settings, when: dt.datetime, *, new_campaign: bool = False
) -> ledger.Campaign:
    """Make the campaign now, frozen, for `newsletter worker` to send at when."""
    if plan.campaign is not None:
        raise NewsletterError(
            f"campaign {plan.campaign.id} already exists for this issue and segment; pass "
            "--new-campaign to schedule another"
        )
    return create(plan, settings, new_campaign=new_campaign, send_at=when)


def retry(
    campaign_id: int, settings: Settings, progress: Callable[[Summary], None] | None = None
) -> tuple[ledger.Campaign, Summary]:
    """Make the campaign's deferred rows due now and send them."""
    engine = database(settings)
    campaign = ledger.get_campaign(engine, campaign_id)
    if campaign.state != "sending":
        raise NewsletterError(f"campaign {campaign_id} is {campaign.state}; nothing to retry")
    ledger.retry_now(engine, campaign_id)
    transport = make_transport(settings, campaign.issue)
    transport.open()
    return campaign, _run(campaign, settings, transport, progress=progress)


CONTROL = {
    # action: (new state, the states it applies to)
    "pause": ("paused", ("scheduled", "sending")),
    "resume": ("sending", ("paused",)),
    "cancel": ("cancelled", ("scheduled", "sending", "paused")),
}


def control(settings: Settings, campaign_id: int, action: str) -> ledger.Campaign:
    """Pause, resume or cancel a campaign, for every sender: each sees it at its next claim
    (at most the messages already on the wire still go out)."""
    engine = database(settings)
    campaign = ledger.get_campaign(engine, campaign_id)
    state, allowed = CONTROL[action]
    if action == "resume" and campaign.send_at is not None and campaign.send_at > utcnow():
        state = "scheduled"
    if not ledger.set_state(engine, campaign_id, state, allowed=allowed):
        raise NewsletterError(f"campaign {campaign_id} is {campaign.state}; it cannot be {state}")
    return ledger.get_campaign(engine, campaign_id)


def work(
    settings: Settings,
    stop: Stop,
    *,
    once: bool = False,
    report: Callable[[str], None] = lambda _line: None,
) -> None:
    """The worker: start scheduled campaigns whose time has come, send what is due
    (deferred deliveries when their time comes, rows whose sender died), and again, until
    stop. Several workers, on several machines over PostgreSQL, share the work."""
    from newsletter.services import mailbox

    engine = database(settings)
    while not stop.requested.is_set():
        if settings.mailbox_url:
            try:
                returned = mailbox.process(settings)
            except NewsletterError as exc:
                report(f"mailbox: {exc}")
            else:
                if returned.counts:
                    report(f"mailbox: {returned.line()}")
        for cid in ledger.start_due(engine, utcnow()):
            report(f"campaign {cid}: its time has come; sending")
        for cid in ledger.work_left(engine):
            if stop.requested.is_set():
                break
            campaign = ledger.get_campaign(engine, cid)
            transport = make_transport(settings, campaign.issue)
            try:
                transport.open()
                summary = _run(campaign, settings, transport, stop=stop)
            except NewsletterError as exc:
                report(f"campaign {cid}: {exc}")
                continue
            report(f"campaign {cid}: {summary.line()}")
        if once:
            return
        # With an IMAP mailbox that offers IDLE, a report wakes the worker at once.
        mailbox.wait_for_reports(settings, settings.worker_poll, stop.requested)


@dataclass(frozen=True)
class Verdict:
    matches: bool
    explanation: str


def verify(settings: Settings, campaign_id: int, email: str, message: bytes) -> Verdict:
    """Whether message (a saved .eml) is the copy of the campaign we sent to email: the
    fingerprint of the bytes we wrote (record_digest; a plain SHA-256 for copies recorded
    before it), compared with the ledger's. Headers that servers add on the way
    (Received, Return-Path...) are set aside; line ends are made CRLF again."""
    from newsletter.audience.subscribers import get_subscriber

    engine = database(settings)
    campaign = ledger.get_campaign(engine, campaign_id)
    subscriber = get_subscriber(engine, email)
    recorded = ledger.message_hash(engine, campaign.id, subscriber.id)
    if recorded is None:
        return Verdict(
            False, f"campaign {campaign.id} has no copy on record for {subscriber.email}"
        )
    raw = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    starts = [0] + [
        i + 2 for header in (b"\r\nDKIM-Signature:", b"\r\nFrom:") if (i := raw.find(header)) >= 0
    ]
    for start in starts:
        if recorded in (record_digest(raw[start:]), hashlib.sha256(raw[start:]).hexdigest()):
            return Verdict(
                True,
                f"this is the copy of campaign {campaign.id} sent to {subscriber.email} "
                f"(fingerprint {recorded[:16]}...)",
            )
    return Verdict(
        False,
        f"this is not the copy of campaign {campaign.id} we sent to {subscriber.email}: "
        "its bytes differ from the ones on record",
    )


@dataclass(frozen=True)
class CampaignReport:
    campaign: ledger.Campaign
    counts: dict[str, int]
    problems: list[ledger.Problem]
    # Deliveries by edition (language) and state, for a campaign in several languages.
    editions: dict[str | None, dict[str, int]] = field(default_factory=dict)


def overview(settings: Settings) -> list[tuple[ledger.Campaign, dict[str, int]]]:
    engine = database(settings)
    return [(c, ledger.counts(engine, c.id)) for c in ledger.all_campaigns(engine)]


def show(settings: Settings, campaign_id: int) -> CampaignReport:
    engine = database(settings)
    campaign = ledger.get_campaign(engine, campaign_id)
    return CampaignReport(
        campaign,
        ledger.counts(engine, campaign.id),
        ledger.problems(engine, campaign.id),
        ledger.edition_counts(engine, campaign.id),
    )


def archive(settings: Settings) -> list[ledger.SentIssue]:
    """The issues the public archive lists."""
    with database(settings).connect() as conn:
        return ledger.sent_issues(conn)


def web_version(settings: Settings, item: ledger.SentIssue, language: str | None = None) -> str:
    """The HTML of an archived issue's public web version (language: one of its
    translated editions), rendered from the file its campaign was sent from."""
    from newsletter.render.versions import public_version

    return public_version(load_edition(item.path, language), settings).html
