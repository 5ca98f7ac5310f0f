"""``mailservice quarantine``: list, replay and export the mail kept whole (R19).

    mailservice quarantine list CONFIG [--mailbox M] [--format table|json]
    mailservice quarantine replay CONFIG ID... | --all --mailbox M
    mailservice quarantine export CONFIG ID --out FILE.eml

Kept mail never expires. A replay runs the pipeline's own parse → validate → clean → load on the
kept bytes; it never creates a second request (see ``mailservice.quarantine``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mailservice.cli_audit import ConfigArg, fail, load_settings

quarantine_app = typer.Typer(
    help="Mail kept whole because it could not become a request: list, replay, export. Nothing expires.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COLUMNS = ("id", "mailbox", "key", "reason", "age", "size", "outcome", "replays", "last_replay")


def _open_ledger(config: Path):
    settings = load_settings(config)
    from blocks.ledger import Ledger

    return settings, Ledger(settings.ledger)


@quarantine_app.command("list")
def list_command(
    config: ConfigArg,
    mailbox: Annotated[str | None, typer.Option("--mailbox", "-m", help="Only this mailbox")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json (one object per line)")] = "table",
) -> None:
    """Kept messages with id, mailbox, key, reason, age, size, current outcome and replays."""
    from mailservice.quarantine import list_kept

    if fmt not in ("table", "json"):
        fail(f"--format {fmt!r} is not one of table, json")
    _settings, ledger = _open_ledger(config)
    try:
        rows = list_kept(ledger, mailbox)
    finally:
        ledger.dispose()
    if fmt == "json":
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no kept messages" + (f" for mailbox {mailbox!r}" if mailbox else ""))
        return
    table = [[str(row[c]) if row[c] is not None else "-" for c in COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(COLUMNS)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip())
    for line in table:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


@quarantine_app.command("replay")
def replay_command(
    config: ConfigArg,
    ids: Annotated[list[int] | None, typer.Argument(help="Ids from `quarantine list`")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every kept message of --mailbox that has no request")] = False,
    mailbox: Annotated[str | None, typer.Option("--mailbox", "-m", help="With --all: the mailbox")] = None,
) -> None:
    """Run kept messages through parse → validate → clean → load again. Never creates a request twice.

    One JSON line per message: id, mailbox, key, outcome, reason, request_number. Exit 1 if any failed.
    """
    from mailservice import runtime
    from mailservice.config import ConfigError
    from mailservice.quarantine import ids_to_replay, replay

    if bool(ids) == all_:
        fail("give either kept message ids or --all --mailbox NAME")
    if all_ and not mailbox:
        fail("--all needs --mailbox NAME (replays are done one mailbox at a time on purpose)")
    settings, ledger = _open_ledger(config)
    try:
        try:
            if mailbox:
                settings.mailbox(mailbox)
            helpdesk = runtime.helpdesk_block(settings.helpdesk)
        except ConfigError as exc:
            fail(f"{config}: {exc}")
        wanted = ids_to_replay(ledger, mailbox) if all_ else list(ids or [])
        if not wanted:
            typer.echo(f"nothing to replay for mailbox {mailbox!r}", err=True)
            return
        try:
            results = replay(settings, ledger, helpdesk, wanted, log=lambda m: typer.echo(m, err=True))
        except Exception as exc:  # e.g. the helpdesk token is wrong: nothing is lost, say what happened
            fail(f"replay stopped: {type(exc).__name__}: {exc}", code=1)
            return
    finally:
        ledger.dispose()
    for result in results:
        typer.echo(
            json.dumps(
                {"id": result.raw_id, "mailbox": result.mailbox, "key": result.message_key,
                 "outcome": result.outcome, "reason": result.reason, "request_number": result.request_number},
                ensure_ascii=False,
            )
        )
    if any(r.outcome in ("failed", "error") for r in results):
        raise typer.Exit(1)


@quarantine_app.command("export")
def export_command(
    config: ConfigArg,
    raw_id: Annotated[int, typer.Argument(metavar="ID", help="Id from `quarantine list`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write, e.g. message.eml")],
) -> None:
    """Write a kept message's bytes, exactly as read from the mailbox, to an .eml file."""
    from mailservice.quarantine import export

    _settings, ledger = _open_ledger(config)
    try:
        raw = export(ledger, raw_id)
    finally:
        ledger.dispose()
    if raw is None:
        fail(f"no kept message with id {raw_id} (see `mailservice quarantine list {config}`)")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    typer.echo(f"{len(raw)} bytes written to {out}", err=True)
