"""The clean stage over a chunk: accepted messages become request drafts, the rest keep their reason.

Pure (no Prefect). Cleaning never raises: a message the cleaner chokes on is quarantined with its
bytes kept, so one pathological mail cannot fail a chunk (R19).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tasks.clean import build_request_draft
from tasks.message_key import message_key
from tasks.model import MessageResult, RequestDraft
from tasks.routing import RoutingRule, first_match
from tasks.validation import Judged


@dataclass(frozen=True)
class CleanSettings:
    subject_max_chars: int = 80
    attachment_max_bytes: int = 20 * 1024 * 1024
    keep_emoji: bool = False
    language: str = "es"
    routing: tuple[RoutingRule, ...] = ()


def draft_for(entry: Judged, settings: CleanSettings) -> RequestDraft:
    """The request a judged message makes (R7–R11); also used by ``mailservice inspect`` to preview."""
    return build_request_draft(
        entry.item.parsed,
        requester_id=entry.verdict.requester_id,
        received_at=entry.item.ref.received_at,
        subject_max_chars=settings.subject_max_chars,
        attachment_max_bytes=settings.attachment_max_bytes,
        keep_emoji=settings.keep_emoji,
        language=settings.language,
    )


def clean_chunk(judged: Sequence[Judged], settings: CleanSettings) -> list[MessageResult]:
    results: list[MessageResult] = []
    for entry in judged:
        item = entry.item
        if item.quarantine is not None:
            results.append(item.quarantine)
            continue
        parsed, verdict, kind = item.parsed, entry.verdict, entry.classification
        assert parsed is not None and verdict is not None and kind is not None
        common = {
            "ref": item.ref,
            "key": parsed.key,
            "message_id": parsed.message_id,
            "sender": parsed.sender,
            "subject": parsed.subject,
            "size": parsed.size,
            "kind": kind.kind,
            "sender_name": parsed.sender_name,
            "headers": parsed.headers | {"message-id": parsed.message_id or ""},
        }
        signals = tuple(kind.signals) + tuple(f"note:{n}" for n in verdict.notes)
        if not verdict.accepted:
            signals += tuple(f"reason:{r}" for r in verdict.reasons[1:])
            results.append(MessageResult(outcome="rejected", reason=verdict.reason, signals=signals, **common))
            continue
        try:
            draft = draft_for(entry, settings)
        except Exception as exc:
            results.append(
                MessageResult(
                    ref=item.ref,
                    key=message_key(item.raw),
                    outcome="quarantined",
                    reason="clean_error",
                    signals=(f"{type(exc).__name__}: {exc}"[:300],),
                    message_id=parsed.message_id,
                    sender=parsed.sender,
                    subject=parsed.subject,
                    size=parsed.size,
                    raw=item.raw,
                )
            )
            continue
        rule = first_match(settings.routing, parsed.sender or "", draft.title, draft.description)
        if rule is not None:
            draft.routing_rule, draft.category, draft.group = rule.name, rule.category, rule.group
            draft.priority, draft.tags = rule.priority, rule.tags
            signals += (f"routing:{rule.name}",)
        if not draft.description.strip():
            results.append(MessageResult(outcome="rejected", reason="missing_body", signals=signals, **common))
            continue
        # The raw bytes ride along so a request the helpdesk refuses can be kept whole for replay (R19).
        results.append(MessageResult(outcome="accepted", signals=signals, draft=draft, raw=item.raw, **common))
    return results
