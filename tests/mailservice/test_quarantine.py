"""Kept mail (R19): listed with reason, age and size; replayed through the real pipeline against the
reference helpdesk — exactly one request, however many times it is replayed; exported byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from blocks.ledger import QUARANTINED, Ledger, MessageFacts
from mailservice.cli_quarantine import quarantine_app
from mailservice.config import load_config
from tasks.message_key import message_key
from tests.support.mail import deliver, message


def cli(*args) -> str:
    result = CliRunner().invoke(quarantine_app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout


def keep_as_an_older_parser_did(config_path, raw: bytes, reason: str = "parser_error") -> str:
    """Ledger state left by a run whose parser failed on this (valid) message: quarantined, bytes kept."""
    ledger = Ledger(load_config(config_path).ledger)
    key = message_key(raw)
    received = datetime.now(UTC) - timedelta(hours=2)
    facts = MessageFacts(mailbox="soporte", message_key=key, source_id="1796400000.M1P1Q1.host", received_at=received,
                         day=received.date(), size_bytes=len(raw))
    ledger.record(facts, QUARANTINED, run_id="old-run", reason=reason)
    ledger.set_marked("soporte", [key])
    ledger.keep_raw("soporte", key, reason, raw)
    ledger.dispose()
    return key


def test_replay_creates_exactly_one_request_and_a_second_replay_nothing(helpdesk, make_config, helpdesk_token):
    config = make_config(helpdesk.url)
    raw = message(subject="Factura electrónica rechazada")
    key = keep_as_an_older_parser_did(config, raw)

    [listed] = [json.loads(line) for line in cli("list", config, "--format", "json").splitlines()]
    assert (listed["key"], listed["reason"], listed["size"], listed["outcome"]) == (key, "parser_error", len(raw),
                                                                                    "quarantined")
    assert listed["age"].endswith(("m", "s")) and listed["replays"] == 0
    assert "parser_error" in cli("list", config)  # the table for people

    [first] = [json.loads(line) for line in cli("replay", config, listed["id"]).splitlines()]
    assert first["outcome"] == "created" and first["request_number"]
    requests = helpdesk.requests()
    assert [r["title"] for r in requests] == ["Factura electrónica rechazada"]
    assert requests[0]["external_id"] == f"mail:soporte:{key}"

    [second] = [json.loads(line) for line in cli("replay", config, listed["id"]).splitlines()]
    assert (second["outcome"], second["request_number"]) == ("already_created", first["request_number"])
    assert len(helpdesk.requests()) == 1

    ledger = Ledger(load_config(config).ledger)
    [row] = ledger.message_rows("soporte")
    assert (row["outcome"], row["request_number"]) == ("created", first["request_number"])
    assert ledger.kept_raw("soporte", key) == raw  # still kept: nothing expires, nothing is deleted
    assert [r["outcome"] for r in ledger.replay_rows("soporte")] == ["created", "already_created"]
    assert [r["mode"] for r in ledger.run_rows("soporte")] == ["replay", "replay"]
    ledger.dispose()
    [after] = [json.loads(line) for line in cli("list", config, "--format", "json").splitlines()]
    assert after["replays"] == 2 and after["outcome"] == "created" and "created" in after["last_replay"]
    # --all replays only what still has no request: nothing now.
    result = CliRunner().invoke(quarantine_app, ["replay", str(config), "--all", "--mailbox", "soporte"])
    assert result.exit_code == 0 and "nothing to replay" in result.output
    assert len(helpdesk.requests()) == 1


@pytest.mark.flow
def test_unparseable_mail_stays_kept_and_exports_byte_for_byte(
    prefect_harness, helpdesk, make_config, maildir, helpdesk_token, tmp_path
):
    from flows.ingest_mailbox import ingest_mailbox
    from mailservice import runtime

    garbage = b"\x00\x01 not a mail at all \xff\xfe"
    deliver(maildir, garbage)
    config = make_config(helpdesk.url)
    runtime.use_config(load_config(config))
    try:
        assert ingest_mailbox(mailbox="soporte")["quarantined"] == 1
    finally:
        runtime.use_config(None)
    [kept] = [json.loads(line) for line in cli("list", config, "--format", "json", "--mailbox", "soporte").splitlines()]
    assert kept["reason"].startswith("unparseable") and kept["size"] == len(garbage)

    replayed = [json.loads(line) for line in cli("replay", config, "--all", "--mailbox", "soporte").splitlines()]
    assert [(r["id"], r["outcome"]) for r in replayed] == [(kept["id"], "quarantined")]
    assert helpdesk.requests() == []

    out = tmp_path / "export" / "kept.eml"
    cli("export", config, kept["id"], "--out", out)
    assert out.read_bytes() == garbage
    bad = CliRunner().invoke(quarantine_app, ["export", str(config), "999", "--out", str(out)])
    assert bad.exit_code == 2 and "no kept message with id 999" in bad.output


@pytest.mark.flow
def test_mail_the_helpdesk_refused_is_kept_and_replayed_once_the_cause_is_fixed(
    prefect_harness, helpdesk, make_config, maildir, helpdesk_token
):
    """R19 for helpdesk refusals: a mailbox configured with titles longer than the helpdesk's 80 characters."""
    from flows.ingest_mailbox import ingest_mailbox
    from mailservice import runtime

    subject = "No funciona la conciliación bancaria automática del módulo de tesorería desde la actualización de ayer"
    deliver(maildir, message(subject=subject))
    config = make_config(helpdesk.url, subject_max_chars=150)
    runtime.use_config(load_config(config))
    try:
        summary = ingest_mailbox(mailbox="soporte")
    finally:
        runtime.use_config(None)
    assert summary["rejected"] == {"helpdesk_invalid_request": 1}
    kept = [json.loads(line) for line in cli("list", config, "--format", "json").splitlines()]
    assert kept[0]["reason"] == "helpdesk_invalid_request" and kept[0]["outcome"] == "rejected"

    config = make_config(helpdesk.url, subject_max_chars=80)  # the fix
    [replayed] = [json.loads(line) for line in cli("replay", config, "--all", "--mailbox", "soporte").splitlines()]
    assert replayed["outcome"] == "created"
    assert [json.loads(line)["outcome"] for line in cli("replay", config, kept[0]["id"]).splitlines()] == [
        "already_created"
    ]
    [request] = helpdesk.requests()
    assert len(request["title"]) <= 80 and subject in request["description"]
