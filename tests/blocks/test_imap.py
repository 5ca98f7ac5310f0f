"""The IMAP block against a real Dovecot IMAPS server on loopback (and a local identity server).

No mocks: every test talks TLS to Dovecot, logs in with a password or XOAUTH2 (msal → local
identity → Dovecot's introspection), and checks the server's own state afterwards.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from blocks.imap import ImapLoginRefused, ImapMailbox
from blocks.mailbox import MailboxSource, MailboxUnavailable
from mailservice.config import ConfigError, MailboxConfig
from tasks.message_key import message_key
from tasks.parse import parse_message
from tests.support.dovecot import PASSWORD, free_port
from tests.support.imap_fixtures import append, flags_of
from tests.support.mail import message

# A past day: Dovecot stores "now" instead of an INTERNALDATE in the future.
NOW = (datetime.now(UTC) - timedelta(days=3)).replace(hour=15, minute=0, second=0, microsecond=0)
DAY_START = NOW.replace(hour=0)
DAY_END = DAY_START + timedelta(days=1)
KEYWORD = "$HelppeopleIngested"


def password_box(server, user: str, **overrides) -> ImapMailbox:
    settings = {
        "host": server.host, "port": server.port, "username": user, "password": SecretStr(PASSWORD),
        "ca_file": str(server.cafile), "mailbox_name": "soporte", "timeout_seconds": 5,
    }
    settings.update(overrides)
    return ImapMailbox(**settings)


def oauth_box(server, identity, app, **overrides) -> ImapMailbox:
    settings = {
        "host": server.host, "port": server.port, "username": app.user, "ca_file": str(server.cafile),
        "tenant_id": identity.tenant, "client_id": app.client_id,
        "client_secret": SecretStr(app.secret) if app.secret else None,
        "authority_host": identity.authority_host, "mailbox_name": "soporte-o365", "timeout_seconds": 5,
    }
    settings.update(overrides)
    return ImapMailbox(**settings)


def with_attachment(subject: str, filename: str, size: int, text: str = "Adjunto el respaldo solicitado.") -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "ana.quinonez@cliente.test"
    msg["To"] = "soporte@helppeople.test"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@cliente.test>"
    msg["Date"] = "Fri, 04 Dec 2026 10:00:00 -0500"
    msg.set_content(text)
    msg.add_attachment(bytes(range(256)) * (size // 256), maintype="application", subtype="zip", filename=filename)
    return msg.as_bytes()


@pytest.fixture
def box(dovecot, imap_user):
    mailbox = password_box(dovecot, imap_user)
    yield mailbox
    mailbox.close()


# -- listing, fetching, marking ------------------------------------------------------------------
def test_reads_the_day_by_internaldate_and_marks_with_a_keyword(dovecot, imap_user, box):
    assert isinstance(box, MailboxSource)
    append(dovecot, imap_user, [message(subject="ayer")], NOW - timedelta(days=1))
    append(dovecot, imap_user, [message(subject="antes de medianoche")], DAY_START - timedelta(seconds=1))
    append(dovecot, imap_user, [message(subject=f"hoy {i}") for i in range(3)], NOW)
    append(dovecot, imap_user, [message(subject="mañana")], DAY_END)

    refs = box.list_refs(DAY_START, DAY_END, include_processed=False)
    assert len(refs) == 3
    assert all(r.received_at == NOW and r.received_at.tzinfo is not None and r.size > 0 for r in refs)
    assert all(r.source_id == f"{box.uidvalidity}:{r.source_id.split(':')[1]}" for r in refs)
    raws = [m.raw for m in box.fetch(refs)]
    assert [parse_message(raw).subject for raw in raws] == ["hoy 0", "hoy 1", "hoy 2"]
    assert all(b"\r\n" in raw for raw in raws)
    # BODY.PEEK[]: reading never set \Seen; nothing is marked before mark_processed.
    assert all("\\Seen" not in flags and KEYWORD not in flags for flags in flags_of(dovecot, imap_user).values())

    box.mark_processed(refs[:2])
    flags = flags_of(dovecot, imap_user)
    assert sorted(KEYWORD in f for f in flags.values()) == [False] * 4 + [True] * 2
    assert all("\\Seen" not in f and "\\Deleted" not in f for f in flags.values())
    left = box.list_refs(DAY_START, DAY_END, include_processed=False)
    assert [r.source_id for r in left] == [refs[2].source_id]
    rerun = box.list_refs(DAY_START, DAY_END, include_processed=True)
    assert [(r.source_id, r.processed) for r in rerun] == [(r.source_id, i < 2) for i, r in enumerate(refs)]
    assert len(flags_of(dovecot, imap_user)) == 6  # nothing deleted
    assert box.logins == 1  # one connection served every call


def test_window_in_the_mailbox_time_zone(dovecot, imap_user, box):
    bogota = ZoneInfo("America/Bogota")
    start = datetime.combine(NOW.date(), datetime.min.time(), tzinfo=bogota)
    append(dovecot, imap_user, [message(subject="23:59 del día anterior")], start - timedelta(minutes=1))
    append(dovecot, imap_user, [message(subject="00:00")], start)
    append(dovecot, imap_user, [message(subject="23:59")], start + timedelta(days=1, minutes=-1))
    refs = box.list_refs(start, start + timedelta(days=1), include_processed=False)
    assert [parse_message(m.raw).subject for m in box.fetch(refs)] == ["00:00", "23:59"]


def test_fetches_in_batches_from_several_threads_on_one_connection(dovecot, imap_user):
    append(dovecot, imap_user, [message(subject=f"caso {i}") for i in range(40)], NOW)
    mailbox = password_box(dovecot, imap_user, fetch_batch=3)
    try:
        refs = mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        chunks = [refs[i : i + 10] for i in range(0, 40, 10)]
        with ThreadPoolExecutor(4) as pool:
            fetched = list(pool.map(lambda chunk: [m.ref for m in mailbox.fetch(chunk)], chunks))
            list(pool.map(mailbox.mark_processed, chunks))
        assert fetched == chunks
        assert mailbox.logins == 1
        assert mailbox.list_refs(DAY_START, DAY_END, include_processed=False) == []
    finally:
        mailbox.close()


def test_an_idle_poll_fetches_nothing(dovecot, imap_user, box):
    append(dovecot, imap_user, [message(subject=f"viejo {i}") for i in range(30)], NOW)
    box.mark_processed(box.list_refs(DAY_START, DAY_END, include_processed=False))
    client = box._conn.client
    fetches = []
    real_fetch = client.fetch
    client.fetch = lambda *args, **kwargs: fetches.append(args) or real_fetch(*args, **kwargs)  # a spy
    assert box.list_refs(DAY_START, DAY_END, include_processed=False) == []
    assert fetches == []  # one SEARCH that found nothing: not even a metadata FETCH
    assert len(box.list_refs(DAY_START, DAY_END, include_processed=True)) == 30


def test_a_message_gone_since_listing_is_skipped(dovecot, imap_user, box):
    append(dovecot, imap_user, [message(subject="se queda"), message(subject="se va")], NOW)
    refs = box.list_refs(DAY_START, DAY_END, include_processed=False)
    other = dovecot.client(imap_user)
    other.select_folder("INBOX")
    other.create_folder("Otra")
    other.move([int(refs[1].source_id.split(":")[1])], "Otra")
    other.logout()
    assert [parse_message(m.raw).subject for m in box.fetch(refs)] == ["se queda"]


# -- UIDVALIDITY -------------------------------------------------------------------------------------
def test_uidvalidity_change_between_listing_and_fetching_never_fetches_by_old_uid(dovecot, imap_user):
    folder = "Soporte"
    seed = dovecot.client(imap_user)
    seed.create_folder(folder)
    seed.logout()
    originals = [message(subject=f"caso {i}", body=f"cuerpo {i}" * (i + 1)) for i in range(4)]
    append(dovecot, imap_user, originals, NOW, folder=folder)
    mailbox = password_box(dovecot, imap_user, folder=folder)
    try:
        refs = mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        old_validity = mailbox.uidvalidity
        # The folder is rebuilt: same messages, new UIDVALIDITY, and one UID now names another message.
        other = dovecot.client(imap_user)
        other.rename_folder(folder, "Soporte-viejo")
        other.create_folder(folder)
        other.logout()
        append(dovecot, imap_user, [message(subject="intrusa")], NOW - timedelta(hours=1), folder=folder)
        append(dovecot, imap_user, list(reversed(originals)), NOW, folder=folder)

        fetched = list(mailbox.fetch(refs))  # dovecot says BYE to our session; the block reconnects once
        assert mailbox.logins == 2
        assert mailbox.uidvalidity != old_validity
        assert sorted(message_key(m.raw) for m in fetched) == sorted(message_key(raw) for raw in originals)
        assert all(m.ref.source_id.startswith(f"{mailbox.uidvalidity}:") for m in fetched)
        mailbox.mark_processed(refs)  # old UIDs: marks nothing
        assert not any(KEYWORD in f for f in flags_of(dovecot, imap_user, folder).values())
        mailbox.mark_processed([m.ref for m in fetched])
        marked = flags_of(dovecot, imap_user, folder)
        assert sum(KEYWORD in f for f in marked.values()) == 4
        [left] = mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        assert parse_message(next(iter(mailbox.fetch([left]))).raw).subject == "intrusa"
    finally:
        mailbox.close()


# -- oversize -----------------------------------------------------------------------------------------
def test_an_oversize_message_becomes_its_header_text_and_a_note(dovecot, imap_user):
    big = with_attachment("Respaldo grande", "respaldo-base.zip", 2 * 1024 * 1024)
    append(dovecot, imap_user, [big, message(subject="pequeño")], NOW)
    mailbox = password_box(dovecot, imap_user, max_message_bytes=1024 * 1024)
    try:
        refs = mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        first = {parse_message(m.raw).subject: m for m in mailbox.fetch(refs)}
        again = {parse_message(m.raw).subject: m for m in mailbox.fetch(refs)}
    finally:
        mailbox.close()
    note = first["Respaldo grande"]
    assert note.ref.size > 2 * 1024 * 1024 and len(note.raw) < 10_000
    parsed = parse_message(note.raw)
    assert parsed.sender == "ana.quinonez@cliente.test" and parsed.message_id == "<Respaldo-grande@cliente.test>"
    assert "Adjunto el respaldo solicitado." in parsed.text_body
    assert "no se descargó completo" in parsed.text_body
    assert "respaldo-base.zip (2,0 MB)" in parsed.text_body  # the file's own size, not its base64 size
    assert parsed.attachments == []
    assert message_key(note.raw) == message_key(again["Respaldo grande"].raw)  # stable: one request only
    assert first["pequeño"].raw == again["pequeño"].raw and b"pequ" in first["pequeño"].raw
    assert all("\\Seen" not in f for f in flags_of(dovecot, imap_user).values())


def test_an_oversize_single_part_message_keeps_its_header_and_gets_a_note(dovecot, imap_user):
    huge = message(subject="Texto enorme", body="línea de registro\n" * 120_000)
    append(dovecot, imap_user, [huge], NOW)
    mailbox = password_box(dovecot, imap_user, max_message_bytes=1024 * 1024)
    try:
        [fetched] = mailbox.fetch(mailbox.list_refs(DAY_START, DAY_END, include_processed=False))
    finally:
        mailbox.close()
    parsed = parse_message(fetched.raw)
    assert parsed.subject == "Texto enorme"
    assert "solo se leyó su encabezado" in parsed.text_body and "MB" in parsed.text_body


# -- keyword refused: move ------------------------------------------------------------------------------
def test_without_custom_keywords_processed_mail_is_moved_never_deleted(private_dovecot):
    server = private_dovecot(keywords=False)
    user = "sin-palabras@helppeople.test"
    append(server, user, [message(subject=f"caso {i}") for i in range(3)], NOW)
    mailbox = password_box(server, user)
    try:
        refs = mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        assert len(refs) == 3
        mailbox.mark_processed(refs[:2])
        assert len(flags_of(server, user)) == 1
        processed = flags_of(server, user, "Processed")
        assert len(processed) == 2 and all("\\Seen" not in f for f in processed.values())
        assert [r.source_id for r in mailbox.list_refs(DAY_START, DAY_END, include_processed=False)] == [
            refs[2].source_id
        ]
        rerun = mailbox.list_refs(DAY_START, DAY_END, include_processed=True)
        assert sorted(r.processed for r in rerun) == [False, True, True]
        assert len(list(mailbox.fetch(rerun))) == 3  # a rerun reads them in the processed folder too
        mailbox.mark_processed(rerun)  # already there: nothing moves twice
        assert len(flags_of(server, user, "Processed")) == 3
    finally:
        mailbox.close()


# -- failures a person must act on -----------------------------------------------------------------------
def test_wrong_password_is_login_refused_once_and_never_shows_the_password(dovecot, imap_user):
    mailbox = password_box(dovecot, imap_user, password=SecretStr("no-es-la-clave"))
    with pytest.raises(ImapLoginRefused) as caught:
        mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
    text = str(caught.value)
    assert "'soporte'" in text and f"127.0.0.1:{dovecot.port}" in text and "login refused" in text
    assert "no-es-la-clave" not in text and "no-es-la-clave" not in repr(mailbox)
    assert caught.value.retryable is False

    def failed_logins() -> int:  # dovecot logs a failed login when its connection closes
        return sum(f"user=<{imap_user}>" in line and "auth failed" in line for line in dovecot.log().splitlines())

    deadline = time.monotonic() + 5
    while failed_logins() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert failed_logins() == 1
    started = time.monotonic()
    with pytest.raises(ImapLoginRefused):  # remembered: no second failed login (account lockouts)
        mailbox.list_refs(DAY_START, DAY_END, include_processed=True)
    assert time.monotonic() - started < 0.4  # a failed login costs at least 0.5 s at dovecot
    time.sleep(0.2)
    assert failed_logins() == 1


def test_unknown_ca_is_rejected_unless_configured(dovecot, imap_user):
    untrusted = password_box(dovecot, imap_user, ca_file=None)
    with pytest.raises(MailboxUnavailable, match=r"TLS certificate not trusted.*set ca_file"):
        untrusted.list_refs(DAY_START, DAY_END, include_processed=False)
    as_pem_text = password_box(dovecot, imap_user, ca_file=dovecot.cafile.read_text())
    try:
        assert as_pem_text.list_refs(DAY_START, DAY_END, include_processed=False) == []
    finally:
        as_pem_text.close()


def test_nothing_listening_is_connection_refused(imap_user):
    mailbox = ImapMailbox(host="127.0.0.1", port=free_port(), username=imap_user, password=SecretStr(PASSWORD),
                          mailbox_name="caido", timeout_seconds=2)
    with pytest.raises(MailboxUnavailable, match=r"'caido'.*connection refused.*server is running"):
        mailbox.list_refs(DAY_START, DAY_END, include_processed=False)


def test_a_dropped_connection_is_reopened_once_and_a_dead_server_is_reported(private_dovecot):
    server = private_dovecot()
    user = "cortes@helppeople.test"
    append(server, user, [message(subject=f"caso {i}") for i in range(9)], NOW)
    mailbox = password_box(server, user, fetch_batch=3)
    try:
        refs = mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        stream = mailbox.fetch(refs)
        first = [next(stream) for _ in range(3)]
        server.stop()
        server.restart()  # the server went away and came back: our socket is dead
        rest = list(stream)
        assert [m.ref for m in first + rest] == refs
        assert mailbox.logins == 2
        server.stop()
        with pytest.raises(MailboxUnavailable, match=r"connection refused.*Check that the server is running"):
            mailbox.mark_processed(refs)
    finally:
        mailbox.close()


# -- XOAUTH2 through msal --------------------------------------------------------------------------------
def test_xoauth2_with_client_credentials_caches_the_token(dovecot, trust_identity, imap_user):
    identity = trust_identity
    app = identity.register_app(imap_user)
    append(dovecot, imap_user, [message(subject="por oauth")], NOW)
    mailbox = oauth_box(dovecot, identity, app)
    try:
        refs = mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        assert [parse_message(m.raw).subject for m in mailbox.fetch(refs)] == ["por oauth"]
        mailbox.close()
        mailbox.mark_processed(refs)  # a second connection, same cached token
        assert mailbox.logins == 2
        assert [r["grant"] for r in identity.token_requests(app.client_id)] == ["client_credentials"]
        assert "XOAUTH2" in dovecot.log() or "method=XOAUTH2" in dovecot.log()
        assert app.secret not in repr(mailbox)
    finally:
        mailbox.close()


def test_a_token_about_to_expire_is_renewed_before_use(dovecot, trust_identity, imap_user):
    identity = trust_identity
    app = identity.register_app(imap_user)
    identity.state.expires_in = 120  # less than msal's 5-minute margin: never reused
    try:
        mailbox = oauth_box(dovecot, identity, app)
        mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        mailbox.close()
        mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
        mailbox.close()
    finally:
        identity.state.expires_in = 3600
    assert len(identity.token_requests(app.client_id)) == 2


def test_a_revoked_token_is_replaced_and_a_disabled_app_is_a_clear_failure(dovecot, trust_identity, imap_user):
    identity = trust_identity
    app = identity.register_app(imap_user)
    mailbox = oauth_box(dovecot, identity, app)
    mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
    mailbox.close()
    assert identity.revoke_access_tokens(app.client_id) == 1
    mailbox.list_refs(DAY_START, DAY_END, include_processed=False)  # refused once, fresh token, works
    mailbox.close()
    assert len(identity.token_requests(app.client_id)) == 2

    identity.disable_app(app.client_id)
    with pytest.raises(ImapLoginRefused) as caught:
        mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
    text = str(caught.value)
    assert "'soporte-o365'" in text and "identity provider refused the token request" in text
    assert "unauthorized_client" in text and app.client_id in text and app.secret not in text


def test_xoauth2_token_for_another_mailbox_is_login_refused(dovecot, trust_identity, imap_user):
    identity = trust_identity
    app = identity.register_app("otro-buzon@helppeople.test")
    mailbox = oauth_box(dovecot, identity, app, username=imap_user)
    with pytest.raises(ImapLoginRefused, match=r"XOAUTH2 login refused.*app registration"):
        mailbox.list_refs(DAY_START, DAY_END, include_processed=False)


def test_delegated_refresh_token_and_its_revocation(dovecot, trust_identity, imap_user):
    identity = trust_identity
    app = identity.register_app(imap_user, secret=None)  # a public client, as for a consenting user
    refresh = identity.grant_refresh_token(app)
    mailbox = oauth_box(dovecot, identity, app, refresh_token=SecretStr(refresh))
    mailbox.list_refs(DAY_START, DAY_END, include_processed=False)
    mailbox.close()
    mailbox.list_refs(DAY_START, DAY_END, include_processed=False)  # cached access token, still valid
    mailbox.close()
    assert [r["grant"] for r in identity.token_requests(app.client_id)] == ["refresh_token"]

    identity.revoke_refresh_tokens(app.client_id)
    identity.revoke_access_tokens(app.client_id)
    fresh = oauth_box(dovecot, identity, app, refresh_token=SecretStr(refresh))
    with pytest.raises(ImapLoginRefused, match=r"invalid_grant.*refresh token is still valid") as caught:
        fresh.list_refs(DAY_START, DAY_END, include_processed=False)
    assert refresh not in str(caught.value)


def test_unknown_tenant_is_named(dovecot, trust_identity, imap_user):
    identity = trust_identity
    app = identity.register_app(imap_user)
    mailbox = oauth_box(dovecot, identity, app, tenant_id="no-such-tenant")
    with pytest.raises(MailboxUnavailable, match=r"does not know the tenant.*oauth.tenant_id"):
        mailbox.list_refs(DAY_START, DAY_END, include_processed=False)


# -- config and warnings ----------------------------------------------------------------------------------
def test_from_config_resolves_secrets_by_reference(monkeypatch, tmp_path):
    base = {"name": "o365", "kind": "imap", "address": "soporte@helppeople.test", "host": "imap.test",
            "username": "soporte@helppeople.test", "attachment_max_mb": 1}
    monkeypatch.delenv("IMAP_PW", raising=False)
    with pytest.raises(ConfigError, match=r"mailboxes \(o365\).password_env.*IMAP_PW is not set"):
        ImapMailbox.from_config(MailboxConfig(**base, password_env="IMAP_PW"))
    monkeypatch.setenv("IMAP_PW", "s3creto")
    block = ImapMailbox.from_config(MailboxConfig(**base, password_env="IMAP_PW", ca_file=tmp_path / "ca.pem"))
    assert block.password.get_secret_value() == "s3creto" and "s3creto" not in repr(block)
    assert block.ca_file == str(tmp_path / "ca.pem") and block.mailbox_name == "o365"
    assert block.max_message_bytes == int(1024 * 1024 * 1.4) + 1024 * 1024
    monkeypatch.setenv("CS", "client-secret")
    oauth = ImapMailbox.from_config(MailboxConfig(
        **base, oauth={"tenant_id": "t", "client_id": "c", "client_secret_env": "CS"}))
    assert oauth.uses_oauth and oauth.client_secret.get_secret_value() == "client-secret"
    assert oauth.refresh_token is None and oauth.password is None


def test_expiry_warnings():
    block = ImapMailbox(host="h", username="u", password=SecretStr("p"), mailbox_name="soporte",
                        credential_expires_on=date(2026, 12, 20), expiry_warning_days=14)
    assert block.expiry_warnings(date(2026, 12, 1)) == []
    [soon] = block.expiry_warnings(date(2026, 12, 10))
    assert "'soporte'" in soon and "2026-12-20" in soon and "10 day(s)" in soon and "p" not in soon.split()
    [late] = block.expiry_warnings(date(2026, 12, 21))
    assert "expired" in late


def test_no_switch_disables_certificate_verification():
    fields = set(ImapMailbox.model_fields)
    assert not any(word in name for name in fields for word in ("verify", "insecure", "no_tls", "ssl"))


def test_processed_keyword_must_be_an_atom():
    with pytest.raises(ValueError, match="IMAP keyword"):
        ImapMailbox(host="h", username="u", password=SecretStr("p"), processed_keyword="con espacio")

