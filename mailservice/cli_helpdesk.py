"""``mailservice helpdesk …``: run the reference helpdesk for demos and local development."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailservice.helpdesk_server import serve

helpdesk_app = typer.Typer(
    help="The reference helpdesk: a local server implementing docs/helpdesk-api.yaml.",
    no_args_is_help=True,
)


@helpdesk_app.command("serve")
def serve_command(
    db: Annotated[Path, typer.Option("--db", help="SQLite file for users and requests (created if missing).")],
    users: Annotated[
        Path,
        typer.Option("--users", exists=True, dir_okay=False, readable=True, help="User matrix CSV: email,name[,id]."),
    ],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="HELPDESK_TOKEN",
            show_default=False,
            show_envvar=True,
            help="Bearer token clients must send. Prefer the env var: a --token value shows in `ps`.",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind; keep loopback unless a token is set.")] = (
        "127.0.0.1"
    ),
    max_attachment_mb: Annotated[
        float, typer.Option("--max-attachment-mb", min=0, help="Largest attachment accepted, in MB (413 above).")
    ] = 25,
    fault_429: Annotated[
        float, typer.Option("--fault-429", min=0, max=1, help="Share of API calls answered 429 (0..1).")
    ] = 0.0,
    fault_500: Annotated[
        float, typer.Option("--fault-500", min=0, max=1, help="Share of API calls answered 500 (0..1).")
    ] = 0.0,
    latency_ms: Annotated[int, typer.Option("--latency-ms", min=0, help="Delay added to every API call.")] = 0,
) -> None:
    """Serve the reference helpdesk until Ctrl-C; data stays in --db across restarts."""
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"Warning: no token and listening on {host}: anyone who can reach this port can create requests. "
            "Set HELPDESK_TOKEN.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    faults = {"rate_429": fault_429, "rate_500": fault_500, "latency_ms": latency_ms}
    auth = "bearer token required" if token else "no authentication"
    typer.echo(f"Reference helpdesk on http://{host}:{port} (db {db}, users {users}, {auth}). Ctrl-C stops it.")
    try:
        serve(db, port, users, token=token, host=host, max_attachment_mb=max_attachment_mb, faults=faults)
    except ValueError as exc:  # a malformed users CSV: the message names the file and line
        typer.secho(f"Cannot start the reference helpdesk: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
