"""``mailservice audit CONFIG``: the ledger as data for the data team (R18).

Default output is the per-(mailbox, day) summary; ``--messages`` gives one row per message (no
bodies). ``--format json`` writes one JSON object per line; ``--format parquet`` needs ``--out``.
The columns are documented in ``docs/audit-schema.md``.

Also home of the small helpers the operator commands share (config loading, exits, dates).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mailservice.config import ConfigError, ServiceConfig, load_config

if TYPE_CHECKING:  # pandas and pyarrow load only when the command runs: the CLI starts fast
    import pandas as pd

FORMATS = ("table", "csv", "parquet", "json")

ConfigArg = Annotated[Path, typer.Argument(help="The service config file (YAML); see examples/config.yaml")]


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_settings(path: Path) -> ServiceConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. {option} {date.today().isoformat()}")
    return None


def audit_frames(
    ledger, mailbox: str | None = None, since: date | None = None, until: date | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(messages, summary) for the mailbox (or all) and the days [since, until] from an open Ledger."""
    from mailservice import audit

    rows = ledger.message_rows_between(mailbox, since, until)
    messages = audit.message_frame(rows, ledger.kept_raw_index(mailbox), ledger.replay_rows(mailbox))
    summary = audit.summary_frame(messages, ledger.reconciliation_rows(mailbox, since, until))
    return messages, summary


def audit_command(
    config: ConfigArg,
    mailbox: Annotated[str | None, typer.Option("--mailbox", "-m", help="Only this mailbox")] = None,
    from_day: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (mailbox's local day)")] = None,
    to_day: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD, inclusive")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | parquet | json (one object per line)")] = (
        "table"
    ),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout")] = None,
    messages: Annotated[bool, typer.Option("--messages", help="One row per message instead of the summary")] = False,
) -> None:
    """The audit data: per mailbox and day, arrived = created + refused + failed + quarantined + pending."""
    settings = load_settings(config)
    since, until = parse_day(from_day, "--from"), parse_day(to_day, "--to")
    if since and until and since > until:
        fail(f"--from {since} is after --to {until}")
    if fmt not in FORMATS:
        fail(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "parquet" and out is None:
        fail("--format parquet writes a binary file: give --out PATH.parquet")
    if mailbox and mailbox not in {b.name for b in settings.mailboxes}:
        typer.echo(f"note: {mailbox!r} is not a mailbox of {config}; showing what the ledger has for it", err=True)

    from blocks.ledger import Ledger
    from mailservice import audit

    ledger = Ledger(settings.ledger)
    try:
        message_rows, summary = audit_frames(ledger, mailbox, since, until)
    finally:
        ledger.dispose()
    frame = message_rows if messages else summary
    rendered = audit.render(frame, fmt)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(rendered, bytes):
            out.write_bytes(rendered)
        else:
            out.write_text(rendered, encoding="utf-8")
        typer.echo(f"{len(frame)} {'message' if messages else 'summary'} row(s) written to {out}", err=True)
        return
    typer.echo(rendered, nl=False)


def build_app() -> typer.Typer:
    """A one-command app (for tests and ``python -m mailservice.cli_audit``)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(name="audit")(audit_command)
    return app


if __name__ == "__main__":  # pragma: no cover
    build_app()()
