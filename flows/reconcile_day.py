"""Reconcile one mailbox's day: the mailbox, the ledger and the helpdesk must tell the same story.

Nightly per mailbox (deployment ``reconcile-day/<mailbox>``, yesterday by default). It lists every
message the mailbox holds for the day (processed or not) and matches each to its ledger row — first
by the mailbox's own id (Maildir key, IMAP UID, Gmail id), which the ledger stores, then, for the
rest, by the message key computed from the fetched bytes (the identity that survives a moved or
renumbered message). It reports:

* **missing** — mail in the mailbox with no ledger row (delivered behind the pipeline's back, e.g.
  already marked read-and-processed by a person), and **unfinished** — rows still ``pending`` or
  ``failed``. Both are processed right away by the normal ingest of that day, run as a subflow;
  a rerun creates only what is missing (R3);
* **gone** — ledger rows whose message is no longer in the mailbox (deleted or moved by a person);
* **unknown requests** — ``created`` rows whose request the helpdesk no longer has.

The result is a markdown and a table artifact, and one row in the ledger's ``mail_reconciliations``
(the audit's ``in_mailbox`` column). The flow does not hold the mailbox's concurrency slot itself:
the catch-up ingest takes it, so reconciliation never blocks, nor is blocked by, its own subflow.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from blocks.helpdesk import HelpdeskApi, HelpdeskError
from blocks.ledger import FAILED, FINAL_OUTCOMES, PENDING, Ledger
from blocks.mailbox import MailboxSource
from mailservice.audit import utc
from mailservice.runtime import build_runtime
from tasks import extract
from tasks.message_key import message_key
from tasks.model import MessageRef

UNFINISHED = (PENDING, FAILED)


def _run_name() -> str:
    params = flow_run.parameters
    return f"{params['mailbox']}-{params.get('day') or 'yesterday'}"


@dataclass
class Matching:
    """The mailbox's day against the ledger's rows."""

    in_mailbox: int = 0
    in_ledger: int = 0
    missing: list[dict] = field(default_factory=list)  # source_id, key, received_at
    unfinished: list[dict] = field(default_factory=list)  # ledger rows (pending / failed)
    gone: list[dict] = field(default_factory=list)  # ledger rows


def match_day(
    source: MailboxSource, refs: list[MessageRef], rows: list[dict], ledger: Ledger, mailbox: str
) -> Matching:
    """Pure-ish matching (reads bytes only for mail whose mailbox id the ledger does not know)."""
    by_source = {row["source_id"]: row for row in rows}
    matched_ids: set[int] = set()
    result = Matching(in_mailbox=len(refs), in_ledger=len(rows))
    seen_rows: list[dict] = []
    unknown_refs: list[MessageRef] = []
    for ref in refs:
        row = by_source.get(ref.source_id)
        if row is None:
            unknown_refs.append(ref)
        else:
            matched_ids.add(row["id"])
            seen_rows.append(row)
    if unknown_refs:
        fetched = {raw.ref.source_id: message_key(raw.raw) for raw in source.fetch(unknown_refs)}
        entries = ledger.entries(mailbox, set(fetched.values()))
        by_key = {row["message_key"]: row for row in rows}
        for ref in unknown_refs:
            key = fetched.get(ref.source_id)
            if key is None:
                continue  # gone between listing and fetching: nothing to reconcile
            row = by_key.get(key)
            if row is not None:
                matched_ids.add(row["id"])
                seen_rows.append(row)
            elif key in entries:
                # Known under another day (e.g. redelivered later): it has an outcome; nothing is missing.
                entry = entries[key]
                if entry.outcome in UNFINISHED:
                    result.unfinished.append({"message_key": key, "source_id": ref.source_id,
                                              "outcome": entry.outcome, "received_at": ref.received_at})
            else:
                result.missing.append(
                    {"message_key": key, "source_id": ref.source_id, "received_at": ref.received_at}
                )
    for row in seen_rows:
        if row["outcome"] in UNFINISHED:
            result.unfinished.append(row)
    result.gone = [row for row in rows if row["id"] not in matched_ids]
    return result


@task(name="list-mailbox-day", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def list_day(source: MailboxSource, window: extract.Window) -> list[MessageRef]:
    refs = source.list_refs(window.since, window.until, include_processed=True)
    get_run_logger().info("the mailbox holds %d message(s) for %s", len(refs), window.day)
    return refs


@task(name="match-ledger", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def match_ledger(source: MailboxSource, refs: list[MessageRef], ledger: Ledger, mailbox: str, day: date) -> Matching:
    rows = ledger.message_rows(mailbox, day)
    matching = match_day(source, refs, rows, ledger, mailbox)
    get_run_logger().info(
        "ledger: %d row(s); %d message(s) with no outcome, %d unfinished, %d outcome(s) whose message is gone",
        len(rows), len(matching.missing), len(matching.unfinished), len(matching.gone),
    )
    return matching


@task(name="check-helpdesk", cache_policy=NO_CACHE)
def check_requests(helpdesk: HelpdeskApi, rows: list[dict]) -> list[dict]:
    """Created rows whose request the helpdesk does not know (one GET per request)."""
    unknown = []
    for row in rows:
        if not row.get("request_id") or helpdesk.get_request(row["request_id"]) is None:
            unknown.append(row)
    get_run_logger().info("helpdesk: %d request(s) checked, %d unknown", len(rows), len(unknown))
    return unknown


def _item(row: dict, finding: str, note: str = "") -> dict:
    received = row.get("received_at")
    return {
        "finding": finding,
        "message_key": row.get("message_key"),
        "source_id": row.get("source_id"),
        "received_at": utc(received).isoformat() if isinstance(received, datetime) else received,
        "sender": row.get("sender"),
        "subject": (row.get("subject") or "")[:80] or None,
        "outcome": row.get("outcome"),
        "request_number": row.get("request_number"),
        "note": note,
    }


def _markdown(mailbox: str, day: date, result: dict, items: list[dict]) -> str:
    lines = [
        f"# Reconciliation — {mailbox}, {day}",
        "",
        f"**Status: {result['status']}**",
        "",
        "| | messages |",
        "|---|---|",
        f"| in the mailbox | {result['in_mailbox']} |",
        f"| in the ledger (before) | {result['in_ledger']} |",
        f"| no outcome (missing) | {result['missing']} |",
        f"| pending or failed | {result['unfinished']} |",
        f"| processed now | {result['processed']} |",
        f"| outcome, message gone from the mailbox | {result['gone']} |",
        f"| requests checked in the helpdesk | {result['requests_checked']} |",
        f"| requests the helpdesk does not know | {result['unknown_requests']} |",
        "",
    ]
    if result.get("error"):
        lines += [f"**Error:** {result['error']}", ""]
    if items:
        lines += ["| finding | key | received | sender | subject | outcome | request | note |",
                  "|---|---|---|---|---|---|---|---|"]
        for item in items:
            subject = (item["subject"] or "").replace("|", "\\|")
            lines.append(
                f"| {item['finding']} | {item['message_key']} | {item['received_at']} | {item['sender'] or ''} | "
                f"{subject} | {item['outcome'] or ''} | {item['request_number'] or ''} | {item['note']} |"
            )
    else:
        lines.append("The mailbox, the ledger and the helpdesk agree.")
    return "\n".join(lines)


@flow(
    name="reconcile-day",
    flow_run_name=_run_name,
    description="Compare a mailbox's day with the ledger and the helpdesk; process mail with no outcome.",
)
def reconcile_day(mailbox: str, day: date | None = None) -> dict:
    """Reconcile ``mailbox`` for ``day`` (YYYY-MM-DD; default: yesterday in the mailbox's time zone)."""
    from flows.ingest_mailbox import ingest_mailbox

    logger = get_run_logger()
    started = datetime.now(UTC)
    runtime = build_runtime(mailbox)
    box = runtime.mailbox
    the_day = day or (started.astimezone(box.tz).date() - timedelta(days=1))
    window = extract.day_window(box.tz, the_day, started)
    run_id = str(flow_run.id or uuid.uuid4())
    ledger = Ledger(runtime.ledger_url)
    errors: list[str] = []
    try:
        refs = list_day(runtime.source, window)
        matching = match_ledger(runtime.source, refs, ledger, mailbox, the_day)
        to_process = [*matching.missing, *matching.unfinished]
        ingest_summary: dict | None = None
        if to_process:
            logger.info("processing %d message(s) with no final outcome: ingest of %s", len(to_process), the_day)
            state = ingest_mailbox(mailbox=mailbox, day=the_day, return_state=True)
            if state.is_completed():
                ingest_summary = state.result()
            else:
                errors.append(f"the catch-up ingest of {the_day} did not complete: {state.message}")
        after = ledger.entries(mailbox, [item["message_key"] for item in to_process])
        processed = sum(1 for item in to_process
                        if item["message_key"] in after and after[item["message_key"]].outcome in FINAL_OUTCOMES)
        created_rows = [row for row in ledger.message_rows(mailbox, the_day) if row["outcome"] == "created"]
        unknown: list[dict] = []
        try:
            unknown = check_requests(runtime.helpdesk, created_rows)
        except HelpdeskError as exc:
            errors.append(f"the helpdesk could not be asked about requests: {exc}")

        def now_outcome(item: dict) -> str:
            entry = after.get(item["message_key"])
            return f"now {entry.outcome}" + (f" #{entry.request_number}" if entry and entry.request_number else "") \
                if entry else "still no outcome"

        items = (
            [_item(m, "no_outcome", now_outcome(m)) for m in matching.missing]
            + [_item(u, "unfinished", now_outcome(u)) for u in matching.unfinished]
            + [_item(g, "message_gone", "the outcome stays in the ledger") for g in matching.gone]
            + [_item(r, "request_unknown", f"request id {r.get('request_id')} not found in the helpdesk")
               for r in unknown]
        )
        found = matching.missing or matching.unfinished or matching.gone or unknown
        result = {
            "run_id": run_id,
            "mailbox": mailbox,
            "day": the_day,
            "started_at": started,
            "finished_at": datetime.now(UTC),
            "status": "failed" if errors else ("discrepancies" if found else "ok"),
            "in_mailbox": matching.in_mailbox,
            "in_ledger": matching.in_ledger,
            "missing": len(matching.missing),
            "unfinished": len(matching.unfinished),
            "processed": processed,
            "gone": len(matching.gone),
            "requests_checked": len(created_rows),
            "unknown_requests": len(unknown),
            "details": {"findings": items, "ingest": ingest_summary},
            "error": "; ".join(errors) or None,
        }
        ledger.record_reconciliation(result)
    finally:
        ledger.dispose()
    create_markdown_artifact(key=f"reconcile-{mailbox}", markdown=_markdown(mailbox, the_day, result, items),
                             description=f"Reconciliation of {mailbox} for {the_day}: {result['status']}")
    if items:
        create_table_artifact(key=f"reconcile-{mailbox}-findings", table=items,
                              description=f"{mailbox}, {the_day}: {len(items)} finding(s)")
    for item in items:
        logger.warning("%s: %s %s (%s)", item["finding"], item["message_key"], item["source_id"], item["note"])
    public = {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in result.items()}
    if errors:
        raise RuntimeError(f"reconciliation of {mailbox} for {the_day} is incomplete: {'; '.join(errors)}")
    return public
