"""`make demo`: seed the demo mailbox, start the reference helpdesk, ingest, show what happened.

Run it twice: the second run finds nothing new and creates no request (exactly once).
`make demo-reset` forgets the demo's state so the next run starts from scratch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "demo" / "config.yaml"
VAR = ROOT / "var" / "demo"
MAILBOX = "soporte-demo"
PORT = 8765
SMTP_PORT = 2525
BIN = Path(sys.executable).parent


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_helpdesk(env: dict) -> subprocess.Popen:
    if _port_open(PORT):
        sys.exit(f"error: port {PORT} on 127.0.0.1 is taken; stop what listens there (the demo helpdesk uses it)")
    log = (VAR / "helpdesk.log").open("ab")
    server = subprocess.Popen(
        [str(BIN / "mailservice"), "helpdesk", "serve", "--db", str(VAR / "helpdesk.db"), "--port", str(PORT),
         "--users", str(ROOT / "demo" / "users.csv")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: the reference helpdesk exited at start; see {VAR / 'helpdesk.log'}")
        if _port_open(PORT):
            return server
        time.sleep(0.1)
    server.terminate()
    sys.exit("error: the reference helpdesk did not start within 30 s")


class _AckSink:
    """The demo's SMTP server: keeps the acknowledgements the service sends, sends nothing on."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


def start_smtp_sink():
    from aiosmtpd.controller import Controller

    if _port_open(SMTP_PORT):
        sys.exit(f"error: port {SMTP_PORT} on 127.0.0.1 is taken; the demo's SMTP sink uses it")
    controller = Controller(_AckSink(), hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    return controller


def show_acknowledgements(sink: _AckSink) -> None:
    from email import policy
    from email.parser import BytesParser

    print(f"\nAcknowledgements sent through the local SMTP sink ({len(sink.messages)}):")
    for raw in sink.messages:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        print(f"  to {msg['To']}: {msg['Subject']}")


def show_audit_and_report(env: dict, day: str | None) -> None:
    """What the data team and the operators get: the day's audit summary and the HTML report."""
    print("\nAudit summary (`mailservice audit demo/config.yaml`):")
    subprocess.run([str(BIN / "mailservice"), "audit", str(CONFIG)], env=env, check=False)
    if day:
        report = subprocess.run(
            [str(BIN / "mailservice"), "report", str(CONFIG), "--day", day], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False,
        )
        lines = [line for line in report.stdout.splitlines() if line.strip()]
        try:
            result = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            result = {}
        where = result.get("path") or result
        print(f"\nDaily report (`mailservice report demo/config.yaml --day {day}`): {where}")


def show_outcomes() -> None:
    from blocks.ledger import Ledger
    from mailservice.config import load_config

    ledger = Ledger(load_config(CONFIG).ledger)
    rows = ledger.message_rows(MAILBOX)
    ledger.dispose()
    print(f"\nOutcome per message ({len(rows)} in the ledger):")
    for row in rows:
        what = f"request #{row['request_number']}" if row["outcome"] == "created" else row["outcome"]
        reason = f" ({row['reason']})" if row["reason"] else ""
        subject = (row["subject"] or "(no subject)").replace("\n", " ")[:60]
        print(f"  {what + reason:<38} {row['sender'] or '(no sender)':<34} {subject}")


def show_requests(token: str) -> None:
    listing = requests.get(f"http://127.0.0.1:{PORT}/requests", headers={"Authorization": f"Bearer {token}"},
                           timeout=10).json()
    print(f"\nRequests in the helpdesk ({len(listing)}), also at http://127.0.0.1:{PORT}/ while it runs:")
    for item in listing:
        files = ", ".join(f"{a['name']} ({a['size']} B)" for a in item.get("attachments", [])) or "no attachments"
        print(f"  #{item['number']} {item['title'][:70]!r} — {item['requester_email']} — {files}")


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    from mailservice.demo_seed import seed_maildir

    delivered = seed_maildir(ROOT / "demo" / "messages", VAR / "mailbox")
    print(f"demo mailbox {VAR / 'mailbox'}: {delivered} message(s) delivered"
          + ("" if delivered else " (already seeded; `make demo-reset` starts over)"))

    env = dict(os.environ)
    env.setdefault("HELPDESK_TOKEN", "demo-token")
    if "PREFECT_API_URL" not in env:
        env.setdefault("PREFECT_HOME", str(ROOT / "var" / "prefect"))
        env.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")

    server = start_helpdesk(env)
    smtp = start_smtp_sink()
    try:
        print(f"reference helpdesk on http://127.0.0.1:{PORT}; running the ingest flow (Prefect)…", flush=True)
        run = subprocess.run(
            [str(BIN / "mailservice"), "run", str(CONFIG), "--mailbox", MAILBOX], env=env,
            stdout=subprocess.PIPE, text=True,
        )
        lines = [line for line in run.stdout.splitlines() if line.strip()]
        summary = lines[-1] if lines else "{}"
        show_outcomes()
        if run.returncode == 0:
            show_requests(env["HELPDESK_TOKEN"])
        show_acknowledgements(smtp.handler)
        show_audit_and_report(env, json.loads(summary).get("day"))
        print("\nRun totals (the last line of `mailservice run`):")
        print(json.dumps(json.loads(summary), ensure_ascii=False))
        return run.returncode
    finally:
        smtp.stop()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
