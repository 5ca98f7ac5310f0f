"""The load stage: create requests exactly once, record every outcome, then mark the mail (R14, R15).

The order of writes is the whole design:
  1. the ledger records the message as ``pending`` (write-ahead);
  2. the helpdesk is asked to create the request with the message's external id — the helpdesk
     answers a repeated create with the request it already has;
  3. the ledger records ``created`` with the request id and number;
  4. only then is the message marked processed in the mailbox.
A crash after 1 or 2 leaves ``pending``: the next run asks again and gets the same request back.
A crash after 3 leaves the message unmarked: the next run sees ``created`` and only marks it.
No Prefect here: the load task is a thin wrapper around ``load_chunk``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from blocks.helpdesk import HelpdeskApi, HelpdeskAuthError, HelpdeskRejected, HelpdeskUnavailable
from blocks.ledger import CREATED, FAILED, PENDING, QUARANTINED, REJECTED, Ledger, MessageFacts, Outcome
from blocks.mailbox import MailboxSource
from tasks.extract import local_day
from tasks.message_key import external_id
from tasks.model import MessageRef, MessageResult, RequestDraft


@dataclass(frozen=True)
class RequestOptions:
    """Per-mailbox fields of every request (R12, R13, R14)."""

    priority: str = "medium"
    notify_requester: bool = False
    assignment_bot: bool = False


@dataclass
class LoadContext:
    mailbox: str
    tz: ZoneInfo
    run_id: str
    ledger: Ledger
    helpdesk: HelpdeskApi
    source: MailboxSource
    options: RequestOptions
    # Set once the helpdesk stopped answering: later messages are not tried in this run.
    helpdesk_down: threading.Event = field(default_factory=threading.Event)
    # Asks the helpdesk for the user matrix again and returns the requester id for an address
    # (None: still unknown). Called when the helpdesk says a requester is unknown (a stale matrix).
    refresh_requester: Callable[[str], str | None] | None = None
    language: str = "es"


@dataclass
class Decision:
    """What happened to one message, for logs, artifacts and the run's totals."""

    key: str
    outcome: str  # created | already_created | rejected | failed | quarantined
    reason: str | None
    sender: str | None
    subject: str
    received_at: str
    request_number: int | None = None
    request_id: str | None = None
    # True when this run's create call returned the request (new, or recovered after a crash
    # between the helpdesk's commit and the ledger): the acknowledgement stage answers those.
    confirmed_now: bool = False


@dataclass
class ChunkOutcome:
    decisions: list[Decision] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(d.outcome for d in self.decisions)


def request_payload(ctx: LoadContext, draft: RequestDraft) -> dict:
    routed = {"category": draft.category, "group": draft.group, "tags": list(draft.tags)}
    return {
        "external_id": external_id(ctx.mailbox, draft.key),
        "title": draft.title,
        "description": draft.description,
        "requester_email": draft.requester_email,
        "requester_id": draft.requester_id,
        "channel": "mail",
        "priority": draft.priority or ctx.options.priority,
        "received_at": draft.received_at.isoformat(),
        "notify_requester": ctx.options.notify_requester,
        "assignment_bot": ctx.options.assignment_bot,
    } | {key: value for key, value in routed.items() if value}


def _facts(ctx: LoadContext, result: MessageResult) -> MessageFacts:
    draft = result.draft
    return MessageFacts(
        mailbox=ctx.mailbox,
        message_key=result.key,
        source_id=result.ref.source_id,
        received_at=result.ref.received_at,
        day=local_day(result.ref.received_at, ctx.tz),
        message_id=result.message_id,
        sender=result.sender,
        subject=result.subject,
        size_bytes=result.size,
        attachments=len(draft.attachments) if draft else 0,
        attachments_omitted=len(draft.omitted) if draft else 0,
        signals=result.signals,
    )


def load_chunk(
    ctx: LoadContext, results: Sequence[MessageResult], log: Callable[[str], None] = lambda _m: None
) -> ChunkOutcome:
    """Record and load one chunk. Raises HelpdeskAuthError (after recording what was done) — a person must act.

    Three ledger transactions per chunk: refusals and write-ahead ``pending`` rows; the helpdesk
    calls; the confirmed requests and failures. Marks in the mailbox come last.
    """
    outcome = ChunkOutcome()
    known = ctx.ledger.entries(ctx.mailbox, [r.key for r in results])
    to_mark: list[tuple[MessageRef, str]] = []
    first: list[Outcome] = []
    to_create: list[tuple[MessageResult, MessageFacts]] = []

    def decide(result: MessageResult, what: str, reason: str | None = None, number: int | None = None,
               request_id: str | None = None, confirmed_now: bool = False) -> None:
        outcome.decisions.append(
            Decision(
                result.key, what, reason, result.sender, result.subject, result.ref.received_at.isoformat(), number,
                request_id, confirmed_now,
            )
        )

    for result in results:
        facts = _facts(ctx, result)
        entry = known.get(result.key)
        if entry is not None and entry.outcome == CREATED:
            # A request exists for this message: never a second one (R3).
            decide(result, "already_created", number=entry.request_number)
            log(f"{result.key}: already request #{entry.request_number}; not created again")
            to_mark.append((result.ref, result.key))
        elif result.outcome == "quarantined":
            ctx.ledger.keep_raw(ctx.mailbox, result.key, result.reason or "unparseable", result.raw or b"")
            first.append(Outcome(facts, QUARANTINED, reason=result.reason))
            decide(result, "quarantined", result.reason)
            log(f"{result.key}: quarantined ({result.reason}); raw message kept for replay")
            to_mark.append((result.ref, result.key))
        elif result.outcome == "rejected":
            first.append(Outcome(facts, REJECTED, reason=result.reason))
            decide(result, "rejected", result.reason)
            signals = ", ".join(s for s in result.signals if not s.startswith("note:")) or "none"
            log(f"{result.key}: refused — {result.reason} — from {result.sender or 'no sender'} (signals: {signals})")
            to_mark.append((result.ref, result.key))
        elif ctx.helpdesk_down.is_set():
            first.append(Outcome(facts, FAILED, reason="helpdesk_unavailable", detail=NOT_ATTEMPTED))
            decide(result, "failed", "helpdesk_unavailable")
        else:
            first.append(Outcome(facts, PENDING, count_attempt=True))
            to_create.append((result, facts))
    ctx.ledger.record_many(first, run_id=ctx.run_id)

    confirmed: list[Outcome] = []
    try:
        for result, facts in to_create:
            if ctx.helpdesk_down.is_set():
                confirmed.append(Outcome(facts, FAILED, reason="helpdesk_unavailable", detail=NOT_ATTEMPTED))
                decide(result, "failed", "helpdesk_unavailable")
                continue
            confirmed.append(_create(ctx, result, facts, decide, log, to_mark))
    except HelpdeskAuthError:
        # Record what the helpdesk confirmed before it refused us, but mark nothing: a person must act.
        ctx.ledger.record_many(confirmed, run_id=ctx.run_id)
        raise
    # What the helpdesk confirmed is recorded, then marked (R15).
    ctx.ledger.record_many(confirmed, run_id=ctx.run_id)
    if to_mark:
        ctx.source.mark_processed([ref for ref, _ in to_mark])
        ctx.ledger.set_marked(ctx.mailbox, [key for _, key in to_mark])
    return outcome


NOT_ATTEMPTED = "not attempted: the helpdesk stopped answering earlier in this run"


def omission_note(filename: str, language: str) -> str:
    if language == "en":
        return f"Attachment left out: {filename} — the helpdesk refused it as too large."
    return f"Adjunto omitido: {filename} — el helpdesk lo rechazó por superar su tamaño máximo."


def _send(ctx: LoadContext, draft: RequestDraft, log: Callable[[str], None]):
    """Create the request, adapting once to the helpdesk's answers that have a remedy (issue 5 §4).

    413 for one attachment → the request is created without that file and says so; an unknown
    requester → the user matrix is refreshed once and, if the sender is known after all, retried.
    Anything else propagates: HelpdeskRejected (refused), HelpdeskUnavailable (pending), auth.
    """
    attachments = list(draft.attachments)
    description = draft.description
    requester_retried = False
    for _ in range(len(attachments) + 2):
        payload = request_payload(ctx, draft) | {"description": description}
        try:
            return ctx.helpdesk.create_request(payload, [(a.filename, a.content_type, a.data) for a in attachments])
        except HelpdeskRejected as exc:
            if exc.status == 413 and exc.filename and any(a.filename == exc.filename for a in attachments):
                attachments = [a for a in attachments if a.filename != exc.filename]
                description = f"{description}\n\n{omission_note(exc.filename, ctx.language)}"
                log(f"{draft.key}: the helpdesk refused {exc.filename} as too large; creating without it")
                continue
            if exc.code == "unknown_requester" and not requester_retried and ctx.refresh_requester:
                requester_retried = True
                requester_id = ctx.refresh_requester(draft.requester_email)
                if requester_id is None:
                    raise HelpdeskRejected(
                        str(exc), status=exc.status, code="unknown_sender", field=exc.field, api_message=exc.message
                    ) from None
                draft.requester_id = requester_id
                log(f"{draft.key}: requester unknown to the helpdesk; user matrix refreshed, retrying")
                continue
            raise
    raise HelpdeskRejected("the helpdesk kept refusing the attachments", status=413, code="attachment_too_large")


def _create(ctx, result, facts, decide, log, to_mark) -> Outcome:
    draft = result.draft
    try:
        created = _send(ctx, draft, log)
    except HelpdeskRejected as exc:
        reason = exc.code if exc.code == "unknown_sender" else f"helpdesk_{exc.code or exc.status}"
        if result.raw is not None and reason != "unknown_sender":
            ctx.ledger.keep_raw(ctx.mailbox, result.key, reason, result.raw)  # replayable once fixed (R19)
        decide(result, "rejected", reason)
        log(f"{result.key}: the helpdesk refused the request ({reason})")
        to_mark.append((result.ref, result.key))
        return Outcome(facts, REJECTED, reason=reason, detail=str(exc)[:2000])
    except HelpdeskUnavailable as exc:
        ctx.helpdesk_down.set()
        decide(result, "failed", "helpdesk_unavailable")
        log(f"{result.key}: not created, the helpdesk is unavailable; it stays pending for the next run")
        return Outcome(facts, FAILED, reason="helpdesk_unavailable", detail=str(exc)[:2000])
    decide(result, "created" if created.created else "already_created", number=created.number,
           request_id=created.id, confirmed_now=True)
    log(
        f"{result.key}: request #{created.number} "
        + ("created" if created.created else "already existed (recovered after an interrupted run)")
        + f" for {draft.requester_email}, {len(draft.attachments)} attachment(s)"
        + (f", {len(draft.omitted)} left out" if draft.omitted else "")
    )
    to_mark.append((result.ref, result.key))
    return Outcome(facts, CREATED, request_id=created.id, request_number=created.number)
