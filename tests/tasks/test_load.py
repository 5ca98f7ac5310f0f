"""The load stage against the real reference helpdesk, a real ledger and a real Maildir (no Prefect):
helpdesk answers mapped to outcomes (issue 5 §4) and the write-ahead order (R15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from blocks.helpdesk import HelpdeskApi, HelpdeskAuthError
from blocks.ledger import Ledger
from blocks.maildir import MaildirMailbox
from tasks import drafts, extract, load, user_matrix, validation
from tests.support.helpdesk import run_reference_helpdesk, write_users_csv
from tests.support.mail import deliver, message

NOW = datetime.now(UTC)


def with_attachment(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ana@cliente.test", "soporte@helppeople.test", "Adjunto el log"
    msg.set_content("Cordial saludo,\nadjunto el registro del error.")
    msg.add_attachment(b"x" * size, maintype="application", subtype="octet-stream", filename="registro.log")
    msg.add_attachment(b"%PDF-1.4 small", maintype="application", subtype="pdf", filename="nota.pdf")
    return msg.as_bytes()


def run_load(maildir, helpdesk_url, token, ledger_url, matrix_path, fetch_users):
    box = MaildirMailbox(path=str(maildir))
    refs = box.list_refs(NOW - timedelta(days=1), NOW + timedelta(days=1), include_processed=False)
    matrix, _ = user_matrix.current_matrix(matrix_path, timedelta(minutes=15), fetch_users)
    judged, _ = validation.judge_chunk(
        extract.extract_messages(box.fetch(refs)), matrix, "soporte@helppeople.test", validation.Limits()
    )
    results = drafts.clean_chunk(judged, drafts.CleanSettings())
    helpdesk = HelpdeskApi(url=helpdesk_url, token=token, max_retries=1, backoff_factor=0.01)
    ctx = load.LoadContext(
        mailbox="soporte", tz=ZoneInfo("UTC"), run_id="r1", ledger=Ledger(ledger_url), helpdesk=helpdesk,
        source=box, options=load.RequestOptions(),
        refresh_requester=user_matrix.refresher(matrix_path, helpdesk.list_users),
    )
    try:
        return load.load_chunk(ctx, results)
    finally:
        ctx.ledger.dispose()


def test_an_attachment_the_helpdesk_refuses_as_too_large_is_left_out_and_said(tmp_path, maildir):
    users = write_users_csv(tmp_path / "users.csv", [("ana@cliente.test", "Ana")])
    deliver(maildir, with_attachment(80_000))
    with run_reference_helpdesk(tmp_path / "hd.db", users, token="t", max_attachment_mb=0.05) as hd:
        api = HelpdeskApi(url=hd.url, token="t")
        outcome = run_load(maildir, hd.url, "t", f"sqlite:///{tmp_path}/l.db", tmp_path / "m.parquet", api.list_users)
        [request] = hd.requests()
    assert [d.outcome for d in outcome.decisions] == ["created"]
    assert [a["name"] for a in request["attachments"]] == ["nota.pdf"]
    assert "Adjunto omitido: registro.log" in request["description"]


def test_requester_unknown_to_the_helpdesk_refreshes_the_matrix_once_then_refuses(tmp_path, maildir):
    deliver(maildir, message())
    stale = [{"id": "u-1", "email": "ana.quinonez@cliente.test"}]  # the cached matrix still has Ana
    matrix_path = tmp_path / "m.parquet"
    user_matrix.current_matrix(matrix_path, timedelta(minutes=15), lambda: stale)
    with run_reference_helpdesk(tmp_path / "hd.db", write_users_csv(tmp_path / "none.csv", []), token="t") as hd:
        outcome = run_load(maildir, hd.url, "t", f"sqlite:///{tmp_path}/l.db", matrix_path, lambda: stale)
        assert hd.stats().get("GET /users") == 1  # refreshed once, not per attempt
        assert hd.requests() == []
    assert [(d.outcome, d.reason) for d in outcome.decisions] == [("rejected", "unknown_sender")]


def test_auth_refusal_marks_nothing(tmp_path, maildir):
    users = write_users_csv(tmp_path / "users.csv", [("ana.quinonez@cliente.test", "Ana")])
    deliver(maildir, message())
    deliver(maildir, message(subject="RE: algo"))
    matrix_path = tmp_path / "m.parquet"
    user_matrix.current_matrix(matrix_path, timedelta(minutes=15), lambda: [{"id": "u-1",
                                                                          "email": "ana.quinonez@cliente.test"}])
    with run_reference_helpdesk(tmp_path / "hd.db", users, token="right") as hd, pytest.raises(HelpdeskAuthError):
        run_load(maildir, hd.url, "wrong", f"sqlite:///{tmp_path}/l.db", matrix_path, list)
    assert len(list((maildir / "new").iterdir())) == 2  # neither the refused reply nor the other is marked
