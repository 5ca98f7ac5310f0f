"""The ingest flow with ``kind: gmail``: the real flow (Prefect harness), the real Gmail client
library against the local Gmail on loopback, and the real reference helpdesk.

Each message gets exactly one outcome, the processed label is added only after it is recorded,
and nothing is marked read, trashed or deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from blocks import gmail as gmail_module
from blocks.ledger import Ledger
from mailservice.config import load_config
from tasks import stages
from tests.support.gmail_server import run_fake_gmail
from tests.support.mail import message

pytestmark = pytest.mark.flow

ADDRESS = "soporte@helppeople.test"
SA_EMAIL = "ingest@helppeople-test.iam.gserviceaccount.com"
LABEL = "helppeople-ingested"
BOGOTA = ZoneInfo("America/Bogota")


@pytest.fixture
def gmail(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(gmail_module, "RETRY_BACKOFF_SECONDS", 0.005)  # the client's retries, without the wait
    with run_fake_gmail() as fake:
        yield fake


@pytest.fixture
def gmail_config(gmail, make_config, helpdesk, tmp_path):
    """A config whose mailbox 'soporte' is kind gmail with a service-account key file."""
    key_file = gmail.write_key_file(tmp_path / "service-account.json", SA_EMAIL)

    def build(**overrides) -> Path:
        keys = {"kind": "gmail", "path": None, "service_account_file": str(key_file),
                "api_endpoint": gmail.api_endpoint}
        keys.update(overrides)
        return make_config(helpdesk.url, **keys)

    return build


def ledger_rows(config_path: Path) -> list[dict]:
    ledger = Ledger(load_config(config_path).ledger)
    try:
        return ledger.message_rows("soporte")
    finally:
        ledger.dispose()


def labelled(gmail, message_id: str) -> bool:
    return LABEL in gmail.label_names(ADDRESS, message_id)


def test_today_rerun_of_yesterday_and_new_mail_between_runs(run_flow, gmail, gmail_config, helpdesk):
    now = datetime.now(BOGOTA)
    yesterday = now - timedelta(days=1)
    old = gmail.deliver(ADDRESS, message(subject="De ayer"), yesterday.replace(hour=10))
    today = [gmail.deliver(ADDRESS, message(subject=f"De hoy {i}")) for i in range(3)]
    reply = gmail.deliver(ADDRESS, message(subject="RE: De hoy 0"))
    config = gmail_config(lookback_minutes=0)

    first = run_flow(config)
    assert (first["seen"], first["created"], first["rejected"]) == (4, 3, {"reply": 1})
    assert all(labelled(gmail, i) for i in [*today, reply])
    assert not labelled(gmail, old)  # yesterday's mail is untouched by today's run
    assert gmail.user_labels(ADDRESS) == [LABEL]
    # Read, labelled, never marked read, archived, trashed or deleted.
    assert all({"INBOX", "UNREAD"} <= gmail.label_names(ADDRESS, i) for i in [old, *today, reply])

    gmail.reset_calls()
    idle = run_flow(config)
    assert (idle["seen"], idle["created"]) == (0, 0)
    assert gmail.calls["messages.get"] == 0 and gmail.calls["messages.modify"] == 0  # an idle poll reads nothing

    new = gmail.deliver(ADDRESS, message(subject="Llegó después"))
    gmail.reset_calls()
    second = run_flow(config)
    assert (second["seen"], second["created"]) == (1, 1)
    assert gmail.calls["messages.get:raw"] == 1 and labelled(gmail, new)

    past = run_flow(config, day=yesterday.date())
    assert (past["mode"], past["seen"], past["created"]) == ("rerun", 1, 1)
    assert labelled(gmail, old)
    again = run_flow(config, day=yesterday.date())
    assert (again["seen"], again["created"], again["already_created"]) == (1, 0, 1)
    titles = sorted(r["title"] for r in helpdesk.requests())
    assert titles == ["De ayer", "De hoy 0", "De hoy 1", "De hoy 2", "Llegó después"]


def test_message_over_the_size_limit_still_gets_a_request(run_flow, gmail, gmail_config, helpdesk):
    big = EmailMessage()
    big["From"] = "ana.quinonez@cliente.test"
    big["To"] = ADDRESS
    big["Subject"] = "Envío el respaldo completo"
    big["Message-ID"] = "<respaldo.0001@cliente.test>"
    big.set_content("Adjunto el respaldo de la base de datos.")
    big.add_attachment(b"\x01" * 1_200_000, maintype="application", subtype="zip", filename="respaldo.zip")
    big_id = gmail.deliver(ADDRESS, big.as_bytes())
    config = gmail_config(attachment_max_mb=0.25)  # whole messages over 0.25 × 1.4 + 1 MB are not downloaded

    summary = run_flow(config)
    assert summary["created"] == 1 and gmail.calls["messages.get:raw"] == 0
    [request] = helpdesk.requests()
    assert request["title"] == "Envío el respaldo completo"
    assert "no se descargó completo" in request["description"] and not request["attachments"]
    assert labelled(gmail, big_id)
    assert run_flow(config, day=datetime.now(BOGOTA).date())["already_created"] == 1  # same key on a rerun


def test_helpdesk_down_leaves_mail_unlabelled_until_the_next_run(run_flow, gmail, gmail_config, helpdesk):
    config = gmail_config()
    run_flow(config)  # caches the user matrix; the helpdesk then fails on every call
    ids = [gmail.deliver(ADDRESS, message(subject=f"Pendiente {i}")) for i in range(2)]
    helpdesk.set_faults(rate_500=1.0)
    state = run_flow(config, expect_failure=True)
    assert "helpdesk was unavailable" in state.message
    assert [r["outcome"] for r in ledger_rows(config)] == ["failed", "failed"]
    assert not any(labelled(gmail, i) for i in ids)
    assert gmail.calls["messages.modify"] == 0 and gmail.user_labels(ADDRESS) == []
    helpdesk.clear_faults()
    summary = run_flow(config)
    assert (summary["seen"], summary["created"]) == (2, 2)
    assert all(labelled(gmail, i) for i in ids) and len(helpdesk.requests()) == 2


def test_gmail_429_and_500_are_retried(run_flow, gmail, gmail_config, helpdesk):
    for i in range(3):
        gmail.deliver(ADDRESS, message(subject=f"Con fallas {i}"))
    gmail.fail_next(2, 429)
    gmail.fail_next(2, 500)
    gmail.fail_next(1, 403)  # userRateLimitExceeded
    summary = run_flow(gmail_config())
    assert (summary["created"], summary["failed"]) == (3, 0)
    assert not gmail.faults and len(helpdesk.requests()) == 3


def test_revoked_key_fails_the_run_naming_the_mailbox(run_flow, gmail, gmail_config, helpdesk, monkeypatch):
    monkeypatch.setattr(stages, "list_messages", stages.list_messages.with_options(retry_delay_seconds=0))
    msg_id = gmail.deliver(ADDRESS, message())
    config = gmail_config()
    gmail.revoke_key(SA_EMAIL)
    state = run_flow(config, expect_failure=True)
    text = state.message or ""
    assert "Gmail mailbox 'soporte'" in text and "invalid_grant" in text and "service-account key" in text
    assert "PRIVATE KEY" not in text
    assert helpdesk.requests() == [] and not labelled(gmail, msg_id)
    assert gmail.calls["messages.list"] == 0


def test_user_refresh_token(run_flow, gmail, gmail_config, helpdesk, monkeypatch):
    token = gmail.add_refresh_token(ADDRESS, "cliente-oauth.apps.googleusercontent.com", "secreto-del-cliente")
    monkeypatch.setenv("GMAIL_CLIENT_SECRET", "secreto-del-cliente")
    monkeypatch.setenv("GMAIL_REFRESH_TOKEN", token)
    msg_id = gmail.deliver(ADDRESS, message(subject="Con token de usuario"))
    config = gmail_config(service_account_file=None, user_oauth={
        "client_id": "cliente-oauth.apps.googleusercontent.com",
        "client_secret_env": "GMAIL_CLIENT_SECRET",
        "refresh_token_env": "GMAIL_REFRESH_TOKEN",
        "token_uri": gmail.token_uri,
    })
    summary = run_flow(config)
    assert summary["created"] == 1 and labelled(gmail, msg_id)
    assert [r["title"] for r in helpdesk.requests()] == ["Con token de usuario"]


def test_acknowledgements_go_out_through_the_gmail_api_once(run_flow, gmail, gmail_config):
    """R12 on a Gmail mailbox without smtp: the answer is messages.send with raw in the body."""
    from email import policy
    from email.parser import BytesParser

    gmail.deliver(ADDRESS, message(subject="Sin acceso al ERP", Message_ID="<erp-1@cliente.test>"))
    gmail.deliver(ADDRESS, message(subject="RE: Sin acceso al ERP", In_Reply_To="<erp-1@cliente.test>"))
    config = gmail_config(notify={"mode": "email", "from": ADDRESS})
    summary = run_flow(config)
    assert summary["created"] == 1 and summary["acknowledgements"]["sent"] == 1
    [raw] = gmail.sent[ADDRESS]
    ack = BytesParser(policy=policy.default).parsebytes(raw)
    assert ack["To"] == "ana.quinonez@cliente.test" and ack["In-Reply-To"] == "<erp-1@cliente.test>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert gmail.calls["messages.send"] == 1
    run_flow(config)
    assert gmail.calls["messages.send"] == 1  # never twice
