"""Reconciliation of a mailbox's day against the ledger and the helpdesk, end to end: a real Maildir,
the real ingest flow, the reference helpdesk over HTTP, the Prefect test harness."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from blocks.ledger import Ledger
from blocks.maildir import MaildirMailbox
from mailservice import runtime
from mailservice.cli_audit import audit_frames
from mailservice.config import load_config
from tests.support.mail import deliver, message

pytestmark = pytest.mark.flow
BOGOTA = ZoneInfo("America/Bogota")


@pytest.fixture
def flows(prefect_harness, helpdesk_token):
    from flows.ingest_mailbox import ingest_mailbox
    from flows.reconcile_day import reconcile_day

    def run(config_path: Path, which: str = "reconcile", **params):
        runtime.use_config(load_config(config_path))
        try:
            flow = reconcile_day if which == "reconcile" else ingest_mailbox
            state = flow(mailbox="soporte", return_state=True, **params)
        finally:
            runtime.use_config(None)
        assert state.is_completed(), state.message
        return state.result()

    return run


def deliver_already_marked(maildir: Path, raw: bytes) -> str:
    """Mail a person (or another client) read and flagged processed before the service saw it."""
    name = deliver(maildir, raw)
    letter = MaildirMailbox(path=str(maildir)).keyword_letter()
    os.replace(maildir / "new" / name, maildir / "cur" / f"{name}:2,S{letter}")
    return name


def test_reconcile_finds_and_processes_mail_behind_the_pipelines_back_and_reports_the_rest(
    flows, helpdesk, make_config, maildir
):
    today = datetime.now(BOGOTA).date()
    for i in range(3):
        deliver(maildir, message(subject=f"Caso normal {i}"))
    reply = deliver(maildir, message(subject="RE: Caso normal 0"))
    config = make_config(helpdesk.url)
    assert flows(config, "ingest")["created"] == 3

    clean = flows(config, day=today)
    assert (clean["status"], clean["in_mailbox"], clean["missing"], clean["gone"]) == ("ok", 4, 0, 0)
    assert clean["unknown_requests"] == 0 and clean["requests_checked"] == 3

    # Behind the pipeline's back: one message arrives already flagged processed (a scheduled run skips
    # it), an agent deletes a request in the helpdesk, and someone removes the reply from the mailbox.
    deliver_already_marked(maildir, message(subject="Llegó marcado como leído"))
    deleted = helpdesk.requests()[0]
    helpdesk.delete_request(deleted["id"])
    os.remove(next((maildir / "cur").glob(f"{reply}*")))
    assert flows(config, "ingest")["seen"] == 0  # the normal poll does not see the flagged message

    result = flows(config, day=today)
    assert result["status"] == "discrepancies"
    assert (result["in_mailbox"], result["missing"], result["processed"]) == (4, 1, 1)
    assert (result["gone"], result["unknown_requests"]) == (1, 1)
    # The flagged message got its request; the deleted one is reported, never silently recreated.
    expected = {"Caso normal 0", "Caso normal 1", "Caso normal 2", "Llegó marcado como leído"} - {deleted["title"]}
    assert sorted(r["title"] for r in helpdesk.requests()) == sorted(expected)

    ledger = Ledger(load_config(config).ledger)
    try:
        [_, last] = ledger.reconciliation_rows("soporte")
        findings = {f["finding"]: f for f in last["details"]["findings"]}
        assert findings["no_outcome"]["note"].startswith("now created #")
        assert findings["message_gone"]["outcome"] == "rejected"
        assert findings["request_unknown"]["request_number"] == deleted["number"]
        _, summary = audit_frames(ledger, "soporte", today, today)
    finally:
        ledger.dispose()
    [row] = summary.to_dict("records")
    assert (row["arrived"], row["in_mailbox"], row["reconcile_status"]) == (5, 4, "discrepancies")

    from prefect.artifacts import Artifact

    report = Artifact.get("reconcile-soporte")
    assert "discrepancies" in report.data and "request_unknown" in report.data and "Cordial saludo" not in report.data
    table = Artifact.get("reconcile-soporte-findings")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert sorted(r["finding"] for r in rows) == ["message_gone", "no_outcome", "request_unknown"]

    again = flows(config, day=today)
    assert (again["missing"], again["processed"], again["unknown_requests"]) == (0, 0, 1)
