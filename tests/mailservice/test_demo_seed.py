"""The demo mailbox: its messages, users and expected outcomes, and seeding it into a Maildir."""

from __future__ import annotations

import csv
import importlib.util
import json
import mailbox
import os
import sys
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from mailservice import demo_seed
from mailservice.demo_seed import OVERSIZE_FILE_NAME, OVERSIZE_MESSAGE_ID, seed_maildir

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
MESSAGES = DEMO / "messages"
NOW = datetime(2025, 12, 2, 14, 30, 15, 250000, tzinfo=UTC)
REASONS = {
    "unknown_sender", "missing_subject", "missing_body", "not_addressed_to_mailbox",
    "reply", "forward", "auto_reply", "bounce",
}


def demo_files() -> list[Path]:
    return sorted(MESSAGES.glob("*.eml"))


def expected() -> dict[str, dict]:
    return json.loads((DEMO / "expected.json").read_text(encoding="utf-8"))


def users() -> dict[str, str]:
    with (DEMO / "users.csv").open(encoding="utf-8", newline="") as handle:
        return {row["email"].casefold(): row["name"] for row in csv.DictReader(handle)}


def delivered(maildir: Path) -> list[Path]:
    return sorted((maildir / "new").iterdir())


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


# -- seeding -----------------------------------------------------------------------------------------


def test_seed_delivers_every_demo_message_and_the_oversize_one(tmp_path):
    maildir = tmp_path / "mailbox"
    count = seed_maildir(MESSAGES, maildir, oversize_mb=0.2, now=NOW)

    files = delivered(maildir)
    assert count == len(demo_files()) + 1 == len(files)
    assert len(mailbox.Maildir(maildir, create=False)) == count
    assert not list((maildir / "cur").iterdir()) and not list((maildir / "tmp").iterdir())
    sources = {path.read_bytes() for path in demo_files()}
    assert sources <= {path.read_bytes() for path in files}  # delivered bytes as-is


def test_seeded_names_start_with_the_received_time_and_mtime_is_it(tmp_path):
    maildir = tmp_path / "mailbox"
    seed_maildir(MESSAGES, maildir, oversize_mb=0.2, now=NOW)

    secs = int(NOW.timestamp())
    names = [path.name for path in delivered(maildir)]
    assert all(name.split(".", 1)[0] == str(secs) for name in names)
    assert len(set(names)) == len(names)
    assert all(os.path.getmtime(path) == pytest.approx(NOW.timestamp()) for path in delivered(maildir))


def test_second_seed_delivers_nothing_and_touches_nothing(tmp_path):
    maildir = tmp_path / "mailbox"
    seed_maildir(MESSAGES, maildir, oversize_mb=0.2, now=NOW)
    before = {path.name: path.stat().st_mtime for path in delivered(maildir)}

    assert seed_maildir(MESSAGES, maildir, oversize_mb=0.2) == 0
    assert {path.name: path.stat().st_mtime for path in delivered(maildir)} == before


def test_seed_counts_messages_already_moved_to_cur(tmp_path):
    maildir = tmp_path / "mailbox"
    seed_maildir(MESSAGES, maildir, oversize_mb=0.2, now=NOW)
    for path in delivered(maildir):
        path.rename(maildir / "cur" / f"{path.name}:2,S")

    assert seed_maildir(MESSAGES, maildir, oversize_mb=0.2, now=NOW) == 0
    assert not list((maildir / "new").iterdir())


def test_seed_fills_an_existing_empty_maildir(tmp_path):
    maildir = tmp_path / "mailbox"
    mailbox.Maildir(maildir, create=True)
    assert seed_maildir(MESSAGES, maildir, oversize_mb=0.2, now=NOW) == len(demo_files()) + 1


def test_seed_without_messages_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        seed_maildir(tmp_path, tmp_path / "mailbox")
    assert not (tmp_path / "mailbox").exists()


def test_oversize_message_is_a_known_senders_request_with_one_big_attachment(tmp_path):
    maildir = tmp_path / "mailbox"
    seed_maildir(MESSAGES, maildir, oversize_mb=0.2, now=NOW)
    by_id = {parse(path.read_bytes())["Message-ID"]: path for path in delivered(maildir)}
    msg = parse(by_id[OVERSIZE_MESSAGE_ID].read_bytes())

    entry = expected()[OVERSIZE_FILE_NAME]
    assert entry["message_id"] == OVERSIZE_MESSAGE_ID
    assert str(msg["Subject"]) == entry["title"]
    assert msg["From"].addresses[0].addr_spec.casefold() in users()
    assert msg["To"].addresses[0].addr_spec == "soporte@helppeople.test"
    assert not msg.defects and not any(part.defects for part in msg.walk())
    assert "nómina" in msg.get_body(("plain",)).get_content()
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "respaldo-base-datos.zip"
    assert len(attachment.get_content()) == int(0.2 * 1024 * 1024)


def test_oversize_attachment_bytes_are_fixed(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    seed_maildir(MESSAGES, first, oversize_mb=0.05, now=NOW)
    seed_maildir(MESSAGES, second, oversize_mb=0.05, now=NOW)
    assert [p.read_bytes() for p in delivered(first)] == [p.read_bytes() for p in delivered(second)]


def test_default_oversize_message_is_over_the_20_mb_limit(tmp_path):
    maildir = tmp_path / "mailbox"
    seed_maildir(MESSAGES, maildir, now=NOW)
    biggest = max(delivered(maildir), key=os.path.getsize)
    # 21 MiB of attachment, base64-encoded: well over 20 MB however one counts
    assert os.path.getsize(biggest) > 21 * 1024 * 1024 * 4 / 3


def test_cli_seeds_once_and_says_how_many(tmp_path, capsys):
    maildir = tmp_path / "mailbox"
    assert demo_seed.main([str(MESSAGES), str(maildir), "--oversize-mb", "0.1"]) == 0
    assert f"delivered {len(demo_files()) + 1} messages" in capsys.readouterr().out
    assert demo_seed.main([str(MESSAGES), str(maildir)]) == 0
    assert "delivered 0" in capsys.readouterr().out


# -- the demo messages ---------------------------------------------------------------------------------


def test_there_are_enough_demo_messages_and_all_are_small():
    assert len(demo_files()) >= 26
    assert all(path.stat().st_size < 60 * 1024 for path in demo_files())


@pytest.mark.parametrize("path", demo_files(), ids=lambda path: path.name)
def test_demo_message_parses_without_header_defects(path):
    raw = path.read_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF line ends only"
    msg = parse(raw)
    for name in ("From", "To", "Subject"):
        if msg[name] is not None:
            assert not msg[name].defects, f"{name}: {msg[name].defects}"
    for name in ("From", "To", "Message-ID", "Date", "MIME-Version"):
        assert msg[name] is not None, f"{path.name} has no {name}"
    assert msg.get_body(("plain", "html")) is not None


def test_expected_outcomes_cover_every_message_with_valid_reasons():
    outcomes = expected()
    assert set(outcomes) == {path.name for path in demo_files()} | {OVERSIZE_FILE_NAME}
    for name, entry in outcomes.items():
        assert entry["outcome"] in ("created", "rejected"), name
        assert entry["note"], name
        if entry["outcome"] == "created":
            assert entry["reason"] is None and entry["title"], name
            assert len(entry["title"]) <= 80, name
        else:
            assert entry["reason"] in REASONS and entry["title"] is None, name
    assert {entry["reason"] for entry in outcomes.values()} >= REASONS
    assert sum(entry["outcome"] == "created" for entry in outcomes.values()) >= 10


def test_expected_message_ids_match_the_messages():
    outcomes = expected()
    for path in demo_files():
        assert parse(path.read_bytes())["Message-ID"] == outcomes[path.name]["message_id"], path.name


def test_senders_of_accepted_mail_are_in_the_user_matrix_whatever_their_case():
    matrix = users()
    assert 10 <= len(matrix) <= 16
    outcomes = expected()
    written_in_other_case = 0
    for path in demo_files():
        sender = parse(path.read_bytes())["From"].addresses[0].addr_spec
        if outcomes[path.name]["reason"] == "unknown_sender":
            assert sender.casefold() not in matrix
        elif outcomes[path.name]["outcome"] == "created":
            assert sender.casefold() in matrix, path.name
            written_in_other_case += sender != sender.lower()
    assert written_in_other_case >= 2


def test_long_subject_title_is_cut_at_a_word_with_an_ellipsis():
    entry = expected()["12-asunto-120-caracteres.eml"]
    subject = str(parse((MESSAGES / "12-asunto-120-caracteres.eml").read_bytes())["Subject"])
    assert len(subject) == 120
    assert entry["title"].endswith("…") and len(entry["title"]) <= 80
    assert subject.startswith(entry["title"][:-1] + " ")


def _load_builder():
    spec = importlib.util.spec_from_file_location("demo_build_messages", DEMO / "build_messages.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_build_messages_reproduces_the_committed_demo_files(tmp_path):
    builder = _load_builder()
    builder.build(tmp_path)
    for path in [*demo_files(), DEMO / "users.csv", DEMO / "expected.json", DEMO / "README.md"]:
        relative = path.relative_to(DEMO)
        assert (tmp_path / relative).read_bytes() == path.read_bytes(), (
            f"{relative} is stale: run .venv/bin/python demo/build_messages.py"
        )
    assert sorted(p.name for p in (tmp_path / "messages").iterdir()) == [p.name for p in demo_files()]
