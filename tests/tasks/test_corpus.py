"""Every message of ``tests/corpus`` through parse → classify → build_request_draft.

Each ``NAME.eml`` has a ``NAME.expected.json`` beside it saying what a person reading the mail
expects: its kind (R6) and signals, the title (R7), lines of the description (R8–R11), and the
attachments with their names and sizes (R10, R11). Keys that a file leaves out are not checked.
Add a case by dropping in both files; no code change is needed.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.classify import classify
from tasks.clean import build_request_draft
from tasks.parse import UnparseableMessage, body_present, parse_message

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
CASES = sorted(CORPUS.glob("*.eml"))
RECEIVED_AT = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)


def _expected(path: Path) -> dict:
    return json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))


def _run(path: Path, expected: dict):
    msg = parse_message(path.read_bytes())
    kind = classify(msg, own_addresses=expected.get("own_addresses", ()))
    draft = build_request_draft(
        msg,
        requester_id="U-1",
        received_at=RECEIVED_AT,
        attachment_max_bytes=expected.get("attachment_max_bytes", 20 * 1024 * 1024),
    )
    return msg, kind, draft


def test_corpus_has_at_least_eighty_cases_each_with_expectations() -> None:
    assert len(CASES) >= 80
    for path in CASES:
        assert path.with_suffix(".expected.json").exists(), f"{path.name} has no .expected.json"


def test_generated_cases_are_the_committed_files() -> None:
    """``build_extra.py`` is deterministic and its outputs are committed unchanged."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_extra", CORPUS / "build_extra.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.build()
    assert len(files) >= 100
    stale = [name for name, data in files.items() if (CORPUS / name).read_bytes() != data]
    assert stale == [], "run: python tests/corpus/build_extra.py"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_message_gives_the_expected_request(path: Path) -> None:
    expected = _expected(path)
    if "unparseable" in expected:  # bytes that are not mail: refused with the named reason (R19)
        with pytest.raises(UnparseableMessage) as refused:
            parse_message(path.read_bytes())
        assert refused.value.reason == expected["unparseable"]
        return
    msg, kind, draft = _run(path, expected)

    assert body_present(msg) == expected.get("body_present", True)
    assert kind.kind == expected["kind"], kind.signals
    if "signals" in expected:
        assert sorted(kind.signals) == sorted(expected["signals"])
    for signal in expected.get("signals_include", []):
        assert signal in kind.signals, kind.signals
    for field in ("sender", "sender_name", "recipients", "date"):
        if field in expected:
            assert getattr(msg, field) == expected[field], field
    for defect in expected.get("defects_include", []):
        assert defect in msg.defects

    if "title" in expected:
        assert draft.title == expected["title"]
    assert len(draft.title) <= 80
    if expected.get("title_shortened"):
        assert draft.description.startswith(msg.subject.strip() + "\n\n")
    if "description_starts_with" in expected:
        assert draft.description.startswith(expected["description_starts_with"]), draft.description
    for text in expected.get("description_contains", []):
        assert text in draft.description, f"missing {text!r} in:\n{draft.description}"
    for text in expected.get("description_excludes", []):
        assert text not in draft.description, f"unexpected {text!r} in:\n{draft.description}"

    if "attachments" in expected:
        got = [(a.filename, a.size, a.inline) for a in draft.attachments]
        want = [
            (
                a["filename"],
                a["size"] if a.get("size") is not None else got[i][1] if i < len(got) else None,
                a.get("inline", got[i][2] if i < len(got) else None),
            )
            for i, a in enumerate(expected["attachments"])
        ]
        assert got == want
    omitted = [{"filename": o.filename, "size": o.size, "reason": o.reason} for o in draft.omitted]
    assert omitted == expected.get("omitted", [])


def test_corpus_throughput_is_reported() -> None:
    """Not a benchmark gate: prints parse+classify+clean messages per second over the corpus."""
    raws = [(p.read_bytes(), e) for p in CASES if "unparseable" not in (e := _expected(p))]
    rounds, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.5:
        for raw, expected in raws:
            msg = parse_message(raw)
            classify(msg, expected.get("own_addresses", ()))
            build_request_draft(msg, requester_id=None, received_at=RECEIVED_AT)
        rounds += 1
    elapsed = time.perf_counter() - start
    print(f"\ncorpus throughput: {rounds * len(raws) / elapsed:.0f} messages/s ({len(raws)} messages)")
