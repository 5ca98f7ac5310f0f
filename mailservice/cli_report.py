"""``mailservice report`` and ``mailservice reconcile``: the nightly flows, run now in this process.

Like ``mailservice run``, each is a real Prefect flow run (visible in the UI when ``PREFECT_API_URL``
points at a server) reading the config file instead of the blocks. The last line of output is the
flow's result as JSON; exit 1 if the flow run failed.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mailservice.cli_audit import ConfigArg, fail, load_settings, parse_day


def _finish(state, what: str) -> None:
    if state.is_completed():
        typer.echo(json.dumps(state.result(), ensure_ascii=False, default=str))
        return
    typer.echo(f"error: {what} failed: {state.message}", err=True)
    raise typer.Exit(1)


def report_command(
    config: ConfigArg,
    day: Annotated[str | None, typer.Option(help="Day to report (YYYY-MM-DD); default yesterday")] = None,
    mailbox: Annotated[str | None, typer.Option("--mailbox", "-m", help="Only this mailbox")] = None,
    reports_dir: Annotated[str | None, typer.Option(help="Folder for the HTML (default <data_dir>/reports)")] = None,
) -> None:
    """Write the day's HTML report with charts and publish its totals and link as Prefect artifacts."""
    settings = load_settings(config)
    the_day = parse_day(day, "--day")
    from mailservice import runtime
    from mailservice.config import ConfigError

    if mailbox:
        try:
            settings.mailbox(mailbox)
        except ConfigError as exc:
            fail(f"{config}: {exc}")
    runtime.use_config(settings)
    from flows.daily_report import daily_report

    state = daily_report(day=the_day, mailbox=mailbox, reports_dir=reports_dir, return_state=True)
    _finish(state, "the daily report")


def reconcile_command(
    config: ConfigArg,
    mailbox: Annotated[str, typer.Option("--mailbox", "-m", help="Name of the mailbox in the config")],
    day: Annotated[str | None, typer.Option(help="Day to reconcile (YYYY-MM-DD); default yesterday")] = None,
) -> None:
    """Compare the mailbox's day with the ledger and the helpdesk; process mail with no outcome."""
    settings = load_settings(config)
    the_day = parse_day(day, "--day")
    from mailservice import runtime
    from mailservice.config import ConfigError

    try:
        settings.mailbox(mailbox)
        runtime.runtime_from_config(settings, mailbox)  # fail before Prefect starts: token, paths, kind
    except ConfigError as exc:
        fail(f"{config}: {exc}")
    runtime.use_config(settings)
    from flows.reconcile_day import reconcile_day

    state = reconcile_day(mailbox=mailbox, day=the_day, return_state=True)
    _finish(state, f"the reconciliation of {mailbox!r}")
