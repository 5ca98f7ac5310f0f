"""The ``mailservice`` command: apply a config to Prefect, run a mailbox now, serve the reference helpdesk."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from mailservice.cli_audit import audit_command
from mailservice.cli_helpdesk import helpdesk_app
from mailservice.cli_inspect import inspect_command
from mailservice.cli_quarantine import quarantine_app
from mailservice.cli_report import reconcile_command, report_command
from mailservice.config import ConfigError, ServiceConfig, load_config

app = typer.Typer(
    help="helppeople Mail Service: every support e-mail becomes a helpdesk request, exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(helpdesk_app, name="helpdesk")
app.add_typer(quarantine_app, name="quarantine")
app.command(name="inspect")(inspect_command)
app.command(name="audit")(audit_command)
app.command(name="report")(report_command)
app.command(name="reconcile")(reconcile_command)

ConfigArg = Annotated[Path, typer.Argument(help="The service config file (YAML); see examples/config.yaml")]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load(path: Path) -> ServiceConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers quiet


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"--day {value!r} is not a date; use YYYY-MM-DD, e.g. --day {date.today().isoformat()}")
    return None


@app.command()
def run(
    config: ConfigArg,
    mailbox: Annotated[str, typer.Option("--mailbox", "-m", help="Name of the mailbox in the config")],
    day: Annotated[
        str | None, typer.Option(help="Rerun this whole day (YYYY-MM-DD) instead of today's new mail")
    ] = None,
) -> None:
    """Run one ingest of MAILBOX now, in this process. The last line of output is the run's totals as JSON."""
    settings = _load(config)
    the_day = _parse_day(day)
    from mailservice import runtime

    try:
        settings.mailbox(mailbox)
        runtime.runtime_from_config(settings, mailbox)  # fail before Prefect starts: token, paths, kind
    except ConfigError as exc:
        _fail(f"{config}: {exc}")
    runtime.use_config(settings)

    from blocks.ledger import Ledger
    from flows.ingest_mailbox import ingest_mailbox

    state = ingest_mailbox(mailbox=mailbox, day=the_day, return_state=True)
    flow_run_id = str(state.state_details.flow_run_id)
    ledger = Ledger(settings.ledger)
    row = ledger.run(flow_run_id)
    ledger.dispose()
    summary = dict(row["summary"]) if row and row.get("summary") else {"mailbox": mailbox, "day": day}
    if state.is_failed() or state.is_crashed():
        summary["error"] = state.message or "the flow run failed"
        typer.echo(f"error: run of mailbox {mailbox!r} failed: {summary['error']}", err=True)
        typer.echo(json.dumps(summary, ensure_ascii=False))
        raise typer.Exit(1)
    typer.echo(json.dumps(summary, ensure_ascii=False))


@app.command(name="refresh-users")
def refresh_users(config: ConfigArg) -> None:
    """Refresh the user-matrix dataset from the helpdesk now (ingest also does it when it is stale)."""
    settings = _load(config)
    from mailservice import runtime

    runtime.use_config(settings)
    from flows.refresh_user_matrix import refresh_user_matrix

    result = refresh_user_matrix()
    typer.echo(json.dumps(result, ensure_ascii=False))


@app.command()
def apply(
    config: ConfigArg,
    work_pool: Annotated[str, typer.Option(help="Process work pool the deployments run on")] = "mailservice",
) -> None:
    """Create or update the Prefect blocks and one scheduled deployment per mailbox. Idempotent."""
    settings = _load(config)
    from mailservice.apply import apply_config

    try:
        report = apply_config(settings, Path(config).resolve(), work_pool=work_pool)
    except ConfigError as exc:
        _fail(f"{config}: {exc}")
    for line in report:
        typer.echo(line)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
