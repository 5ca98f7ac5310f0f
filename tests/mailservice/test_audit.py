"""The audit dataset (R18): per mailbox and day the numbers add up, on SQLite and PostgreSQL, and the
exports (json lines, csv, parquet) are plain data any tool reads without project code."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from blocks.ledger import CREATED, FAILED, PENDING, QUARANTINED, REJECTED, Ledger, MessageFacts
from mailservice import audit
from mailservice.cli_audit import audit_frames, build_app

DAY = date(2026, 12, 4)
OTHER_DAY = date(2026, 12, 5)
OUTCOME_COLUMNS = ("created", "refused_total", "failed", "quarantined", "pending")


def _facts(mailbox: str, key: str, day: date, received_at: datetime) -> MessageFacts:
    return MessageFacts(
        mailbox=mailbox, message_key=key, source_id=f"src-{key}", received_at=received_at, day=day,
        message_id=f"<{key}@cliente.test>", sender="ana@cliente.test", subject=f"Asunto {key}", size_bytes=1000,
    )


def mixed_ledger(url: str) -> tuple[Ledger, dict]:
    """Two mailboxes, two days, every outcome; created requests 10, 20, 30, 40 minutes after arrival."""
    ledger = Ledger(url)
    now = datetime.now(UTC)
    expected = {}

    def add(mailbox, key, day, outcome, minutes_ago=5, **details):
        ledger.record(_facts(mailbox, key, day, now - timedelta(minutes=minutes_ago)), outcome, run_id="r1", **details)

    for i, minutes in enumerate((10, 20, 30, 40)):
        add("soporte", f"c{i}", DAY, PENDING, minutes)
        add("soporte", f"c{i}", DAY, CREATED, minutes, request_id=f"id{i}", request_number=1000 + i)
    add("soporte", "r1", DAY, REJECTED, reason="reply")
    add("soporte", "r2", DAY, REJECTED, reason="reply")
    add("soporte", "r3", DAY, REJECTED, reason="unknown_sender")
    add("soporte", "f1", DAY, FAILED, reason="helpdesk_unavailable")
    add("soporte", "q1", DAY, QUARANTINED, reason="unparseable:empty")
    ledger.keep_raw("soporte", "q1", "unparseable:empty", b"")
    add("soporte", "p1", DAY, PENDING)
    expected[("soporte", DAY)] = {"arrived": 10, "created": 4, "refused": {"reply": 2, "unknown_sender": 1},
                                  "failed": 1, "quarantined": 1, "pending": 1}
    add("soporte", "x1", OTHER_DAY, REJECTED, reason="auto_reply")
    expected[("soporte", OTHER_DAY)] = {"arrived": 1, "created": 0, "refused": {"auto_reply": 1},
                                        "failed": 0, "quarantined": 0, "pending": 0}
    add("ventas", "v1", DAY, PENDING, 3)
    add("ventas", "v1", DAY, CREATED, 3, request_id="idv", request_number=2000)
    add("ventas", "v2", DAY, REJECTED, reason="helpdesk_unknown_requester")
    expected[("ventas", DAY)] = {"arrived": 2, "created": 1, "refused": {"helpdesk_unknown_requester": 1},
                                 "failed": 0, "quarantined": 0, "pending": 0}
    return ledger, expected


def test_numbers_add_up_per_mailbox_and_day(ledger_url):
    ledger, expected = mixed_ledger(ledger_url)
    ledger.record_reconciliation({
        "run_id": "rec-1", "mailbox": "soporte", "day": DAY, "started_at": datetime.now(UTC),
        "finished_at": datetime.now(UTC), "status": "ok", "in_mailbox": 10, "in_ledger": 10,
    })
    messages, summary = audit_frames(ledger)
    ledger.dispose()

    assert len(messages) == sum(e["arrived"] for e in expected.values())
    rows = {(r["mailbox"], date.fromisoformat(r["day"])): r for r in audit.json_records(summary)}
    assert set(rows) == set(expected)
    for ident, want in expected.items():
        row = rows[ident]
        assert row["arrived"] == sum(row[c] for c in OUTCOME_COLUMNS), ident
        assert row["refused_total"] == sum(row["refused"].values())
        for name, value in want.items():
            assert row[name] == value, (ident, name)
    day = rows[("soporte", DAY)]
    # Latencies 10, 20, 30, 40 min (+ the seconds the test took): median 25, p95 38.5 (linear).
    assert day["latency_p50_min"] == pytest.approx(25, abs=0.5)
    assert day["latency_p95_min"] == pytest.approx(38.5, abs=0.5)
    assert (day["in_mailbox"], day["reconcile_status"]) == (10, "ok")
    assert rows[("soporte", OTHER_DAY)]["latency_p50_min"] is None
    # The message rows: no bodies, the kept raw linked, latency only for created ones.
    by_key = messages.set_index("message_key")
    assert pd.notna(by_key.loc["q1", "quarantine_id"]) and pd.isna(by_key.loc["r1", "quarantine_id"])
    assert by_key.loc["c0", "latency_min"] == pytest.approx(10, abs=0.5) and pd.isna(by_key.loc["r1", "latency_min"])
    assert "body" not in " ".join(messages.columns) and "description" not in messages.columns


def test_day_range_and_mailbox_filters(ledger_url):
    ledger, _ = mixed_ledger(ledger_url)
    _, only_day = audit_frames(ledger, since=OTHER_DAY, until=OTHER_DAY)
    messages, ventas = audit_frames(ledger, mailbox="ventas")
    ledger.dispose()
    assert list(only_day["day"]) == [OTHER_DAY]
    assert list(ventas["mailbox"]) == ["ventas"] and set(messages["mailbox"]) == {"ventas"}


@pytest.fixture
def audit_config(tmp_path, maildir):
    ledger_path = tmp_path / "ledger.db"
    ledger, expected = mixed_ledger(f"sqlite:///{ledger_path}")
    ledger.dispose()
    config = {
        "helpdesk": {"url": "http://127.0.0.1:9", "token_env": "HELPDESK_TOKEN"},
        "ledger": f"sqlite:///{ledger_path}",
        "data_dir": str(tmp_path / "data"),
        "mailboxes": [
            {"name": "soporte", "kind": "maildir", "path": str(maildir), "address": "soporte@helppeople.test"},
            {"name": "ventas", "kind": "maildir", "path": str(maildir), "address": "ventas@helppeople.test"},
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, expected


def _audit(*args: str):
    result = CliRunner().invoke(build_app(), [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_json_lines_have_the_documented_keys(audit_config):
    config, expected = audit_config
    lines = [json.loads(line) for line in _audit(config, "--format", "json").stdout.splitlines()]
    assert len(lines) == len(expected)
    for line in lines:
        assert {"mailbox", "day", "arrived", "created", "refused", "failed", "quarantined", "pending",
                "latency_p50_min", "latency_p95_min"} <= set(line)
        assert isinstance(line["refused"], dict)
        assert line["arrived"] == line["created"] + sum(line["refused"].values()) + line["failed"] \
            + line["quarantined"] + line["pending"]
    soporte = _audit(config, "--format", "json", "--mailbox", "soporte", "--from", DAY, "--to", DAY).stdout
    assert [json.loads(line)["arrived"] for line in soporte.splitlines()] == [10]


def test_messages_as_csv_one_row_per_message(audit_config, tmp_path):
    config, expected = audit_config
    out = tmp_path / "messages.csv"
    _audit(config, "--messages", "--format", "csv", "--out", out)
    frame = pd.read_csv(out)
    assert len(frame) == sum(e["arrived"] for e in expected.values())
    assert list(frame.columns) == audit.MESSAGE_SCHEMA.names
    assert frame["outcome"].value_counts().to_dict() == {"created": 5, "rejected": 5, "failed": 1,
                                                         "quarantined": 1, "pending": 1}


def test_parquet_opens_without_project_code(audit_config, tmp_path):
    config, expected = audit_config
    summary_path, messages_path = tmp_path / "summary.parquet", tmp_path / "messages.parquet"
    _audit(config, "--format", "parquet", "--out", summary_path)
    _audit(config, "--messages", "--format", "parquet", "--out", messages_path)

    summary = pd.read_parquet(summary_path)
    assert len(summary) == len(expected)
    assert (summary["arrived"] == summary[list(OUTCOME_COLUMNS)].sum(axis=1)).all()
    assert pq.read_schema(summary_path).equals(audit.SUMMARY_SCHEMA, check_metadata=False)
    messages = pd.read_parquet(messages_path)
    assert len(messages) == summary["arrived"].sum()
    assert str(messages["received_at"].dtype) == "datetime64[us, UTC]"
    assert pq.read_schema(messages_path).equals(audit.MESSAGE_SCHEMA, check_metadata=False)

    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    per_outcome = dict(con.execute(
        f"select outcome, count(*) from read_parquet('{messages_path}') group by outcome"
    ).fetchall())
    assert per_outcome["created"] == 5
    [(refused,)] = con.execute(
        f"select sum(cast(json_extract(refused, '$.reply') as int)) from read_parquet('{summary_path}')"
    ).fetchall()
    assert refused == 2
    con.close()


def test_table_and_bad_options(audit_config):
    config, _ = audit_config
    table = _audit(config).stdout
    assert "soporte" in table and "refused: reply 2, unknown_sender 1" in table
    runner = CliRunner()
    assert runner.invoke(build_app(), [str(config), "--format", "parquet"]).exit_code == 2  # needs --out
    assert runner.invoke(build_app(), [str(config), "--from", "2026-13-01"]).exit_code == 2
    assert runner.invoke(build_app(), [str(config), "--format", "xml"]).exit_code == 2
