"""The daily report flow: a day's intake as a markdown artifact and an HTML page with charts.

For every mailbox (or one), it reads the day from the ledger through the audit dataset, writes
``<reports_dir>/<day>.html`` (``<day>-<mailbox>.html`` for one mailbox) and publishes:

* ``daily-report`` — markdown: totals per mailbox and overall, refusals by reason;
* ``daily-report-link`` — a link artifact to the HTML page.

``reports_dir`` defaults to ``$MAILSERVICE_REPORTS_DIR`` or ``<data_dir>/reports``;
``reports_url`` (or ``$MAILSERVICE_REPORTS_URL``), when the folder is served over HTTP, is the base
of the link; otherwise the link is the file's ``file://`` URI.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from blocks.ledger import Ledger
from mailservice import report
from mailservice.cli_audit import audit_frames
from mailservice.config import ConfigError, ServiceConfig, parse_config
from mailservice.data_docs import build_data_docs
from mailservice.runtime import SETTINGS_BLOCK, active_config

REPORTS_DIR_ENV = "MAILSERVICE_REPORTS_DIR"
REPORTS_URL_ENV = "MAILSERVICE_REPORTS_URL"


def _run_name() -> str:
    params = flow_run.parameters
    return f"{params.get('mailbox') or 'all'}-{params.get('day') or 'yesterday'}"


def service_config() -> tuple[ServiceConfig, str]:
    """(config, ledger URL) from the config file in use, else from the settings block of ``apply``."""
    config = active_config()
    if config is not None:
        return config, config.ledger
    from blocks.settings import ServiceSettings

    try:
        settings = ServiceSettings.load(SETTINGS_BLOCK)
    except ValueError:
        raise ConfigError(
            "no config: run with a config file, or run `mailservice apply CONFIG` so deployments can read it"
        ) from None
    return parse_config(settings.config, Path("/prefect-block/mailservice")), settings.ledger_url.get_secret_value()


def reports_folder(config: ServiceConfig, reports_dir: str | None) -> Path:
    return Path(reports_dir or os.environ.get(REPORTS_DIR_ENV) or Path(config.data_dir) / "reports")


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(
    ledger_url: str, day: date, mailbox: str | None, tz_by_mailbox: dict[str, str], path: Path
) -> tuple[str, dict]:
    """Read the day's audit data, write the HTML page; returns (totals markdown, totals)."""
    ledger = Ledger(ledger_url)
    try:
        messages, summary = audit_frames(ledger, mailbox, day, day)
    finally:
        ledger.dispose()
    page = report.report_html(day, summary, messages, tz_by_mailbox, datetime.now(UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    from mailservice.audit import totals

    return report.totals_markdown(day, summary), totals(summary)


@flow(
    name="daily-report",
    flow_run_name=_run_name,
    description="A day's intake: totals as a markdown artifact and an HTML report with charts.",
)
def daily_report(
    day: date | None = None,
    mailbox: str | None = None,
    reports_dir: str | None = None,
    reports_url: str | None = None,
) -> dict:
    """Report ``day`` (default: yesterday in the first mailbox's time zone) for every mailbox or one."""
    config, ledger_url = service_config()
    if mailbox:
        config.mailbox(mailbox)  # a clear error for an unknown name
    tz_by_mailbox = {box.name: box.timezone for box in config.mailboxes}
    first = config.mailbox(mailbox) if mailbox else config.mailboxes[0]
    the_day = day or (datetime.now(UTC).astimezone(first.tz).date() - timedelta(days=1))
    folder = reports_folder(config, reports_dir)
    path = (folder / (f"{the_day}-{mailbox}.html" if mailbox else f"{the_day}.html")).resolve()
    markdown, totals = write_report(ledger_url, the_day, mailbox, tz_by_mailbox, path)

    base = reports_url or os.environ.get(REPORTS_URL_ENV)
    link = f"{base.rstrip('/')}/{path.name}" if base else path.as_uri()
    create_markdown_artifact(key="daily-report", markdown=markdown + f"\n\n[HTML report with charts]({link})",
                             description=f"Mail intake totals for {the_day}")
    create_link_artifact(key="daily-report-link", link=link, link_text=f"Mail intake report {the_day}",
                         description=f"HTML report with charts for {the_day} ({mailbox or 'all mailboxes'})")
    docs = build_data_docs(Path(config.data_dir), the_day, folder, mailbox)
    if docs is not None:
        create_link_artifact(key="daily-data-docs", link=docs.resolve().as_uri(),
                             link_text=f"Great Expectations Data Docs {the_day}",
                             description="The validate stage's real results, one page per chunk")
    get_run_logger().info("daily report for %s written to %s", the_day, path)
    return {"day": the_day.isoformat(), "path": str(path), "link": link, "totals": totals,
            "data_docs": str(docs) if docs else None}
