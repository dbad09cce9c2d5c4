"""Use cases on campaigns: plan a live send (checks first), send it, send a test copy,
retry deferred messages, list and show campaigns."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from newsletter import tokens
from newsletter.audience import audience_of
from newsletter.audience.addresses import normalize_address
from newsletter.audience.segments import count
from newsletter.checks import ChecksFailed, check_issue
from newsletter.errors import NewsletterError
from newsletter.issue import load_issue
from newsletter.render import render_issue
from newsletter.sending import ledger
from newsletter.sending.message import Addressee, campaign_template, unsubscribe_mailto
from newsletter.sending.runner import Plan, Pool, Summary, run_live, transport_name
from newsletter.sending.transport import Outcome, Transport, make_transport
from newsletter.services import database
from newsletter.settings import Settings


def send_test(path: Path | str, settings: Settings, to: list[str] | None = None) -> Summary:
    """Send the issue to the test recipients, through the same building and transport
    as a live send, with [TEST] before the subject. Nothing goes into the ledger."""
    issue_file = load_issue(path)
    rendered = render_issue(issue_file, settings)
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
            futures.append(
                (email, pool.submit(functools.partial(template.build, to_), email, f"{stamp}-{n}"))
            )
        for email, future in futures:
            outcome = future.result() or Outcome("deferred", None, "not sent")
            summary.outcomes.append((email, outcome))
            setattr(summary, outcome.kind, getattr(summary, outcome.kind) + 1)
    finally:
        pool.close()
    return summary


def plan(path: Path | str, settings: Settings, *, new_campaign: bool = False) -> Plan:
    """Validate, render, run the checks and resolve everything a live send needs; change
    nothing. An issue with check errors is refused here."""
    issue_file = load_issue(path)
    rendered = render_issue(issue_file, settings)
    tokens.signing_key(settings)
    report = check_issue(issue_file, rendered, settings)
    if report.errors:
        raise ChecksFailed(report, issue_file.path)
    engine = database(settings)
    named = audience_of(issue_file, settings)
    existing = ledger.latest_campaign(engine, rendered.slug, named.name)
    if existing is not None and not new_campaign and existing.content_hash != rendered.content_hash:
        raise NewsletterError(
            f"{issue_file.path} changed since campaign {existing.id} started (content hash "
            f"{existing.content_hash[:12]}, now {rendered.content_hash[:12]}); sending it would "
            "mix two versions. Pass --new-campaign to start a new campaign"
        )
    via = transport_name(settings)
    if existing is not None and not new_campaign:
        remaining = ledger.counts(engine, existing.id)
        return Plan(issue_file.path, rendered, named, existing.recipients, existing, remaining, via)
    return Plan(issue_file.path, rendered, named, count(engine, named), None, None, via)


def connect(plan: Plan, settings: Settings) -> Transport:
    """The transport, checked: authentication and TLS problems stop a send here, before
    any ledger row changes."""
    transport = make_transport(settings, plan.rendered.slug)
    transport.open()
    return transport


def send(
    plan: Plan,
    settings: Settings,
    *,
    transport: Transport | None = None,
    progress: Callable[[Summary], None] | None = None,
) -> tuple[ledger.Campaign, Summary]:
    """Create or resume the planned campaign and send until nothing is due."""
    return run_live(
        plan,
        settings,
        database(settings),
        transport or connect(plan, settings),
        progress=progress,
    )


def retry(
    campaign_id: int, settings: Settings, progress: Callable[[Summary], None] | None = None
) -> tuple[ledger.Campaign, Summary]:
    """Make the campaign's deferred rows due now and send them."""
    engine = database(settings)
    campaign = ledger.get_campaign(engine, campaign_id)
    planned = plan(campaign.issue_path, settings)
    if planned.campaign is None or planned.campaign.id != campaign.id:
        raise NewsletterError(
            f"campaign {campaign_id} is not the latest campaign of {campaign.issue_path}"
        )
    ledger.retry_now(engine, campaign_id)
    return send(planned, settings, progress=progress)


@dataclass(frozen=True)
class CampaignReport:
    campaign: ledger.Campaign
    counts: dict[str, int]
    problems: list[ledger.Problem]


def overview(settings: Settings) -> list[tuple[ledger.Campaign, dict[str, int]]]:
    engine = database(settings)
    return [(c, ledger.counts(engine, c.id)) for c in ledger.all_campaigns(engine)]


def show(settings: Settings, campaign_id: int) -> CampaignReport:
    engine = database(settings)
    campaign = ledger.get_campaign(engine, campaign_id)
    return CampaignReport(
        campaign, ledger.counts(engine, campaign.id), ledger.problems(engine, campaign.id)
    )


def archive(settings: Settings) -> list[ledger.SentIssue]:
    """The issues the public archive lists."""
    with database(settings).connect() as conn:
        return ledger.sent_issues(conn)


def web_version(settings: Settings, item: ledger.SentIssue) -> tuple[str, str]:
    """(content hash, HTML) of an archived issue's public web version, rendered from the
    file its campaign was sent from."""
    from newsletter.render.versions import public_version

    rendered = render_issue(load_issue(item.path), settings)
    return rendered.content_hash, public_version(rendered, settings).html
