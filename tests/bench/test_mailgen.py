"""bench/mailgen.py: realistic, deterministic benchmark mail, fast enough to make thousands."""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_mailgen():
    if "mailgen" in sys.modules:  # bench/bench_ingest.py imports it under this name too
        return sys.modules["mailgen"]
    spec = importlib.util.spec_from_file_location("mailgen", ROOT / "bench" / "mailgen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mailgen = _load_mailgen()
USERS = mailgen.make_users(60)
KNOWN = [email for email, _ in USERS]
RECEIVED = datetime(2025, 12, 2, 15, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def thousand() -> list[bytes]:
    return list(mailgen.generate_messages(1000, known_senders=KNOWN))


@pytest.fixture(scope="module")
def parsed(thousand) -> list:
    return [parse(raw) for raw in thousand]


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def sender_of(raw: bytes) -> str:
    """The From address, read cheaply (the header parser alone, without header objects)."""
    return parseaddr(BytesHeaderParser(policy=policy.compat32).parsebytes(raw)["From"])[1]


def test_generates_n_messages_that_parse_cleanly(thousand, parsed):
    assert len(thousand) == 1000
    for raw, msg in zip(thousand, parsed, strict=True):
        assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF line ends only"
        for name in ("From", "To", "Subject"):
            assert not msg[name].defects, (name, msg[name].defects)
        assert msg["Message-ID"] and msg["Date"] and msg["MIME-Version"] == "1.0"
        assert not msg.defects and not any(part.defects for part in msg.walk())
        body = msg.get_body(("plain", "html"))
        assert body is not None and body.get_content().strip()


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    first = list(mailgen.generate_messages(50, seed=3, known_senders=KNOWN))
    assert first == list(mailgen.generate_messages(50, seed=3, known_senders=KNOWN))
    assert first != list(mailgen.generate_messages(50, seed=4, known_senders=KNOWN))


def test_message_ids_are_unique(parsed):
    ids = [msg["Message-ID"] for msg in parsed]
    assert len(set(ids)) == len(ids)


def test_share_of_unknown_senders_is_roughly_the_one_asked_for():
    known = {email.casefold() for email in KNOWN}
    raws = list(mailgen.generate_messages(1000, seed=11, known_senders=KNOWN, unknown_share=0.2))
    unknown = sum(sender_of(raw).casefold() not in known for raw in raws)
    assert 0.16 <= unknown / 1000 <= 0.24


def test_shares_of_replies_and_auto_replies_show_in_the_expected_outcome(parsed):
    expect = Counter(msg["X-Mailgen-Expect"] for msg in parsed)
    assert expect.keys() <= {"created", "unknown_sender", "reply", "forward", "auto_reply"}
    assert 0.07 <= (expect["reply"] + expect["forward"]) / 1000 <= 0.13
    assert 0.015 <= expect["auto_reply"] / 1000 <= 0.05
    assert 0.02 <= expect["unknown_sender"] / 1000 <= 0.08
    assert expect["created"] >= 750


def test_replies_and_auto_replies_carry_their_signals(parsed):
    for msg in parsed:
        subject = str(msg["Subject"])
        if msg["X-Mailgen-Expect"] == "reply":
            assert subject.lower().startswith("re") and (":" in subject[:8])
        elif msg["X-Mailgen-Expect"] == "forward":
            assert subject.split(":", 1)[0] in ("RV", "FW", "Fwd")
            assert msg["In-Reply-To"] is None
        elif msg["X-Mailgen-Expect"] == "auto_reply":
            assert any(msg[h] for h in ("Auto-Submitted", "X-Auto-Response-Suppress", "Precedence", "X-Autoreply"))


def test_mix_holds_plain_outlook_html_screenshots_and_attachments(thousand, parsed):
    seen = Counter()
    for raw, msg in zip(thousand, parsed, strict=True):
        seen[msg.get_content_type()] += 1
        if any(part.get_content_type() == "multipart/related" for part in msg.walk()):
            seen["related"] += 1
            html = msg.get_body(("html",)).get_content()
            image = next(part for part in msg.walk() if part.get_content_type() == "image/png")
            assert f"cid:{image['Content-ID'].strip('<>')}" in html
        if b"class=3DMsoNormal" in raw:
            seen["outlook"] += 1
        if b"<table" in raw:
            seen["table"] += 1
        seen["attachments"] += sum(1 for _ in msg.iter_attachments())
    assert seen["text/plain"] >= 150 and seen["multipart/alternative"] >= 300
    assert seen["related"] >= 50 and seen["outlook"] >= 100 and seen["table"] >= 30
    assert seen["multipart/mixed"] >= 50 and seen["attachments"] >= 50


def test_sizes_average_about_the_requested_size():
    for avg_kb in (8, 20):
        raws = list(mailgen.generate_messages(1500, seed=5, known_senders=KNOWN, avg_kb=avg_kb))
        average = sum(map(len, raws)) / len(raws) / 1024
        assert 0.7 * avg_kb <= average <= 1.35 * avg_kb, (avg_kb, average)


def test_text_is_spanish_with_accents(thousand):
    text = b"".join(thousand[:50]).decode("utf-8", "replace")
    assert "Cordial saludo" in text or "Buenos días" in text
    assert any(word in text for word in ("solicitud", "módulo", "nómina", "facturación"))


def test_generating_a_thousand_takes_well_under_ten_seconds():
    began = time.perf_counter()
    count = sum(1 for _ in mailgen.generate_messages(1000, seed=9, known_senders=KNOWN))
    assert count == 1000
    assert time.perf_counter() - began < 5


def test_write_maildir_names_files_with_the_received_time(tmp_path):
    raws = list(mailgen.generate_messages(20, known_senders=KNOWN))
    assert mailgen.write_maildir(tmp_path / "box", raws, RECEIVED) == 20
    files = sorted((tmp_path / "box" / "new").iterdir())
    assert len(files) == 20
    assert all(path.name.startswith(f"{int(RECEIVED.timestamp())}.") for path in files)
    assert all(os.path.getmtime(path) == pytest.approx(RECEIVED.timestamp()) for path in files)
    assert sorted(path.read_bytes() for path in files) == sorted(raws)


def test_write_maildir_twice_at_the_same_time_keeps_both_batches(tmp_path):
    first = list(mailgen.generate_messages(5, seed=1, known_senders=KNOWN))
    second = list(mailgen.generate_messages(5, seed=2, known_senders=KNOWN))
    mailgen.write_maildir(tmp_path / "box", first, RECEIVED)
    mailgen.write_maildir(tmp_path / "box", second, RECEIVED)
    stored = sorted(path.read_bytes() for path in (tmp_path / "box" / "new").iterdir())
    assert stored == sorted(first + second)


def test_write_users_csv_is_a_user_matrix(tmp_path):
    path = tmp_path / "users.csv"
    assert mailgen.write_users_csv(path, USERS) == len(USERS)
    assert mailgen.write_users_csv(tmp_path / "plain.csv", ["ana.gomez@cliente.test"]) == 1
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["email"] for row in rows] == KNOWN and all(row["name"] for row in rows)
    assert len({row["email"].casefold() for row in rows}) == len(rows)
    plain = (tmp_path / "plain.csv").read_text(encoding="utf-8")
    assert plain == "email,name\nana.gomez@cliente.test,Ana Gomez\n"


def test_cli_writes_a_maildir_and_the_users(tmp_path, capsys):
    maildir, users = tmp_path / "box", tmp_path / "users.csv"
    assert mailgen.main(["--n", "30", "--maildir", str(maildir), "--users", str(users), "--known", "25"]) == 0
    assert len(list((maildir / "new").iterdir())) == 30
    assert len(users.read_text(encoding="utf-8").splitlines()) == 26
    assert "wrote 30 messages" in capsys.readouterr().out


def test_no_known_senders_is_a_clear_error():
    with pytest.raises(ValueError, match="known_senders"):
        next(mailgen.generate_messages(1, known_senders=[]))
