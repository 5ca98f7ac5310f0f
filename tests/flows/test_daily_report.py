"""The daily report from a real, mixed day: the ingest flow on real mail, then the report flow; the
HTML page holds the four expected charts with the day's data, and the artifacts link to it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailservice import runtime
from mailservice.config import load_config
from mailservice.report import CHART_TITLES, CHARTS, embedded_specs
from tests.support.mail import deliver, message

pytestmark = pytest.mark.flow
BOGOTA = ZoneInfo("America/Bogota")


def _data(spec: dict) -> list[dict]:
    """The rows behind a chart (Altair puts them in top-level datasets; layers share them)."""
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


def test_daily_report_files_and_artifacts(prefect_harness, helpdesk, make_config, maildir, helpdesk_token, tmp_path):
    from prefect.artifacts import Artifact

    from flows.daily_report import daily_report
    from flows.ingest_mailbox import ingest_mailbox

    for i in range(4):
        deliver(maildir, message(subject=f"Solicitud {i}"))
    deliver(maildir, message(subject="RE: Solicitud 0", In_Reply_To="<x@cliente.test>"))
    deliver(maildir, message(sender="nadie@otro.test", subject="Hola"))
    deliver(maildir, b"")
    config = make_config(helpdesk.url)
    runtime.use_config(load_config(config))
    try:
        run = ingest_mailbox(mailbox="soporte")
        today = datetime.now(BOGOTA).date()
        result = daily_report(day=today, reports_dir=str(tmp_path / "reports"))
    finally:
        runtime.use_config(None)

    # The audit behind the report adds up to the run's own totals.
    totals = result["totals"]
    assert (totals["arrived"], totals["created"], totals["quarantined"]) == (7, 4, 1)
    assert totals["refused"] == run["rejected"] == {"reply": 1, "unknown_sender": 1}
    assert totals["arrived"] == totals["created"] + totals["refused_total"] + totals["failed"] \
        + totals["quarantined"] + totals["pending"]

    page_path = tmp_path / "reports" / f"{today}.html"
    assert result["path"] == str(page_path.resolve())
    page = page_path.read_text(encoding="utf-8")
    assert len(page) > 2000 and "vegaEmbed" in page
    specs = embedded_specs(page)
    assert list(specs) == list(CHARTS)
    for name, spec in specs.items():
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        assert CHART_TITLES[name] in json.dumps(spec, ensure_ascii=False)
    volume = _data(specs["volume_per_hour"])
    assert sum(r["messages"] for r in volume) == 7
    assert {r["outcome"] for r in volume} == {"created", "rejected", "quarantined"}
    mix = {r["outcome"]: r["messages"] for r in _data(specs["outcome_mix"])}
    assert mix == {"created": 4, "rejected": 2, "quarantined": 1}
    assert {r["reason"] for r in _data(specs["refusal_reasons"])} == {"reply", "unknown_sender"}
    latency = _data(specs["latency"])
    assert sum(r.get("requests", 0) for r in latency) == 4
    assert {r["statistic"] for r in latency if "statistic" in r} == {"p50", "p95"}

    link = Artifact.get("daily-report-link")
    assert page_path.resolve().as_uri() in str(link.data)
    markdown = Artifact.get("daily-report")
    assert "| soporte | 7 | 4 | 2 | 0 | 1 | 0 |" in markdown.data and "`reply` 1" in markdown.data


def test_data_docs_render_the_validate_stages_real_results(run_flow, helpdesk, make_config, maildir, tmp_path):
    """issue 6 §3: Great Expectations Data Docs built to the report's folder from the runs' results."""
    from flows.daily_report import daily_report

    deliver(maildir, message(subject="Para los Data Docs"))
    deliver(maildir, message(subject="RE: respuesta", In_Reply_To="<x@y>"))
    config = make_config(helpdesk.url)
    run_flow(config)
    day = datetime.now(ZoneInfo("America/Bogota")).date()
    runtime.use_config(load_config(config))
    try:
        result = daily_report(day=day, reports_dir=str(tmp_path / "reports"))
    finally:
        runtime.use_config(None)
    index = Path(result["data_docs"])
    assert index.parent == tmp_path / "reports" / f"{day}-data-docs"
    pages = sorted(index.parent.glob("soporte-*.html"))
    page = pages[0].read_text(encoding="utf-8") if len(pages) == 1 else ""
    assert "compiled by Great Expectations" in page and "sender_known" in page and "addressed_to_mailbox" in page
    assert pages[0].name in index.read_text(encoding="utf-8")
