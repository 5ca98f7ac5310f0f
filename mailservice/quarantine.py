"""Kept mail (R19): list it, replay it through the pipeline, export it as ``.eml``.

Every message the pipeline could not turn into a request for a reason a person can fix (no parser
accepted it, the cleaner choked on it, the helpdesk refused the request) is kept whole in the
ledger's ``mail_raw_messages``. Nothing there expires on its own.

A replay feeds the kept bytes through the very functions an ingest run uses — parse
(``tasks.extract.parse_raw``), validate (``tasks.validation.judge_chunk``, the Great Expectations
suite), clean (``tasks.drafts.clean_chunk``) and load (``tasks.load.load_chunk``) — so exactly-once
holds the same way: the ledger row of the message and the helpdesk's external id make a second
replay, or a replay of a message that has a request, create nothing. The mailbox is not touched
(the message was already marked when it was kept). The raw stays kept; each replay adds a row to
``mail_replays`` and the replay is a run (mode ``replay``) in ``mail_runs``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from blocks.helpdesk import HelpdeskApi
from blocks.ledger import CREATED, Ledger
from mailservice.audit import utc
from mailservice.config import ServiceConfig
from tasks import drafts, extract, load, user_matrix, validation
from tasks.model import MessageRef, RawMessage


class KeptMailSource:
    """The 'mailbox' of a replay: the kept bytes. Nothing to list, nothing to mark."""

    def __init__(self, messages: Sequence[RawMessage] = ()) -> None:
        self._raw = {m.ref.source_id: m for m in messages}

    def list_refs(self, since: datetime, until: datetime, *, include_processed: bool) -> list[MessageRef]:
        return []

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[RawMessage]:
        for ref in refs:
            if ref.source_id in self._raw:
                yield self._raw[ref.source_id]

    def mark_processed(self, refs: Sequence[MessageRef]) -> None:
        return None  # the message was marked in its mailbox when it was kept


@dataclass(frozen=True)
class ReplayResult:
    raw_id: int
    mailbox: str
    message_key: str
    outcome: str  # created | already_created | rejected | failed | quarantined | error
    reason: str | None = None
    request_number: int | None = None


def age_text(kept_at: datetime, now: datetime) -> str:
    """'3d 4h', '2h 5m', '45s': how long a message has been kept."""
    seconds = max(0, int((now - kept_at).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def list_kept(ledger: Ledger, mailbox: str | None = None, now: datetime | None = None) -> list[dict]:
    """Kept messages, oldest first: id, mailbox, key, reason, age, size, the message's current outcome
    in the ledger and its replays."""
    now = now or datetime.now(UTC)
    kept = ledger.kept_raw_index(mailbox)
    replays: dict[int, list[dict]] = {}
    for row in ledger.replay_rows(mailbox):
        replays.setdefault(row["raw_id"], []).append(row)
    outcomes: dict[tuple[str, str], dict] = {}
    for box in {k["mailbox"] for k in kept}:
        keys = [k["message_key"] for k in kept if k["mailbox"] == box]
        for key, entry in ledger.entries(box, keys).items():
            outcomes[(box, key)] = {"outcome": entry.outcome, "request_number": entry.request_number}
    listing = []
    for row in kept:
        kept_at = utc(row["kept_at"])
        done = replays.get(row["id"], [])
        last = done[-1] if done else None
        current = outcomes.get((row["mailbox"], row["message_key"]), {})
        listing.append(
            {
                "id": row["id"],
                "mailbox": row["mailbox"],
                "key": row["message_key"],
                "reason": row["reason"],
                "kept_at": kept_at.isoformat(),
                "age": age_text(kept_at, now),
                "size": int(row["size_bytes"] or 0),
                "outcome": current.get("outcome"),
                "request_number": current.get("request_number"),
                "replays": len(done),
                "last_replay": (
                    f"{utc(last['replayed_at']).isoformat()} {last['outcome']}"
                    + (f" #{last['request_number']}" if last["request_number"] else "")
                    if last
                    else None
                ),
            }
        )
    return listing


def ids_to_replay(ledger: Ledger, mailbox: str) -> list[int]:
    """``--all --mailbox M``: every kept message of M that has no request yet."""
    return [row["id"] for row in list_kept(ledger, mailbox) if row["outcome"] != CREATED]


def replay(
    config: ServiceConfig,
    ledger: Ledger,
    helpdesk: HelpdeskApi,
    raw_ids: Sequence[int],
    log: Callable[[str], None] = lambda _m: None,
) -> list[ReplayResult]:
    """Replay kept messages through parse → validate → clean → load; returns one result per id."""
    results: list[ReplayResult] = []
    by_mailbox: dict[str, list[dict]] = {}
    for raw_id in raw_ids:
        row = ledger.kept_raw_by_id(raw_id)
        if row is None:
            results.append(ReplayResult(raw_id, "", "", "error", "no kept message with this id"))
            continue
        if row["mailbox"] not in {b.name for b in config.mailboxes}:
            results.append(
                ReplayResult(raw_id, row["mailbox"], row["message_key"], "error", "mailbox not in the config")
            )
            continue
        by_mailbox.setdefault(row["mailbox"], []).append(row)
    for mailbox, rows in by_mailbox.items():
        results += _replay_mailbox(config, ledger, helpdesk, mailbox, rows, log)
    order = {raw_id: i for i, raw_id in enumerate(raw_ids)}
    return sorted(results, key=lambda r: order.get(r.raw_id, len(order)))


def _replay_mailbox(
    config: ServiceConfig,
    ledger: Ledger,
    helpdesk: HelpdeskApi,
    mailbox: str,
    rows: list[dict],
    log: Callable[[str], None],
) -> list[ReplayResult]:
    box = config.mailbox(mailbox)
    now = datetime.now(UTC)
    run_id = f"replay-{uuid.uuid4()}"
    known = {r["message_key"]: r for r in ledger.message_rows_for_keys(mailbox, [r["message_key"] for r in rows])}
    raws = []
    for row in rows:
        facts = known.get(row["message_key"])
        received = utc(facts["received_at"]) if facts else utc(row["kept_at"])
        source_id = facts["source_id"] if facts else f"kept:{row['id']}"
        ref = MessageRef(source_id, received, len(row["raw"]), processed=True)
        raws.append(RawMessage(ref, bytes(row["raw"])))

    ledger.start_run(run_id, mailbox, now.astimezone(box.tz).date(), "replay")
    decisions: list[load.Decision] = []
    try:
        dataset = user_matrix.dataset_path(config.data_dir, helpdesk.url)
        ttl = timedelta(minutes=config.user_matrix_ttl_minutes)
        matrix, _ = user_matrix.current_matrix(dataset, ttl, helpdesk.list_users)
        extracted = extract.extract_messages(raws)
        limits = validation.Limits(box.subject_max_chars, box.attachment_max_bytes, box.keep_emoji)
        judged, _report = validation.judge_chunk(extracted, matrix, box.address, limits)
        settings = drafts.CleanSettings(box.subject_max_chars, box.attachment_max_bytes, box.keep_emoji, box.language)
        cleaned = drafts.clean_chunk(judged, settings)
        ctx = load.LoadContext(
            mailbox=mailbox,
            tz=box.tz,
            run_id=run_id,
            ledger=ledger,
            helpdesk=helpdesk,
            source=KeptMailSource(raws),
            options=load.RequestOptions(box.priority, box.notify_requester, box.assignment_bot),
            refresh_requester=user_matrix.refresher(dataset, helpdesk.list_users),
            language=box.language,
        )
        decisions = load.load_chunk(ctx, cleaned, log=log).decisions
    except Exception as exc:
        ledger.finish_run(run_id, _summary(mailbox, now, box, rows, decisions), "failed",
                          error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    summary = _summary(mailbox, now, box, rows, decisions)
    ledger.finish_run(run_id, summary, "completed" if not summary["failed"] else "partial")

    by_key = {d.key: d for d in decisions}
    results = []
    for row in rows:
        decision = by_key.get(row["message_key"])
        if decision is None:  # the bytes no longer hash to the kept key: should never happen
            results.append(ReplayResult(row["id"], mailbox, row["message_key"], "error", "key mismatch"))
            continue
        ledger.record_replay(
            row["id"], mailbox, row["message_key"], run_id=run_id, outcome=decision.outcome,
            reason=decision.reason, request_number=decision.request_number,
        )
        results.append(
            ReplayResult(row["id"], mailbox, row["message_key"], decision.outcome, decision.reason,
                         decision.request_number)
        )
    return results


def _summary(mailbox: str, now: datetime, box, rows: list[dict], decisions: list[load.Decision]) -> dict:
    counts = Counter(d.outcome for d in decisions)
    rejected = Counter(d.reason for d in decisions if d.outcome == "rejected")
    return {
        "mailbox": mailbox,
        "day": now.astimezone(box.tz).date().isoformat(),
        "mode": "replay",
        "seen": len(rows),
        "created": counts["created"],
        "already_created": counts["already_created"],
        "rejected": dict(sorted(rejected.items())),
        "failed": counts["failed"],
        "quarantined": counts["quarantined"],
        "gone": 0,
    }


def export(ledger: Ledger, raw_id: int) -> bytes | None:
    """The kept bytes, exactly as they were read from the mailbox (an ``.eml`` file)."""
    row = ledger.kept_raw_by_id(raw_id)
    return bytes(row["raw"]) if row else None
