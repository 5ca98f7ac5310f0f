"""The daily report: a day's audit data as totals (markdown) and an HTML page of charts.

Pure: the audit's message and summary frames in, text out; no database, no Prefect. Charts are
Altair (Vega-Lite) specs, aggregated here first so the page stays small whatever the volume:

* ``volume_per_hour`` — messages per hour of arrival (mailbox's local time), stacked by outcome;
* ``outcome_mix`` — each mailbox's messages by outcome;
* ``refusal_reasons`` — refused messages per reason and mailbox;
* ``latency`` — minutes from arrival to request, a histogram with the median and p95 marked.

The page loads Vega, Vega-Lite and Vega-Embed from the jsDelivr CDN (the versions Altair pins),
like Great Expectations' own Data Docs; the specs themselves are embedded in the file, so a page
is complete on its own and the charts can also be rebuilt from it.
"""

from __future__ import annotations

import html
import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import altair as alt
import numpy as np
import pandas as pd

from mailservice import audit

CHARTS = ("volume_per_hour", "outcome_mix", "refusal_reasons", "latency")
CHART_TITLES = {
    "volume_per_hour": "Volume per hour",
    "outcome_mix": "Outcome mix per mailbox",
    "refusal_reasons": "Refusal reasons",
    "latency": "Arrival → request latency (minutes)",
}
OUTCOME_COLORS = {
    "created": "#2e7d32",
    "rejected": "#ef6c00",
    "failed": "#c62828",
    "quarantined": "#6a1b9a",
    "pending": "#9e9e9e",
}
_OUTCOME_SCALE = alt.Scale(domain=list(OUTCOME_COLORS), range=list(OUTCOME_COLORS.values()))


# -- chart data ------------------------------------------------------------------------------------
def local_hours(messages: pd.DataFrame, tz_by_mailbox: dict[str, str]) -> pd.Series:
    """The hour of arrival in each message's mailbox time zone (UTC for unknown mailboxes)."""
    hours = []
    for mailbox, received in zip(messages["mailbox"], messages["received_at"], strict=True):
        tz = ZoneInfo(tz_by_mailbox.get(mailbox, "UTC"))
        hours.append(pd.Timestamp(received).tz_convert(tz).hour)
    return pd.Series(hours, index=messages.index, dtype="int64")


def volume_frame(messages: pd.DataFrame, tz_by_mailbox: dict[str, str]) -> pd.DataFrame:
    if messages.empty:
        return pd.DataFrame(columns=["mailbox", "hour", "outcome", "messages"])
    frame = messages.assign(hour=local_hours(messages, tz_by_mailbox))
    grouped = frame.groupby(["mailbox", "hour", "outcome"]).size().rename("messages").reset_index()
    return grouped.sort_values(["mailbox", "hour", "outcome"]).reset_index(drop=True)


def outcome_frame(messages: pd.DataFrame) -> pd.DataFrame:
    if messages.empty:
        return pd.DataFrame(columns=["mailbox", "outcome", "messages"])
    return messages.groupby(["mailbox", "outcome"]).size().rename("messages").reset_index()


def reasons_frame(messages: pd.DataFrame) -> pd.DataFrame:
    refused = messages[messages["outcome"] == "rejected"] if not messages.empty else messages
    if refused.empty:
        return pd.DataFrame(columns=["mailbox", "reason", "messages"])
    refused = refused.assign(reason=refused["reason"].fillna("unknown"))
    grouped = refused.groupby(["mailbox", "reason"]).size().rename("messages").reset_index()
    return grouped.sort_values("messages", ascending=False).reset_index(drop=True)


def latency_frame(messages: pd.DataFrame, bins: int = 20) -> pd.DataFrame:
    """A histogram of latency minutes (created messages), pre-binned: bin_start, bin_end, requests."""
    values = messages.loc[messages["outcome"] == "created", "latency_min"].dropna() if not messages.empty else []
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        return pd.DataFrame(columns=["bin_start", "bin_end", "requests"])
    top = max(float(values.max()), 1.0)
    counts, edges = np.histogram(values, bins=bins, range=(0.0, top))
    return pd.DataFrame({"bin_start": edges[:-1].round(3), "bin_end": edges[1:].round(3), "requests": counts})


# -- charts ----------------------------------------------------------------------------------------
def build_charts(messages: pd.DataFrame, tz_by_mailbox: dict[str, str]) -> dict[str, alt.TopLevelMixin]:
    volume = volume_frame(messages, tz_by_mailbox)
    charts: dict[str, alt.TopLevelMixin] = {
        "volume_per_hour": alt.Chart(volume, title=CHART_TITLES["volume_per_hour"])
        .mark_bar()
        .encode(
            x=alt.X("hour:O", title="hour of arrival (mailbox's local time)", scale=alt.Scale(domain=list(range(24)))),
            y=alt.Y("sum(messages):Q", title="messages"),
            color=alt.Color("outcome:N", scale=_OUTCOME_SCALE),
            tooltip=["mailbox:N", "hour:O", "outcome:N", "messages:Q"],
        )
        .properties(width=640, height=220),
        "outcome_mix": alt.Chart(outcome_frame(messages), title=CHART_TITLES["outcome_mix"])
        .mark_bar()
        .encode(
            y=alt.Y("mailbox:N", title=None),
            x=alt.X("sum(messages):Q", title="messages"),
            color=alt.Color("outcome:N", scale=_OUTCOME_SCALE),
            tooltip=["mailbox:N", "outcome:N", "messages:Q"],
        )
        .properties(width=640),
        "refusal_reasons": alt.Chart(reasons_frame(messages), title=CHART_TITLES["refusal_reasons"])
        .mark_bar()
        .encode(
            y=alt.Y("reason:N", sort="-x", title=None),
            x=alt.X("sum(messages):Q", title="messages refused"),
            color=alt.Color("mailbox:N"),
            tooltip=["mailbox:N", "reason:N", "messages:Q"],
        )
        .properties(width=640),
    }
    latency = latency_frame(messages)
    bars = (
        alt.Chart(latency)
        .mark_bar()
        .encode(
            x=alt.X("bin_start:Q", bin="binned", title="minutes from arrival to request"),
            x2="bin_end:Q",
            y=alt.Y("requests:Q", title="requests"),
            tooltip=["bin_start:Q", "bin_end:Q", "requests:Q"],
        )
    )
    created = messages.loc[messages["outcome"] == "created", "latency_min"].dropna() if not messages.empty else []
    marks = pd.DataFrame(
        [{"statistic": name, "minutes": float(np.percentile(created, q))} for name, q in (("p50", 50), ("p95", 95))]
        if len(created)
        else [],
        columns=["statistic", "minutes"],
    )
    rules = alt.Chart(marks).mark_rule(strokeDash=[4, 3]).encode(
        x="minutes:Q", color=alt.Color("statistic:N", scale=alt.Scale(range=["#1565c0", "#ad1457"])),
        tooltip=["statistic:N", "minutes:Q"],
    )
    charts["latency"] = alt.layer(bars, rules, title=CHART_TITLES["latency"]).properties(width=640, height=220)
    return charts


def chart_specs(messages: pd.DataFrame, tz_by_mailbox: dict[str, str]) -> dict[str, dict]:
    """Vega-Lite specs (JSON-ready dicts) of every chart, by name."""
    return {name: chart.to_dict() for name, chart in build_charts(messages, tz_by_mailbox).items()}


# -- text ------------------------------------------------------------------------------------------
def totals_markdown(day: date, summary: pd.DataFrame, report_link: str | None = None) -> str:
    """The day's totals per mailbox and overall, as a markdown artifact."""
    total = audit.totals(summary)
    lines = [f"# Mail intake — {day}", ""]
    if summary.empty:
        lines.append("No messages in the ledger for this day.")
    else:
        lines += [
            "| mailbox | arrived | created | refused | failed | quarantined | pending | p50 min | p95 min |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in audit.json_records(summary):
            lines.append(
                f"| {row['mailbox']} | {row['arrived']} | {row['created']} | {row['refused_total']} | "
                f"{row['failed']} | {row['quarantined']} | {row['pending']} | "
                f"{_num(row['latency_p50_min'])} | {_num(row['latency_p95_min'])} |"
            )
        lines.append(
            f"| **all** | **{total['arrived']}** | **{total['created']}** | **{total['refused_total']}** | "
            f"**{total['failed']}** | **{total['quarantined']}** | **{total['pending']}** | | |"
        )
        if total["refused"]:
            lines += ["", "Refused by reason: " + ", ".join(f"`{k}` {v}" for k, v in total["refused"].items())]
    if report_link:
        lines += ["", f"[HTML report with charts]({report_link})"]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<script src="https://cdn.jsdelivr.net/npm/vega@{vega}"></script>
<script src="https://cdn.jsdelivr.net/npm/vega-lite@{vegalite}"></script>
<script src="https://cdn.jsdelivr.net/npm/vega-embed@{vegaembed}"></script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
section {{ margin: 2rem 0; }}
.note {{ color: #666; font-size: .9rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="note">Generated {generated}. Source: the ledger (one row per message). Days are each mailbox's local day.</p>
<h2>Totals</h2>
{totals}
{refused}
{charts}
<noscript><p>The charts need JavaScript (Vega-Embed from cdn.jsdelivr.net); their specs are in this file.</p></noscript>
<script>
document.querySelectorAll("script[type='application/json'][data-chart]").forEach(function (node) {{
  vegaEmbed("#" + node.dataset.chart, JSON.parse(node.textContent), {{actions: false}});
}});
</script>
</body>
</html>
"""


def _json_script(name: str, spec: dict) -> str:
    text = json.dumps(spec, ensure_ascii=False).replace("</", "<\\/")
    return f'<script type="application/json" data-chart="{name}">{text}</script>'


def _totals_table(summary: pd.DataFrame) -> str:
    if summary.empty:
        return "<p>No messages in the ledger for this day.</p>"
    head = ["mailbox", "arrived", "created", "refused", "failed", "quarantined", "pending", "p50 min", "p95 min",
            "in mailbox"]
    rows = []
    for row in audit.json_records(summary):
        cells = [row["mailbox"], row["arrived"], row["created"], row["refused_total"], row["failed"],
                 row["quarantined"], row["pending"], _num(row["latency_p50_min"]), _num(row["latency_p95_min"]),
                 "–" if row["in_mailbox"] is None else row["in_mailbox"]]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    return f"<table>{header}{''.join(rows)}</table>"


def report_html(
    day: date,
    summary: pd.DataFrame,
    messages: pd.DataFrame,
    tz_by_mailbox: dict[str, str],
    generated_at: datetime,
    extra_links: dict[str, str] | None = None,
) -> str:
    """The whole HTML page for one day: totals table and the four charts."""
    specs = chart_specs(messages, tz_by_mailbox)
    total = audit.totals(summary)
    refused = ""
    if total["refused"]:
        items = "".join(f"<li><code>{html.escape(k)}</code>: {v}</li>" for k, v in total["refused"].items())
        refused = f"<h3>Refused by reason</h3><ul>{items}</ul>"
    sections = []
    for name in CHARTS:
        sections.append(f'<section><h2>{html.escape(CHART_TITLES[name])}</h2><div id="{name}"></div>'
                        f"{_json_script(name, specs[name])}</section>")
    for text, href in (extra_links or {}).items():
        sections.append(f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>')
    return _PAGE.format(
        title=html.escape(f"helppeople Mail Service — {day}"),
        vega=alt.VEGA_VERSION,
        vegalite=alt.VEGALITE_VERSION,
        vegaembed=alt.VEGAEMBED_VERSION,
        generated=html.escape(generated_at.isoformat(timespec="seconds")),
        totals=_totals_table(summary),
        refused=refused,
        charts="\n".join(sections),
    )


def embedded_specs(page: str) -> dict[str, dict]:
    """The chart specs embedded in a report page, by chart name (for tests and re-use)."""
    import re

    found = {}
    for name, text in re.findall(r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', page, re.S):
        found[name] = json.loads(text.replace("<\\/", "</"))
    return found
