"""The run's window (R3) and chunks; parsing never raises, it quarantines (R19)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from tasks.extract import RERUN, SCHEDULED, chunked, day_window, parse_raw
from tasks.model import MessageRef, RawMessage
from tests.support.mail import message

BOGOTA = ZoneInfo("America/Bogota")


def test_today_is_the_mailbox_day_not_utc():
    # 02:00 UTC on the 5th is still the 4th in Bogotá (UTC-5).
    window = day_window(BOGOTA, None, datetime(2026, 12, 5, 2, 0, tzinfo=UTC), lookback_minutes=0)
    assert window.day == date(2026, 12, 4)
    assert window.mode == SCHEDULED and not window.include_processed
    assert window.since == datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
    assert window.until == datetime(2026, 12, 5, 5, 0, tzinfo=UTC)


def test_scheduled_window_looks_back_before_midnight():
    window = day_window(BOGOTA, None, datetime(2026, 12, 4, 5, 3, tzinfo=UTC), lookback_minutes=60)
    assert window.since == datetime(2026, 12, 4, 4, 0, tzinfo=UTC)


def test_rerun_covers_the_whole_given_day_including_processed_mail():
    window = day_window(BOGOTA, date(2026, 11, 30), datetime(2026, 12, 4, tzinfo=UTC), lookback_minutes=60)
    assert window.mode == RERUN and window.include_processed
    assert (window.until - window.since).total_seconds() == 86400
    assert window.since == datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


def test_chunks_cover_every_message_once():
    refs = [MessageRef(str(i), datetime(2026, 12, 4, tzinfo=UTC)) for i in range(25)]
    chunks = chunked(refs, 10)
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert [r for c in chunks for r in c] == refs
    assert chunked([], 10) == []


def test_unparseable_bytes_are_quarantined_with_the_raw_kept():
    ref = MessageRef("x", datetime(2026, 12, 4, tzinfo=UTC))
    item = parse_raw(RawMessage(ref, b""))
    assert item.parsed is None
    assert item.quarantine.outcome == "quarantined"
    assert item.quarantine.reason.startswith("unparseable:")
    assert item.quarantine.raw == b""


def test_ordinary_mail_parses():
    ref = MessageRef("x", datetime(2026, 12, 4, tzinfo=UTC))
    item = parse_raw(RawMessage(ref, message()))
    assert item.quarantine is None and item.parsed.sender == "ana.quinonez@cliente.test"
