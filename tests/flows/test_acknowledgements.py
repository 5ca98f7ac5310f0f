"""Acknowledgements end to end (R12, issue 5): Maildir → flow → reference helpdesk, answers sent over
STARTTLS + AUTH to a real aiosmtpd, or through the local Gmail API. One per created request, none for
robots, unknown senders or reruns, and an SMTP outage never costs a request or a second ack."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from blocks.ack_store import AckStore
from blocks.ledger import Ledger
from mailservice import runtime
from mailservice.config import load_config
from tests.support.mail import deliver, message
from tests.support.smtp import smtp_server

pytestmark = pytest.mark.flow


@pytest.fixture
def smtp(tmp_path):
    with smtp_server(tmp_path / "smtp", users={"soporte@helppeople.test": "smtp-secret"}) as server:
        yield server


@pytest.fixture
def run(prefect_harness, helpdesk_token, monkeypatch):
    from flows.ingest_mailbox import ingest_mailbox

    monkeypatch.setenv("SMTP_PASSWORD", "smtp-secret")

    def go(config_path, day=None):
        runtime.use_config(load_config(config_path))
        try:
            return ingest_mailbox(mailbox="soporte", day=day)
        finally:
            runtime.use_config(None)

    return go


def notify(smtp, **extra) -> dict:
    return {
        "mode": "email",
        "from": "soporte@helppeople.test",
        "from_name": "Mesa de Servicio",
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "starttls": True, "ca_file": str(smtp.cafile),
                 "username": "soporte@helppeople.test", "password_env": "SMTP_PASSWORD"},
        **extra,
    }


@contextmanager
def ack_rows(config_path):
    ledger = Ledger(load_config(config_path).ledger)
    try:
        yield AckStore(ledger.engine).rows("soporte")
    finally:
        ledger.dispose()


def test_one_threaded_acknowledgement_per_created_request_and_none_for_the_rest(
    run, helpdesk, make_config, maildir, smtp
):
    deliver(maildir, message(subject="La impresora no imprime", Message_ID="<orig-1@cliente.test>"))
    deliver(maildir, message(subject="RE: La impresora", In_Reply_To="<x@y>"))
    deliver(maildir, message(subject="Respuesta automática: fuera", Auto_Submitted="auto-replied"))
    deliver(maildir, message(sender="MAILER-DAEMON@mx.cliente.test", subject="Undelivered Mail"))
    deliver(maildir, message(sender="extrano@otro.test", subject="Hola"))
    deliver(maildir, message(sender="soporte@helppeople.test", subject="Enviado por nosotros"))
    config = make_config(helpdesk.url, notify=notify(smtp))
    summary = run(config)
    assert summary["created"] == 1
    assert summary["acknowledgements"] == {"sent": 1, "failed": 0, "skipped": 0, "retried": 0}
    [ack] = smtp.messages()
    [request] = helpdesk.requests()
    assert ack["To"] == "ana.quinonez@cliente.test"
    assert ack["In-Reply-To"] == "<orig-1@cliente.test>" and "<orig-1@cliente.test>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied" and ack["X-Auto-Response-Suppress"] == "All"
    assert ack["Subject"].startswith("Re:") and str(request["number"]) in ack["Subject"]
    body = ack.get_content()
    assert str(request["number"]) in body and "La impresora no imprime" in body
    assert "número" in body  # accents survive the Spanish template

    # A rerun of the day and another poll answer nobody twice.
    from datetime import datetime
    from zoneinfo import ZoneInfo

    run(config, day=datetime.now(ZoneInfo("America/Bogota")).date())
    run(config)
    assert len(smtp.messages()) == 1


def test_rate_limit_per_sender_per_hour(run, helpdesk, make_config, maildir, smtp):
    for i in range(4):
        deliver(maildir, message(subject=f"Caso {i}"))
    summary = run(make_config(helpdesk.url, notify=notify(smtp, max_per_sender_per_hour=2)))
    assert summary["created"] == 4
    assert len(smtp.messages()) == 2 and summary["acknowledgements"]["skipped"] == 2


def test_unknown_sender_notice_is_off_by_default_and_once_a_day_when_on(
    run, helpdesk, make_config, maildir, smtp
):
    deliver(maildir, message(sender="extrano@otro.test", subject="Hola"))
    deliver(maildir, message(sender="extrano@otro.test", subject="Hola otra vez"))
    run(make_config(helpdesk.url, notify=notify(smtp, notify_unknown_senders=True)))
    [notice] = smtp.messages()
    assert notice["To"] == "extrano@otro.test" and notice["Auto-Submitted"] == "auto-replied"
    assert helpdesk.requests() == []


def test_smtp_down_keeps_the_request_and_sends_the_ack_next_run_exactly_once(
    run, helpdesk, make_config, maildir, smtp
):
    deliver(maildir, message(subject="Servidor caído"))
    config = make_config(helpdesk.url, notify=notify(smtp))
    smtp.stop()
    summary = run(config)
    assert summary["created"] == 1 and summary["acknowledgements"]["failed"] == 1
    assert len(helpdesk.requests()) == 1
    with ack_rows(config) as rows:
        assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 1)]
    smtp.start()
    again = run(config)
    assert again["created"] == 0 and again["acknowledgements"]["retried"] == 1
    run(config)
    assert len(smtp.messages()) == 1 and len(helpdesk.requests()) == 1
    with ack_rows(config) as rows:
        assert [r["status"] for r in rows] == ["sent"]


def test_helpdesk_mode_sets_the_notify_flag_and_sends_nothing_itself(run, helpdesk, make_config, maildir, smtp):
    deliver(maildir, message(subject="Con aviso del helpdesk"))
    run(make_config(helpdesk.url, notify={"mode": "helpdesk"}))
    [request] = helpdesk.requests()
    assert request["notify_requester"] is True
    assert smtp.messages() == []
