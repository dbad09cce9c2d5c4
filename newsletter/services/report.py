"""A campaign's report: how it went, as a self-contained HTML page (charts drawn as SVG
with pygal, no script or font fetched when it is opened) and the same figures as JSON."""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter.errors import NewsletterError
from newsletter.files import write_atomically
from newsletter.mailbox.tables import events
from newsletter.sending import ledger
from newsletter.sending.tables import deliveries
from newsletter.services import database
from newsletter.settings import Settings

OUTCOMES = ("sent", "deferred", "failed")
RETURNED = ("bounce", "soft-bounce", "complaint", "unsubscribe")
BUCKETS = 24


@dataclass(frozen=True)
class Written:
    html: Path
    json: Path


def figures(settings: Settings, campaign_id: int) -> dict[str, Any]:
    """Everything the report shows, as plain data."""
    engine = database(settings)
    campaign = ledger.get_campaign(engine, campaign_id)
    with engine.connect() as conn:
        times = conn.execute(
            sa.select(deliveries.c.status, deliveries.c.updated_at).where(
                deliveries.c.campaign_id == campaign_id
            )
        ).all()
        came_back: dict[str, int] = dict(
            conn.execute(
                sa.select(events.c.kind, sa.func.count())
                .where(events.c.campaign_id == campaign_id)
                .group_by(events.c.kind)
            ).all()
        )
    editions = ledger.edition_counts(engine, campaign_id)
    return {
        "campaign": {
            "id": campaign.id,
            "issue": campaign.issue,
            "subject": campaign.subject,
            "segment": campaign.segment,
            "state": campaign.state,
            "created_at": campaign.created_at.isoformat(),
            "content_hash": campaign.content_hash,
            "git_commit": campaign.git_commit,
        },
        "recipients": campaign.recipients,
        "counts": ledger.counts(engine, campaign_id),
        "segments": {campaign.segment: campaign.recipients},
        "editions": {str(language or "-"): states for language, states in editions.items()},
        "timeline": _timeline(list(times), campaign.created_at),
        "came_back": {kind: int(came_back.get(kind, 0)) for kind in RETURNED},
        "failures": [
            {
                "email": p.email,
                "status": p.status,
                "code": p.code,
                "reply": p.reply,
                "attempts": p.attempts,
            }
            for p in ledger.problems(engine, campaign_id, limit=200)
        ],
    }


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _timeline(rows: list[Any], start: dt.datetime) -> list[dict[str, Any]]:
    """Cumulative sent, deferred and failed deliveries, by when each reached its state,
    in up to BUCKETS steps from the campaign's start to its last change."""
    done = [(status, _utc(at)) for status, at in rows if status in OUTCOMES and at is not None]
    if not done:
        return []
    first = min(_utc(start), *(at for _, at in done))
    last = max(at for _, at in done)
    step = max((last - first) / BUCKETS, dt.timedelta(seconds=1))
    points: list[dict[str, Any]] = [
        {"at": first.isoformat(timespec="seconds"), **dict.fromkeys(OUTCOMES, 0)}
    ]
    for n in range(1, BUCKETS + 1):
        until = first + step * n
        point: dict[str, Any] = {"at": until.isoformat(timespec="seconds")}
        for outcome in OUTCOMES:
            point[outcome] = sum(1 for status, at in done if status == outcome and at <= until)
        points.append(point)
        if until >= last:
            break
    return points


def _chart(kind: str, title: str, labels: list[str], series: dict[str, list[int]]) -> str:
    import pygal
    from pygal.style import Style

    style = Style(
        background="#ffffff",
        plot_background="#ffffff",
        foreground="#1f2937",
        foreground_strong="#1f2937",
        foreground_subtle="#4b5563",
        colors=("#0b5cad", "#d97706", "#b91c1c", "#7c4dab", "#1f8a70"),
        font_family="'Helvetica Neue', Helvetica, Arial, sans-serif",
    )
    chart_type = {"line": pygal.Line, "bar": pygal.StackedBar}[kind]
    chart = chart_type(
        js=[],  # nothing is fetched when the report is opened
        style=style,
        width=760,
        height=320,
        title=title,
        x_label_rotation=30 if kind == "line" else 0,
        show_dots=False,
        fill=False,
        disable_xml_declaration=True,
        legend_at_bottom=True,
    )
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    return str(chart.render(is_unicode=True))


def render_html(data: dict[str, Any]) -> str:
    e = html.escape
    c = data["campaign"]
    timeline = data["timeline"]
    charts = []
    if timeline:
        labels = [p["at"][11:16] for p in timeline]
        charts.append(
            _chart(
                "line",
                "Deliveries over time (cumulative)",
                labels,
                {o: [p[o] for p in timeline] for o in OUTCOMES},
            )
        )
    editions = data["editions"]
    charts.append(
        _chart(
            "bar",
            "Outcome by edition",
            list(editions),
            {o: [editions[ed].get(o, 0) for ed in editions] for o in (*OUTCOMES, "skipped")},
        )
    )
    charts.append(
        _chart(
            "bar",
            "What came back",
            [k for k in RETURNED],
            {"reports": [data["came_back"][k] for k in RETURNED]},
        )
    )
    counts = data["counts"]
    rows = "".join(
        f"<tr><td>{e(f['email'] or '(erased)')}</td><td>{e(f['status'])}</td>"
        f"<td>{e(str(f['code'] or ''))}</td><td>{e(f['reply'] or '')}</td>"
        f"<td>{f['attempts']}</td></tr>"
        for f in data["failures"]
    )
    summary = " · ".join(f"{counts.get(k, 0)} {k}" for k in (*OUTCOMES, "skipped", "pending"))
    segments = ", ".join(f"{e(name)}: {n}" for name, n in data["segments"].items())
    per_edition = ", ".join(f"{e(ed)}: {sum(states.values())}" for ed, states in editions.items())
    head = "<tr><th>Address</th><th>State</th><th>Code</th><th>Reply</th><th>Attempts</th></tr>"
    failures = (
        f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>" if rows else "<p>None.</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Campaign {c["id"]}: {e(c["subject"])}</title>
<style>
body {{ margin: 0; font: 15px/1.5 'Helvetica Neue', Helvetica, Arial, sans-serif; color: #1f2937;
  background: #eef1f5; }}
main {{ max-width: 820px; margin: 24px auto; background: #fff; border-radius: 10px;
  padding: 24px 30px; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 17px; margin: 28px 0 8px; }}
.muted {{ color: #4b5563; }} figure {{ margin: 16px 0; }} svg {{ max-width: 100%; height: auto; }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
th, td {{ text-align: left; padding: 6px 8px; border-bottom: 1px solid #d5dbe3;
  vertical-align: top; }}
</style></head>
<body><main>
<h1>Campaign {c["id"]}: {e(c["subject"])}</h1>
<p class="muted">{e(c["issue"])} · segment {e(c["segment"])} · {e(c["state"])} · made
{e(c["created_at"][:16].replace("T", " "))} UTC · content {e(c["content_hash"][:12])}</p>
<p><strong>{data["recipients"]} recipients:</strong> {summary}.<br>
Per segment: {segments}. Per edition: {per_edition}.</p>
{"".join(f"<figure>{chart}</figure>" for chart in charts)}
<h2>Failures and deferrals</h2>
{failures}
</main></body></html>
"""


def write(settings: Settings, campaign_id: int, folder: Path) -> Written:
    """Write campaign-ID.html and campaign-ID.json into folder."""
    data = figures(settings, campaign_id)
    target = Written(
        folder / f"campaign-{campaign_id}.html", folder / f"campaign-{campaign_id}.json"
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(target.html, render_html(data).encode("utf-8"))
        write_atomically(target.json, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        raise NewsletterError(f"cannot write the report into {folder}: {exc.strerror}") from None
    return target
