"""Property: any list of byte strings goes through the whole pure chain with one outcome each.

parse_raw → judge_chunk (classification + the Great Expectations suite, with a small user
matrix) → clean_chunk, on random bytes and on corpus messages mutated at random places. Nothing
may raise, and every input gets exactly one result: accepted with a draft, rejected with a
reason, or quarantined with its raw bytes kept (R19). Chunks are judged whole, as a run does,
because one suite run costs about 40 ms whatever the chunk size.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.drafts import CleanSettings, clean_chunk
from tasks.extract import parse_raw
from tasks.model import MessageRef, RawMessage
from tasks.user_matrix import matrix_frame
from tasks.validation import Limits, judge_chunk

CORPUS = sorted((Path(__file__).resolve().parents[1] / "corpus").glob("*.eml"))
SEEDS = [path.read_bytes() for path in CORPUS]
MAILBOX = "soporte@cliente.com.co"
MATRIX = matrix_frame(
    [
        {"id": "u-1", "email": "ana.quinonez@cliente.test", "name": "Ana"},
        {"id": "u-2", "email": "carlos.rodriguez@acme.test", "name": "Carlos"},
        {"id": "u-3", "email": "maria.pena@cliente.test", "name": "María"},
        {"id": "u-4", "email": "jose.munoz@acme.test", "name": "José"},
    ],
    datetime(2024, 4, 1, tzinfo=UTC),
)
JUNK = [b"=?", b"?=", b"\n\n", b"\r\n", b"--", b"=?utf-8?B?", b"=?utf-8?Q?", b"\x00", b"<", b">", b"cid:", b";",
        b"*0*=", b"''", b"%", b"<!--", b"</td>", b"<table>", b"\xff\xfe", b"\x78\x9f\x3e\x22", b"base64", b"\t"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A corpus message with a few slices replaced, inserted or deleted — or random bytes."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 5))):
        if not data:
            break
        start = draw(st.integers(0, len(data) - 1))
        end = min(len(data), start + draw(st.integers(0, 60)))
        junk = draw(st.one_of(st.binary(max_size=24), st.sampled_from(JUNK)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "replace":
            data[start:end] = junk
        elif action == "insert":
            data[start:start] = junk
        else:
            del data[start:end]
    return bytes(data)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(mutated(), min_size=1, max_size=10))
def test_every_input_gets_exactly_one_outcome_and_nothing_raises(raws: list[bytes]) -> None:
    received = datetime(2024, 4, 1, 12, tzinfo=UTC)
    refs = [MessageRef(f"m{i}", received, len(raw)) for i, raw in enumerate(raws)]
    extracted = [parse_raw(RawMessage(ref, raw)) for ref, raw in zip(refs, raws, strict=True)]
    judged, _ = judge_chunk(extracted, MATRIX, MAILBOX, Limits(subject_max_chars=80))
    results = clean_chunk(judged, CleanSettings())

    assert len(results) == len(raws)
    for ref, raw, result in zip(refs, raws, results, strict=True):
        assert result.ref == ref
        assert result.outcome in ("accepted", "rejected", "quarantined")
        if result.outcome == "accepted":
            assert result.draft is not None and result.draft.description.strip()
            assert len(result.draft.title) <= 80
            assert result.sender is not None
        elif result.outcome == "rejected":
            assert result.reason and result.draft is None
        else:
            assert result.raw == raw  # kept whole for replay (R19)
            assert result.reason and result.reason != "clean_error", result.signals
            assert result.reason != "unparseable:parse_error", result.signals  # the parser's safety net stays unused


def test_the_whole_corpus_in_one_chunk_gets_one_outcome_each() -> None:
    received = datetime(2024, 4, 1, 12, tzinfo=UTC)
    extracted = [parse_raw(RawMessage(MessageRef(p.name, received), p.read_bytes())) for p in CORPUS]
    judged, report = judge_chunk(extracted, MATRIX, MAILBOX, Limits())
    results = clean_chunk(judged, CleanSettings())
    assert [r.ref.source_id for r in results] == [p.name for p in CORPUS]
    outcomes = {r.outcome for r in results}
    assert outcomes == {"accepted", "rejected", "quarantined"}
    assert len(report.expectation_stats) == 7


# -- found by the properties above; the fixes belong to files outside this issue ---------------


def test_a_chunk_of_only_unparseable_mail_with_an_empty_user_matrix_is_judged() -> None:
    received = datetime(2024, 4, 1, 12, tzinfo=UTC)
    chunk = [parse_raw(RawMessage(MessageRef("g", received), b"\x00 no es correo"))]
    judged, _ = judge_chunk(chunk, matrix_frame([], received), MAILBOX, Limits())
    assert [j.verdict for j in judged] == [None]


def test_two_different_unparseable_blobs_get_different_keys() -> None:
    received = datetime(2024, 4, 1, 12, tzinfo=UTC)
    first = parse_raw(RawMessage(MessageRef("a", received), b"\x89PNG una imagen"))
    second = parse_raw(RawMessage(MessageRef("b", received), b"%PDF-1.4 un documento"))
    assert first.quarantine.key != second.quarantine.key
