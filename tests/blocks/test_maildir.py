"""The Maildir block: the day window by delivery time, the processed mark, nothing ever deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from blocks.mailbox import MailboxUnavailable
from blocks.maildir import PROCESSED_KEYWORD, MaildirMailbox
from tests.support.mail import deliver, message

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def test_lists_only_the_window_and_marks_with_a_keyword(maildir):
    yesterday = deliver(maildir, message(subject="ayer"), NOW - timedelta(days=1))
    today = deliver(maildir, message(subject="hoy"), NOW)
    box = MaildirMailbox(path=str(maildir))
    start = NOW.replace(hour=0)
    refs = box.list_refs(start, start + timedelta(days=1), include_processed=False)
    assert [r.source_id for r in refs] == [today]
    assert refs[0].received_at == NOW and refs[0].size > 0

    box.mark_processed(refs)
    assert box.list_refs(start, start + timedelta(days=1), include_processed=False) == []
    again = box.list_refs(start, start + timedelta(days=1), include_processed=True)
    assert [(r.source_id, r.processed) for r in again] == [(today, True)]
    # The mark is a Dovecot keyword letter; the message moved to cur/ and still exists whole.
    assert f"0 {PROCESSED_KEYWORD}" in (maildir / "dovecot-keywords").read_text()
    [marked] = list((maildir / "cur").iterdir())
    assert marked.name == f"{today}:2,a"
    assert b"Subject: hoy" in next(iter(box.fetch(again))).raw
    assert (maildir / "new" / yesterday).exists()


def test_mark_keeps_existing_flags_and_keyword_letters(maildir):
    (maildir / "dovecot-keywords").write_text("0 $Label1\n")
    name = deliver(maildir, message(), NOW)
    (maildir / "new" / name).rename(maildir / "cur" / f"{name}:2,S")
    box = MaildirMailbox(path=str(maildir))
    refs = box.list_refs(NOW - timedelta(hours=1), NOW + timedelta(hours=1), include_processed=False)
    box.mark_processed(refs)
    assert (maildir / "cur" / f"{name}:2,Sb").exists()


def test_a_message_gone_since_listing_is_skipped(maildir):
    name = deliver(maildir, message(), NOW)
    box = MaildirMailbox(path=str(maildir))
    refs = box.list_refs(NOW - timedelta(hours=1), NOW + timedelta(hours=1), include_processed=False)
    (maildir / "new" / name).unlink()
    assert list(box.fetch(refs)) == []


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(MailboxUnavailable, match="expected the folders cur/ and new/"):
        MaildirMailbox(path=str(tmp_path / "nope")).list_refs(NOW, NOW, include_processed=False)
