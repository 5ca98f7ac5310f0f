"""The ingest flow with ``kind: imap`` end to end: real Dovecot IMAPS → Prefect flow → reference helpdesk.

The promise under test is the service's: every message gets exactly one outcome, a request is
never created twice (UIDVALIDITY resets, outages, reruns), mail is marked with the processed
keyword only after its outcome is recorded, ``\\Seen`` is never set by us, and a broken mailbox
fails its own run with a message a person can act on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from blocks.imap import ImapMailbox
from blocks.ledger import Ledger
from mailservice.config import load_config
from tasks import stages
from tests.support.imap_fixtures import CLIENT_SECRET_ENV, IMAP_PASSWORD_ENV, append, flags_of
from tests.support.mail import message

pytestmark = pytest.mark.flow

BOGOTA = ZoneInfo("America/Bogota")
KEYWORD = "$HelppeopleIngested"


@pytest.fixture
def fast_retries(monkeypatch):
    """Keep the tasks' retries but not their 2 s / 10 s pauses (a dead server is dead at once here)."""
    for name in ("list_messages", "extract_chunk"):
        monkeypatch.setattr(stages, name, getattr(stages, name).with_options(retry_delay_seconds=0))


@pytest.fixture
def run_flow(run_flow, fast_retries):
    """The shared flow runner, with the list/extract retries' delays at zero for IMAP failures."""
    return run_flow


@pytest.fixture
def imap_config(make_config, helpdesk, imap_password):
    """A ``kind: imap`` config for a server and user (password login unless overridden)."""

    def build(server, user: str, **overrides) -> Path:
        settings = {
            "kind": "imap", "path": None, "host": server.host, "port": server.port, "username": user,
            "password_env": IMAP_PASSWORD_ENV, "ca_file": str(server.cafile), "fetch_batch": 5,
        }
        settings.update(overrides)
        return make_config(helpdesk.url, **settings)

    return build


def ledger_rows(config_path: Path, mailbox: str = "soporte") -> list[dict]:
    ledger = Ledger(load_config(config_path).ledger)
    try:
        return ledger.message_rows(mailbox)
    finally:
        ledger.dispose()


def assert_exactly_once(helpdesk, expected: int) -> None:
    requests = helpdesk.requests()
    external = [r["external_id"] for r in requests]
    assert len(external) == len(set(external)) == expected, "a message became two requests, or none"


def now_minus(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def test_today_new_mail_rerun_of_yesterday_and_marks(run_flow, helpdesk, imap_config, dovecot, imap_user):
    """R3/R15/R17: today's window, yesterday untouched until its rerun, marks only after the outcome."""
    yesterday = (datetime.now(BOGOTA) - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    append(dovecot, imap_user, [message(subject="De ayer")], yesterday)
    append(dovecot, imap_user, [message(subject=f"Hoy {i}") for i in range(3)], now_minus(2))
    append(dovecot, imap_user, [message(sender="extrano@otro.test", subject="Hola")], now_minus(2))
    config = imap_config(dovecot, imap_user, lookback_minutes=0)

    first = run_flow(config)
    assert (first["seen"], first["created"], first["rejected"]) == (4, 3, {"unknown_sender": 1})
    flags = flags_of(dovecot, imap_user)
    assert sum(KEYWORD in f for f in flags.values()) == 4  # created and rejected alike: outcome recorded
    assert all("\\Seen" not in f for f in flags.values())  # we never read with a plain BODY[]
    assert {r["outcome"] for r in ledger_rows(config)} == {"created", "rejected"}
    assert all(r["marked_processed"] for r in ledger_rows(config))

    idle = run_flow(config)
    assert (idle["seen"], idle["created"]) == (0, 0)

    append(dovecot, imap_user, [message(subject="Entre corridas")], now_minus(1))
    between = run_flow(config)
    assert (between["seen"], between["created"]) == (1, 1)

    past = run_flow(config, day=yesterday.date())
    assert (past["mode"], past["seen"], past["created"]) == ("rerun", 1, 1)
    today = run_flow(config, day=datetime.now(BOGOTA).date())
    assert (today["seen"], today["created"], today["already_created"]) == (5, 0, 4)
    assert sorted(r["title"] for r in helpdesk.requests()) == ["De ayer", "Entre corridas", "Hoy 0", "Hoy 1", "Hoy 2"]
    assert_exactly_once(helpdesk, 5)
    assert all("\\Seen" not in f and KEYWORD in f for f in flags_of(dovecot, imap_user).values())


def test_helpdesk_down_leaves_the_mail_unmarked(run_flow, helpdesk, imap_config, dovecot, imap_user):
    """R15: no outcome recorded, no mark: the next run reads the mail again."""
    config = imap_config(dovecot, imap_user)
    run_flow(config)  # caches the user matrix; the helpdesk then fails every call
    append(dovecot, imap_user, [message(subject=f"Pendiente {i}") for i in range(2)], now_minus(2))
    helpdesk.set_faults(rate_500=1.0)
    run_flow(config, expect_failure=True)
    assert not any(KEYWORD in f for f in flags_of(dovecot, imap_user).values())
    helpdesk.clear_faults()
    assert run_flow(config)["created"] == 2
    assert all(KEYWORD in f for f in flags_of(dovecot, imap_user).values())


def test_uidvalidity_reset_still_gives_every_message_exactly_once(run_flow, helpdesk, imap_config, dovecot,
                                                                 imap_user):
    """The folder is rebuilt (new UIDVALIDITY, keywords lost): re-listed, deduplicated by message key."""
    folder = "Soporte"
    seed = dovecot.client(imap_user)
    seed.create_folder(folder)
    seed.logout()
    originals = [message(subject=f"Caso {i}") for i in range(3)]
    append(dovecot, imap_user, originals, now_minus(3), folder=folder)
    config = imap_config(dovecot, imap_user, folder=folder)
    assert run_flow(config)["created"] == 3

    rebuild = dovecot.client(imap_user)
    before = rebuild.select_folder(folder)[b"UIDVALIDITY"]
    rebuild.unselect_folder()
    rebuild.rename_folder(folder, "Soporte-anterior")
    rebuild.create_folder(folder)
    rebuild.logout()
    append(dovecot, imap_user, [message(subject="Nuevo tras el cambio")], now_minus(2), folder=folder)
    append(dovecot, imap_user, originals, now_minus(3), folder=folder)  # copied back without the keyword
    after = dovecot.client(imap_user)
    assert after.select_folder(folder)[b"UIDVALIDITY"] != before
    after.logout()

    summary = run_flow(config)
    assert (summary["seen"], summary["created"], summary["already_created"]) == (4, 1, 3)
    assert_exactly_once(helpdesk, 4)
    assert all(KEYWORD in f for f in flags_of(dovecot, imap_user, folder).values())
    assert run_flow(config)["seen"] == 0


def test_a_message_over_the_size_limit_still_gets_its_outcome(run_flow, helpdesk, imap_config, dovecot,
                                                             imap_user):
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "ana.quinonez@cliente.test"
    msg["To"] = "soporte@helppeople.test"
    msg["Subject"] = "Envío el respaldo completo"
    msg["Message-ID"] = "<respaldo-completo@cliente.test>"
    msg.set_content("Buenos días, adjunto el respaldo de la base de datos.")
    msg.add_attachment(bytes(range(256)) * 6000, maintype="application", subtype="zip", filename="respaldo.zip")
    append(dovecot, imap_user, [msg.as_bytes(), message(subject="Normal")], now_minus(2))
    # attachment_max_mb 0.25 → whole messages over 0.25 × 1.4 + 1 MB are not downloaded whole.
    config = imap_config(dovecot, imap_user, attachment_max_mb=0.25)

    summary = run_flow(config)
    assert (summary["seen"], summary["created"], summary["failed"], summary["quarantined"]) == (2, 2, 0, 0)
    [big] = [r for r in helpdesk.requests() if r["title"] == "Envío el respaldo completo"]
    assert "adjunto el respaldo de la base de datos" in big["description"]
    assert "no se descargó completo" in big["description"] and "respaldo.zip" in big["description"]
    rows = {r["message_id"]: r for r in ledger_rows(config)}
    assert rows["<respaldo-completo@cliente.test>"]["outcome"] == "created"
    assert all(KEYWORD in f for f in flags_of(dovecot, imap_user).values())
    assert run_flow(config, day=datetime.now(BOGOTA).date())["already_created"] == 2  # same key on a rerun


def test_server_stopped_in_the_middle_of_a_fetch_then_rerun(run_flow, helpdesk, imap_config, private_dovecot,
                                                            monkeypatch):
    """The server dies after the first wave; the run fails clearly; after a restart a rerun finishes."""
    server = private_dovecot()
    user = "caida@helppeople.test"
    append(server, user, [message(subject=f"Solicitud {i:02d}") for i in range(50)], now_minus(3))
    config = imap_config(server, user, chunk_size=10, fetch_batch=5)

    calls = []
    real_fetch_batch = ImapMailbox._fetch_batch

    def fetch_then_die(self, client, folder, batch):
        fetched = real_fetch_batch(self, client, folder, batch)
        calls.append(len(fetched))
        if len(calls) == 9:  # the first FETCH of the second wave (4 chunks × 2 batches came before)
            server.stop()
        return fetched

    monkeypatch.setattr(ImapMailbox, "_fetch_batch", fetch_then_die)
    state = run_flow(config, expect_failure=True)
    assert "'soporte'" in state.message and "connection refused" in state.message
    assert "secret" not in state.message
    done = ledger_rows(config)
    assert len(done) == 40 and {r["outcome"] for r in done} == {"created"}

    monkeypatch.setattr(ImapMailbox, "_fetch_batch", real_fetch_batch)
    server.restart()
    summary = run_flow(config)
    assert (summary["seen"], summary["created"]) == (10, 10)
    assert_exactly_once(helpdesk, 50)
    assert len(ledger_rows(config)) == 50
    flags = flags_of(server, user)
    assert len(flags) == 50 and all(KEYWORD in f and "\\Seen" not in f for f in flags.values())


def test_wrong_password_fails_the_run_naming_the_mailbox_and_marks_nothing(
    run_flow, helpdesk, imap_config, dovecot, imap_user, monkeypatch
):
    append(dovecot, imap_user, [message()], now_minus(2))
    monkeypatch.setenv(IMAP_PASSWORD_ENV, "clave-equivocada")
    state = run_flow(imap_config(dovecot, imap_user), expect_failure=True)
    assert "'soporte'" in state.message and "login refused" in state.message
    assert "clave-equivocada" not in state.message
    assert helpdesk.requests() == []
    assert not any(KEYWORD in f for f in flags_of(dovecot, imap_user).values())


def test_xoauth2_run_and_a_withdrawn_app(run_flow, helpdesk, imap_config, dovecot, imap_user, trust_identity,
                                         monkeypatch):
    identity = trust_identity
    app = identity.register_app(imap_user)
    monkeypatch.setenv(CLIENT_SECRET_ENV, app.secret)
    append(dovecot, imap_user, [message(subject="Por XOAUTH2")], now_minus(2))
    config = imap_config(dovecot, imap_user, password_env=None, oauth={
        "tenant_id": identity.tenant, "client_id": app.client_id, "client_secret_env": CLIENT_SECRET_ENV,
        "authority_host": identity.authority_host,
    })
    assert run_flow(config)["created"] == 1
    assert [r["grant"] for r in identity.token_requests(app.client_id)] == ["client_credentials"]

    identity.disable_app(app.client_id)
    append(dovecot, imap_user, [message(subject="Tras retirar la app")], now_minus(1))
    state = run_flow(config, expect_failure=True)
    assert "identity provider refused the token request" in state.message and app.client_id in state.message
    assert app.secret not in state.message
    assert len(helpdesk.requests()) == 1


def test_one_broken_mailbox_does_not_hold_the_other_back(run_flow, helpdesk, dovecot, imap_user, imap_password,
                                                         tmp_path):
    append(dovecot, imap_user, [message(subject="Buzón sano")], now_minus(2))
    base = {"kind": "imap", "address": "soporte@helppeople.test", "timezone": "America/Bogota",
            "host": dovecot.host, "username": imap_user, "password_env": imap_password,
            "ca_file": str(dovecot.cafile)}
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump({
        "helpdesk": {"url": helpdesk.url, "token_env": "HELPDESK_TOKEN"},
        "ledger": f"sqlite:///{tmp_path / 'two.db'}",
        "data_dir": str(tmp_path / "data-two"),
        "mailboxes": [
            {**base, "name": "roto", "port": dovecot.port, "ca_file": None},  # untrusted certificate
            {**base, "name": "soporte", "port": dovecot.port},
        ],
    }), encoding="utf-8")
    broken = run_flow(config, mailbox="roto", expect_failure=True)
    assert "'roto'" in broken.message and "TLS certificate not trusted" in broken.message
    assert run_flow(config, mailbox="soporte")["created"] == 1
