"""The Gmail block through the real google-api-python-client against the local Gmail on loopback.

Real HTTP, real OAuth grants (a JWT signed with a generated RSA key, a refresh token), real
retries; only Google's servers are replaced (tests/support/gmail_server.py).
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

import pytest
from pydantic import SecretStr

from blocks import gmail as gmail_module
from blocks.gmail import GmailMailbox, decode_raw
from blocks.mailbox import MailboxSource, MailboxUnavailable
from mailservice.config import ConfigError, MailboxConfig
from tasks.parse import parse_message
from tests.support.gmail_server import run_fake_gmail
from tests.support.mail import message

ADDRESS = "soporte@helppeople.test"
SA_EMAIL = "ingest@helppeople-test.iam.gserviceaccount.com"
NOW = datetime.now(UTC).replace(microsecond=0)
START, END = NOW - timedelta(hours=2), NOW + timedelta(hours=2)


@pytest.fixture
def gmail(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with run_fake_gmail() as fake:
        yield fake


@pytest.fixture
def key_info(gmail) -> dict:
    return gmail.add_service_account(SA_EMAIL)


@pytest.fixture
def make_box(gmail, key_info):
    def build(**overrides) -> GmailMailbox:
        fields = {
            "mailbox_name": "soporte",
            "address": ADDRESS,
            "service_account_info": SecretStr(json.dumps(key_info)),
            "api_endpoint": gmail.api_endpoint,
            "backoff_seconds": 0.005,
            "timeout_seconds": 5,
        }
        fields.update(overrides)
        return GmailMailbox(**fields)

    return build


def _gets(gmail) -> int:
    return gmail.calls["messages.get"]


def test_is_a_mailbox_source_and_hides_its_secrets(make_box, key_info):
    box = make_box()
    assert isinstance(box, MailboxSource)
    text = repr(box) + str(box) + box.model_dump_json()
    assert key_info["private_key"][40:80] not in text and "PRIVATE KEY" not in text


def test_lists_the_window_exactly_and_marks_with_the_label(gmail, make_box):
    yesterday = gmail.deliver(ADDRESS, message(subject="ayer"), NOW - timedelta(days=1))
    at_start = gmail.deliver(ADDRESS, message(subject="inicio"), START)
    today = gmail.deliver(ADDRESS, message(subject="hoy"), NOW)
    tomorrow = gmail.deliver(ADDRESS, message(subject="mañana"), END + timedelta(minutes=1))
    box = make_box()

    refs = box.list_refs(START, END, include_processed=False)
    assert [r.source_id for r in refs] == [at_start, today]
    assert refs[1].received_at == NOW and refs[1].received_at.tzinfo is not None
    assert refs[1].size == len(gmail.message(ADDRESS, today).raw) and not refs[1].processed
    assert [m.raw for m in box.fetch(refs)] == [gmail.message(ADDRESS, i).raw for i in (at_start, today)]

    assert gmail.user_labels(ADDRESS) == []  # created on first use, not on listing
    box.mark_processed(refs)
    assert gmail.user_labels(ADDRESS) == ["helppeople-ingested"]
    for message_id in (at_start, today):
        assert gmail.label_names(ADDRESS, message_id) == {"INBOX", "UNREAD", "helppeople-ingested"}
    for message_id in (yesterday, tomorrow):
        assert gmail.label_names(ADDRESS, message_id) == {"INBOX", "UNREAD"}

    fresh = make_box()  # a new run: nothing new, no message read at all
    gmail.reset_calls()
    assert fresh.list_refs(START, END, include_processed=False) == []
    assert _gets(gmail) == 0 and gmail.calls["messages.list"] == 1 and gmail.calls["labels.create"] == 0
    again = fresh.list_refs(START, END, include_processed=True)
    assert [(r.source_id, r.processed) for r in again] == [(at_start, True), (today, True)]
    fresh.mark_processed(again)
    assert gmail.calls["labels.create"] == 0 and gmail.user_labels(ADDRESS) == ["helppeople-ingested"]


def test_the_exact_window_is_applied_to_internal_date(gmail, make_box):
    """Gmail's search works in whole seconds, so the query is a second wider and internalDate decides.

    The price: an unprocessed message within a second outside the window costs one metadata read per poll.
    """
    gmail.deliver(ADDRESS, message(subject="antes"), START - timedelta(milliseconds=400))
    at_start = gmail.deliver(ADDRESS, message(subject="inicio"), START)
    last = gmail.deliver(ADDRESS, message(subject="último"), END - timedelta(milliseconds=1))
    gmail.deliver(ADDRESS, message(subject="fin"), END)
    refs = make_box().list_refs(START, END, include_processed=False)
    assert [r.source_id for r in refs] == [at_start, last]
    assert gmail.calls["messages.get"] == 4


def test_only_received_mail_is_listed(gmail, make_box, monkeypatch):
    received = gmail.deliver(ADDRESS, message(), NOW)
    archived = gmail.deliver(ADDRESS, message(subject="archivado"), NOW, labels=())
    gmail.deliver(ADDRESS, message(sender=ADDRESS, subject="Solicitud #5 recibida"), NOW, labels=("SENT",))
    gmail.deliver(ADDRESS, message(subject="borrador"), NOW, labels=("DRAFT",))
    gmail.deliver(ADDRESS, message(subject="spam"), NOW, labels=("SPAM", "UNREAD"))
    gmail.deliver(ADDRESS, message(subject="papelera"), NOW, labels=("TRASH",))
    refs = make_box().list_refs(START, END, include_processed=False)
    assert sorted(r.source_id for r in refs) == sorted([received, archived])
    # Even if Gmail's search let them through, the labels read with the date keep them out.
    def window_only(self, since, until, **_):
        return f"after:{int(since.timestamp()) - 1} before:{int(until.timestamp()) + 1}"

    monkeypatch.setattr(GmailMailbox, "query", window_only)
    gmail.deliver(ADDRESS, message(subject="chat"), NOW, labels=("CHAT",))
    gmail.reset_calls()
    refs = make_box().list_refs(START, END, include_processed=True)
    assert sorted(r.source_id for r in refs) == sorted([received, archived])
    assert gmail.calls["messages.get"] == 5  # SENT, DRAFT and CHAT were listed, then dropped by their labels


def test_pages_through_a_long_listing(gmail, make_box, monkeypatch):
    monkeypatch.setattr(gmail_module, "PAGE_SIZE", 2)
    ids = [gmail.deliver(ADDRESS, message(subject=f"n{i}"), NOW + timedelta(seconds=i)) for i in range(5)]
    refs = make_box().list_refs(START, END, include_processed=False)
    assert [r.source_id for r in refs] == ids
    assert gmail.calls["messages.list"] == 3


def test_raw_is_decoded_whatever_the_padding():
    data = b"Subject: x\r\n\r\n\xc3\xa1?>"
    import base64

    padded = base64.urlsafe_b64encode(data).decode()
    assert decode_raw(padded) == decode_raw(padded.rstrip("=")) == data
    assert decode_raw(base64.b64encode(data).decode()) == data


def test_oversize_message_becomes_its_headers_and_a_note(gmail, make_box):
    big = EmailMessage()
    big["From"] = "ana.quinonez@cliente.test"
    big["To"] = ADDRESS
    big["Subject"] = "Copia de seguridad adjunta"
    big["Message-ID"] = "<grande@cliente.test>"
    big.set_content("Adjunto el respaldo.")
    big.add_attachment(b"\0" * 300_000, maintype="application", subtype="zip", filename="respaldo.zip")
    big_id = gmail.deliver(ADDRESS, big.as_bytes(), NOW)
    small_id = gmail.deliver(ADDRESS, message(), NOW + timedelta(seconds=1))
    box = make_box(max_message_bytes=100_000)
    refs = box.list_refs(START, END, include_processed=False)
    by_id = {m.ref.source_id: m for m in box.fetch(refs)}
    assert gmail.calls["messages.get:raw"] == 1 and gmail.calls["messages.get:metadata"] == 1
    assert by_id[small_id].raw == gmail.message(ADDRESS, small_id).raw
    parsed = parse_message(by_id[big_id].raw)
    assert parsed.subject == "Copia de seguridad adjunta" and parsed.sender == "ana.quinonez@cliente.test"
    assert parsed.message_id == "<grande@cliente.test>" and ADDRESS in parsed.recipients
    assert "no se descargó completo" in parsed.text_body and not parsed.attachments
    assert len(by_id[big_id].raw) < 2000
    # The same message gives the same bytes again (its message key is stable across reruns).
    assert next(iter(box.fetch([by_id[big_id].ref]))).raw == by_id[big_id].raw


def test_a_message_gone_since_listing_is_skipped(gmail, make_box):
    gone = gmail.deliver(ADDRESS, message(), NOW)
    kept = gmail.deliver(ADDRESS, message(), NOW + timedelta(seconds=1))
    box = make_box()
    refs = box.list_refs(START, END, include_processed=False)
    del gmail.messages[ADDRESS][gone]
    assert [m.ref.source_id for m in box.fetch(refs)] == [kept]
    box.mark_processed(refs)  # the gone one is skipped, not an error
    assert "helppeople-ingested" in gmail.label_names(ADDRESS, kept)


@pytest.mark.parametrize("status", [429, 500, 503, 403])
def test_rate_limits_and_server_errors_are_retried(gmail, make_box, status):
    gmail.deliver(ADDRESS, message(), NOW)
    box = make_box()
    gmail.fail_next(3, status)  # 403 here is userRateLimitExceeded: retryable
    refs = box.list_refs(START, END, include_processed=False)
    assert len(refs) == 1
    gmail.fail_next(2, status)
    assert len(list(box.fetch(refs))) == 1
    gmail.fail_next(2, status)
    box.mark_processed(refs)
    assert "helppeople-ingested" in gmail.label_names(ADDRESS, refs[0].source_id)


def test_errors_that_outlive_the_retries_name_the_mailbox(gmail, make_box):
    box = make_box(max_retries=2)
    gmail.fail_next(3, 503)
    with pytest.raises(MailboxUnavailable) as caught:
        box.list_refs(START, END, include_processed=False)
    text = str(caught.value)
    assert "'soporte'" in text and ADDRESS in text and "503" in text and "after 2 retries" in text


def test_a_403_that_is_not_a_rate_limit_is_not_retried(gmail, make_box):
    gmail.fail_next(1, 403, reason="insufficientPermissions")
    with pytest.raises(MailboxUnavailable, match=r"gmail\.modify scope is granted"):
        make_box().list_refs(START, END, include_processed=False)
    assert gmail.calls["labels.list"] == 1


def test_revoked_key_is_a_clear_failure_without_the_key(gmail, make_box, key_info):
    gmail.revoke_key(SA_EMAIL)
    with pytest.raises(MailboxUnavailable) as caught:
        make_box().list_refs(START, END, include_processed=False)
    text = str(caught.value)
    assert "Gmail mailbox 'soporte'" in text and "invalid_grant" in text and "service-account key" in text
    assert key_info["private_key"][40:80] not in text and caught.value.__cause__ is None
    assert gmail.calls["token"] == 1  # invalid_grant is not retried


def test_missing_delegation_says_what_to_grant(gmail, make_box):
    gmail.deny_delegation(SA_EMAIL)
    with pytest.raises(MailboxUnavailable, match="domain-wide delegation") as caught:
        make_box().list_refs(START, END, include_processed=False)
    assert "unauthorized_client" in str(caught.value) and ADDRESS in str(caught.value)


def test_key_revoked_during_a_run_fails_clearly(gmail, make_box):
    gmail.deliver(ADDRESS, message(), NOW)
    box = make_box()
    refs = box.list_refs(START, END, include_processed=False)
    gmail.revoke_key(SA_EMAIL)  # issued access tokens stop working too: 401, refresh, invalid_grant
    with pytest.raises(MailboxUnavailable, match="invalid_grant"):
        list(box.fetch(refs))


def test_user_refresh_token(gmail, make_box):
    token = gmail.add_refresh_token(ADDRESS, "client-123.apps.googleusercontent.com", "client-secret-value")
    gmail.deliver(ADDRESS, message(), NOW)
    box = make_box(
        service_account_info=None,
        client_id="client-123.apps.googleusercontent.com",
        client_secret=SecretStr("client-secret-value"),
        refresh_token=SecretStr(token),
        token_uri=gmail.token_uri,
    )
    refs = box.list_refs(START, END, include_processed=False)
    assert len(list(box.fetch(refs))) == 1
    box.mark_processed(refs)
    assert gmail.calls["token"] == 1

    gmail.revoke_refresh_token(token)
    again = box.model_copy()
    again._creds, again._local, again._label_id = None, threading.local(), None
    with pytest.raises(MailboxUnavailable) as caught:
        again.list_refs(START, END, include_processed=True)
    text = str(caught.value)
    assert "refresh token" in text and "invalid_grant" in text and token not in text
    assert "client-secret-value" not in text


def test_unreachable_api_is_a_clear_failure(gmail, make_box):
    with socket.socket() as probe:  # a port that was free a moment ago: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = make_box(api_endpoint=f"http://127.0.0.1:{port}/", max_retries=1)
    with pytest.raises(MailboxUnavailable) as caught:
        box.list_refs(START, END, include_processed=False)
    assert "cannot reach" in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)


def test_concurrent_threads_use_their_own_connections(gmail, make_box):
    ids = [gmail.deliver(ADDRESS, message(subject=f"t{i}"), NOW + timedelta(seconds=i)) for i in range(16)]
    box = make_box()
    refs = box.list_refs(START, END, include_processed=False)
    chunks = [refs[i::4] for i in range(4)]
    results: dict[int, list] = {}
    services: dict[int, object] = {}

    def work(n: int) -> None:
        results[n] = [m.ref.source_id for m in box.fetch(chunks[n])]
        box.mark_processed(chunks[n])
        services[n] = box._local.service

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(i for chunk in results.values() for i in chunk) == sorted(ids)
    assert len({id(s) for s in services.values()}) == 4
    assert gmail.calls["labels.create"] == 1 and gmail.calls["token"] == 1
    assert all("helppeople-ingested" in gmail.label_names(ADDRESS, i) for i in ids)


def test_first_use_from_worker_threads_does_not_deadlock(gmail, make_box):
    """Mapped tasks may call mark_processed on a block no thread has used yet (label + credentials)."""
    ids = [gmail.deliver(ADDRESS, message(subject=f"w{i}"), NOW) for i in range(4)]
    refs = make_box().list_refs(START, END, include_processed=False)
    box = make_box()
    threads = [threading.Thread(target=box.mark_processed, args=([ref],), daemon=True) for ref in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), "mark_processed hung"
    assert all("helppeople-ingested" in gmail.label_names(ADDRESS, i) for i in ids)
    assert gmail.calls["labels.create"] == 1


def test_expiry_warnings(make_box):
    box = make_box(credential_expires_on=date(2026, 3, 20), expiry_warning_days=14)
    assert box.expiry_warnings(date(2026, 3, 1)) == []
    [soon] = box.expiry_warnings(date(2026, 3, 10))
    assert "'soporte'" in soon and "2026-03-20" in soon and "in 10 day(s)" in soon
    [past] = box.expiry_warnings(date(2026, 3, 21))
    assert "expired on 2026-03-20" in past
    assert make_box().expiry_warnings(date(2026, 3, 21)) == []


def _config(**keys) -> MailboxConfig:
    return MailboxConfig(name="soporte", kind="gmail", address=ADDRESS, **keys)


def test_from_config_service_account_file_and_env(tmp_path, gmail, key_info, monkeypatch):
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key_info))
    box = GmailMailbox.from_config(_config(service_account_file=key_file, api_endpoint=gmail.api_endpoint,
                                           attachment_max_mb=10, credential_expires_on=date(2027, 1, 1)))
    assert box.service_account_info.get_secret_value() == key_file.read_text()
    assert box.max_message_bytes == 15 * 1024 * 1024 and box.subject == ADDRESS
    assert box.credential_expires_on == date(2027, 1, 1)
    assert box.list_refs(START, END, include_processed=False) == []

    monkeypatch.setenv("GMAIL_KEY", json.dumps(key_info))
    box = GmailMailbox.from_config(_config(service_account_env="GMAIL_KEY", delegated_user="otro@helppeople.test"))
    assert box.subject == "otro@helppeople.test"


def test_from_config_user_oauth(monkeypatch):
    monkeypatch.setenv("GMAIL_SECRET", "s3cret")
    monkeypatch.setenv("GMAIL_REFRESH", "1//refresh")
    box = GmailMailbox.from_config(_config(user_oauth={
        "client_id": "cid", "client_secret_env": "GMAIL_SECRET", "refresh_token_env": "GMAIL_REFRESH",
        "token_uri": "http://127.0.0.1:9/token",
    }))
    assert (box.client_id, box.token_uri) == ("cid", "http://127.0.0.1:9/token")
    assert box.refresh_token.get_secret_value() == "1//refresh" and box.service_account_info is None


def test_from_config_bad_key_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="service_account_file: cannot read"):
        GmailMailbox.from_config(_config(service_account_file=tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "authorized_user", "refresh_token": "do-not-print-me"}')
    with pytest.raises(ConfigError, match="not a key JSON of type service_account") as caught:
        GmailMailbox.from_config(_config(service_account_file=bad))
    assert "do-not-print-me" not in str(caught.value)


def test_block_needs_exactly_one_way_in():
    with pytest.raises(ValueError, match="exactly one"):
        GmailMailbox(address=ADDRESS)
    with pytest.raises(ValueError, match="client_id and client_secret"):
        GmailMailbox(address=ADDRESS, refresh_token=SecretStr("x"))


def test_query_is_a_little_wider_than_the_window(make_box):
    box = make_box()
    since = datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
    q = box.query(since, since + timedelta(days=1), include_processed=False)
    assert q == (
        f"after:{int(since.timestamp()) - 1} before:{int(since.timestamp()) + 86401} "
        "-in:sent -in:drafts -label:helppeople-ingested"
    )
    assert "-label" not in box.query(since, since, include_processed=True)
