"""The Great Expectations suite gives the right reason per message (R4, R5, R6) and notes (R7, R11)."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.extract import parse_raw
from tasks.model import MessageRef, RawMessage
from tasks.user_matrix import matrix_frame
from tasks.validation import Limits, judge_chunk
from tests.support.mail import message

MATRIX = matrix_frame(
    [{"id": "u-1", "email": "ana.quinonez@cliente.test", "name": "Ana"}], datetime.now(UTC)
)
MAILBOX = "soporte@helppeople.test"


def judge(*raws: bytes, limits: Limits = Limits()):
    ref = MessageRef("x", datetime.now(UTC))
    chunk = [parse_raw(RawMessage(ref, raw)) for raw in raws]
    judged, report = judge_chunk(chunk, MATRIX, MAILBOX, limits)
    return [j.verdict for j in judged], report


def test_each_message_gets_its_own_reason_from_one_suite_run():
    verdicts, report = judge(
        message(),
        message(sender="desconocido@otro.test"),
        message(subject="RE: Caso abierto", In_Reply_To="<x@y>"),
        message(subject="RV: Factura"),
        message(subject="Respuesta automática: Fuera de la oficina", Auto_Submitted="auto-replied"),
        message(to="ventas@helppeople.test"),
        message(subject="   "),
        message(body="   \n"),
    )
    assert [v.reason for v in verdicts] == [
        None, "unknown_sender", "reply", "forward", "auto_reply", "not_addressed_to_mailbox",
        "missing_subject", "missing_body",
    ]
    assert verdicts[0].accepted and verdicts[0].requester_id == "u-1"
    failed = {s["reason"]: s["unexpected"] for s in report.expectation_stats if not s["success"]}
    assert failed == {"{kind}": 3, "unknown_sender": 1, "not_addressed_to_mailbox": 1, "missing_subject": 1,
                      "missing_body": 1}


def test_sender_case_does_not_matter_r4():
    [verdict], _ = judge(message(sender="ANA.Quinonez@Cliente.TEST"))
    assert verdict.accepted


def test_all_reasons_are_kept_in_precedence_order():
    [verdict], _ = judge(message(sender="desconocido@otro.test", subject="RE: algo", to="otro@x.test"))
    assert verdict.reasons == ("reply", "unknown_sender", "not_addressed_to_mailbox")


def test_long_subject_and_big_attachment_are_notes_not_refusals():
    long_subject = " ".join(["palabra"] * 20)
    [verdict], _ = judge(message(subject=long_subject), limits=Limits(subject_max_chars=80))
    assert verdict.accepted and verdict.notes == ("subject_shortened",)


def test_empty_chunk_is_fine():
    verdicts, report = judge()
    assert verdicts == [] and report.expectation_stats == []


def test_frame_has_no_nulls_in_checked_columns():
    from tasks.validation import validation_frame

    ref = MessageRef("x", datetime.now(UTC))
    item = parse_raw(RawMessage(ref, message(sender="")))
    from tasks.classify import classify

    frame = validation_frame([(ref, item.parsed, classify(item.parsed))], MATRIX, MAILBOX, Limits())
    checked = frame.drop(columns=["requester_id"])
    assert not checked.isna().any().any()
    assert not frame.loc[0, "sender_known"]
