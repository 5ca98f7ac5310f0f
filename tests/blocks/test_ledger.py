"""The ledger on SQLite and PostgreSQL: outcomes, the never-downgrade rule, runs, kept raw mail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

from blocks.ledger import CREATED, PENDING, REJECTED, Ledger, MessageFacts, safe_url


def facts(key: str = "k1") -> MessageFacts:
    return MessageFacts(
        mailbox="soporte", message_key=key, source_id=f"src-{key}", received_at=datetime(2026, 12, 4, 15, tzinfo=UTC),
        day=date(2026, 12, 4), message_id=f"<{key}@x>", sender="ana@cliente.test", subject="Asunto",
        size_bytes=1234, signals=("header:in-reply-to",),
    )


def test_pending_then_created_then_never_downgraded(ledger_url):
    ledger = Ledger(ledger_url)
    ledger.record(facts(), PENDING, run_id="r1", count_attempt=True)
    assert ledger.entries("soporte", ["k1"])["k1"].outcome == PENDING
    ledger.record(facts(), CREATED, run_id="r1", request_id="42", request_number=1001)
    ledger.record(facts(), REJECTED, run_id="r2", reason="unknown_sender")
    entry = ledger.entries("soporte", ["k1"])["k1"]
    assert (entry.outcome, entry.request_number, entry.reason) == (CREATED, 1001, None)
    rows = ledger.message_rows("soporte", date(2026, 12, 4))
    assert len(rows) == 1 and rows[0]["attempts"] == 1 and rows[0]["signals"] == ["header:in-reply-to"]
    ledger.dispose()


def test_concurrent_records_of_one_message_make_one_row(ledger_url):
    ledger = Ledger(ledger_url)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: ledger.record(facts("same"), PENDING, run_id=f"r{i}"), range(8)))
    assert len(ledger.message_rows("soporte")) == 1
    ledger.dispose()


def test_marks_runs_and_kept_raw(ledger_url):
    ledger = Ledger(ledger_url)
    ledger.record(facts("a"), REJECTED, run_id="r1", reason="reply")
    ledger.set_marked("soporte", ["a"])
    assert ledger.entries("soporte", ["a"])["a"].marked_processed
    ledger.keep_raw("soporte", "a", "unparseable:not_an_email", b"\x00garbage")
    ledger.keep_raw("soporte", "a", "unparseable:not_an_email", b"\x00garbage")
    assert ledger.kept_raw("soporte", "a") == b"\x00garbage"
    ledger.start_run("run-1", "soporte", date(2026, 12, 4), "scheduled")
    ledger.finish_run("run-1", {"seen": 3, "created": 1, "rejected": {"reply": 2}}, "completed")
    run = ledger.run("run-1")
    assert run["status"] == "completed" and run["rejected"] == {"reply": 2} and run["summary"]["seen"] == 3
    ledger.dispose()


def test_passwords_never_shown():
    shown = safe_url("postgresql+psycopg://svc:s3cret@127.0.0.1/ledger")
    assert "s3cret" not in shown and "***" in shown
    assert "s3cret" not in repr(Ledger("sqlite://"))
