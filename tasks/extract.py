"""The extract stage: which messages a run reads, and turning their bytes into parsed messages.

Pure (no Prefect): the window is computed from the clock and the mailbox's time zone, and parsing
never raises — a message no parser accepts becomes a quarantined result with its bytes kept (R19).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from tasks.message_key import message_key
from tasks.model import MessageRef, MessageResult, ParsedMessage, RawMessage
from tasks.parse import UnparseableMessage, parse_message

SCHEDULED, RERUN = "scheduled", "rerun"


@dataclass(frozen=True)
class Window:
    """The mail a run reads: received in [since, until), processed mail included only on reruns."""

    day: date
    since: datetime
    until: datetime
    mode: str  # SCHEDULED: today's new mail; RERUN: the whole given day (R3, R17)

    @property
    def include_processed(self) -> bool:
        return self.mode == RERUN


def day_window(tz: ZoneInfo, day: date | None, now: datetime, lookback_minutes: int = 0) -> Window:
    """R3: today (in the mailbox's zone) by default; a given day reruns that whole day.

    A scheduled run also looks ``lookback_minutes`` before midnight, so mail that arrived at 23:58
    is not lost when the next poll runs at 00:03; it is still only *unprocessed* mail.
    """
    if day is None:
        today = now.astimezone(tz).date()
        start = datetime.combine(today, time.min, tzinfo=tz)
        return Window(today, start - timedelta(minutes=lookback_minutes), start + timedelta(days=1), SCHEDULED)
    start = datetime.combine(day, time.min, tzinfo=tz)
    return Window(day, start, start + timedelta(days=1), RERUN)


def local_day(received_at: datetime, tz: ZoneInfo) -> date:
    return received_at.astimezone(tz).date()


def chunked(refs: Sequence[MessageRef], size: int) -> list[list[MessageRef]]:
    """Chunks for mapped task runs: one task run per chunk, never one per message."""
    iterator: Iterator[MessageRef] = iter(refs)
    chunks: list[list[MessageRef]] = []
    while batch := list(islice(iterator, size)):
        chunks.append(batch)
    return chunks


@dataclass
class Extracted:
    """A fetched message: parsed, or refused by the parser with its bytes kept."""

    ref: MessageRef
    raw: bytes
    parsed: ParsedMessage | None = None
    quarantine: MessageResult | None = None


def parse_raw(message: RawMessage) -> Extracted:
    """Parse one message; any failure becomes a named reason, never an exception."""
    try:
        return Extracted(message.ref, message.raw, parsed=parse_message(message.raw))
    except UnparseableMessage as exc:
        reason, detail = exc.reason, exc.detail
    except Exception as exc:
        reason, detail = "parser_error", f"{type(exc).__name__}: {exc}"
    key = message_key(message.raw)
    result = MessageResult(
        ref=message.ref,
        key=key,
        outcome="quarantined",
        reason=f"unparseable:{reason}" if not reason.startswith("unparseable") else reason,
        signals=(detail[:300],) if detail else (),
        size=len(message.raw),
        raw=message.raw,
    )
    return Extracted(message.ref, message.raw, quarantine=result)


def extract_messages(raw_messages: Iterable[RawMessage]) -> list[Extracted]:
    return [parse_raw(message) for message in raw_messages]
