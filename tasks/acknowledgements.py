"""The acknowledgement stage (R12, notify mode ``email``): after load, the sender hears back.

Runs after a chunk is loaded, on what load decided. The rules are ``tasks.acknowledge`` (pure);
this module adds the state: the ack store says who was already answered (never twice, whatever the
reruns) and how many were sent to a sender in the last hour (rate limit). A send that fails never
touches the request: it is recorded with the built message and resent once by a later run.
No Prefect here; the task wrapper is in ``tasks.stages``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from blocks.ack_store import FAILED, SENDING, SENT, SKIPPED, AckStore
from tasks.acknowledge import AckPolicy, build_reply, decide_ack, render, request_link
from tasks.load import ChunkOutcome
from tasks.model import MessageResult


class Sender(Protocol):
    def send(self, message_bytes: bytes, from_address: str, to_addresses: Sequence[str]) -> None: ...


@dataclass
class AckContext:
    mailbox: str
    mailbox_address: str
    tz: ZoneInfo
    language: str
    from_address: str
    from_name: str | None
    message_id_domain: str
    template_dir: Path
    link_template: str | None
    policy: AckPolicy
    sender: Sender
    store: AckStore


@dataclass
class AckSummary:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0


def _eligible(decision) -> str | None:
    """The outcome to judge: requests created by this run; refusals (for the unknown-sender notice)."""
    if decision.outcome == "created" or (decision.outcome == "already_created" and decision.confirmed_now):
        return "created"
    if decision.outcome == "rejected":
        return "rejected"
    return None


def acknowledge_chunk(
    ctx: AckContext, results: Sequence[MessageResult], loaded: ChunkOutcome, log: Callable[[str], None]
) -> AckSummary:
    summary = AckSummary()
    by_key = {r.key: r for r in results}
    candidates = [(d, _eligible(d)) for d in loaded.decisions]
    candidates = [(d, what) for d, what in candidates if what and d.key in by_key]
    known = ctx.store.known(ctx.mailbox, [d.key for d, _ in candidates])
    now = datetime.now(UTC)
    for decision, what in candidates:
        result = by_key[decision.key]
        sender = (result.sender or "").lower()
        if (decision.key, "ack") in known or (decision.key, "unknown_sender") in known:
            continue  # answered (or deliberately not) before: never twice
        verdict = decide_ack(
            outcome=what,
            reason=decision.reason,
            kind=result.kind,
            sender=sender,
            headers=result.headers,
            policy=ctx.policy,
            sent_last_hour_to_sender=ctx.store.count_sent(ctx.mailbox, sender, "ack", now - timedelta(hours=1)),
            unknown_notices_today_to_sender=ctx.store.count_sent(
                ctx.mailbox, sender, "unknown_sender", now - timedelta(days=1)
            ),
        )
        if not verdict.send:
            if what == "created":  # a request nobody was told about is worth a line in the audit
                ctx.store.claim(ctx.mailbox, decision.key, "ack", recipient=sender, status=SKIPPED,
                                why=verdict.why[:200], request_number=decision.request_number)
                summary.skipped += 1
                log(f"{decision.key}: no acknowledgement — {verdict.why}")
            continue
        raw = _build(ctx, verdict.template, result, decision)
        row = ctx.store.claim(ctx.mailbox, decision.key, verdict.template, recipient=sender, status=SENDING,
                              why=verdict.why[:200], request_number=decision.request_number, raw=raw)
        if row is None:
            continue  # another run claimed it first
        try:
            ctx.sender.send(raw, ctx.from_address, [sender])
        except Exception as exc:  # any failure: recorded, retried once later, request untouched
            ctx.store.finish(row, FAILED, error=str(exc)[:2000])
            summary.failed += 1
            log(f"{decision.key}: acknowledgement to {sender} failed ({type(exc).__name__}); retried next run")
            continue
        ctx.store.finish(row, SENT)
        summary.sent += 1
        log(f"{decision.key}: {verdict.template} sent to {sender}")
    return summary


def retry_failed(ctx: AckContext, log: Callable[[str], None]) -> AckSummary:
    """Resend, once, the acknowledgements an earlier run could not send (the same message bytes)."""
    summary = AckSummary()
    for pending in ctx.store.to_retry(ctx.mailbox):
        try:
            ctx.sender.send(pending.raw, ctx.from_address, [pending.recipient])
        except Exception as exc:  # the same: recorded, never raised
            ctx.store.finish(pending.id, FAILED, error=str(exc)[:2000])
            summary.failed += 1
            log(f"{pending.message_key}: acknowledgement retry to {pending.recipient} failed again; given up")
            continue
        ctx.store.finish(pending.id, SENT)
        summary.retried += 1
        log(f"{pending.message_key}: acknowledgement to {pending.recipient} sent on retry")
    return summary


def _build(ctx: AckContext, template: str, result: MessageResult, decision) -> bytes:
    draft = result.draft
    subject, body = render(
        ctx.template_dir,
        template,
        ctx.language,
        number=decision.request_number,
        title=draft.title if draft else result.subject,
        received_at=result.ref.received_at,
        timezone=ctx.tz,
        link=request_link(ctx.link_template, decision.request_number, decision.request_id),
        sender_name=result.sender_name,
        sender_address=result.sender,
        original_subject=result.subject,
        mailbox_address=ctx.mailbox_address,
    )
    return build_reply(
        original_message_id=result.headers.get("message-id") or result.message_id,
        original_references=result.headers.get("references"),
        original_subject=result.subject,
        from_address=ctx.from_address,
        from_name=ctx.from_name,
        to_address=result.sender or "",
        subject=subject,
        body=body,
        message_id_domain=ctx.message_id_domain,
        request_number=decision.request_number,
    )
