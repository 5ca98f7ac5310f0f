"""The ingest flow: one mailbox's new mail of the day becomes helpdesk requests, exactly once.

It only orchestrates. Messages are listed cheaply, split into chunks, and each chunk goes through
mapped tasks extract → validate → clean → load. Chunks are processed in waves of a few at a time,
so memory stays bounded by the wave, not by the size of the day. Every run leaves its totals in the
ledger and two artifacts (a table of counts, a list of refused mail with reasons) in Prefect.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, date, datetime

from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from blocks.ledger import Ledger
from mailservice import data_docs
from mailservice.operations import RunProgress, mailbox_slot
from mailservice.runtime import ack_context, build_runtime
from tasks import drafts, extract, load, stages, user_matrix, validation

PARALLEL_CHUNKS = 4


def _run_name() -> str:
    params = flow_run.parameters
    return f"{params['mailbox']}-{params.get('day') or 'today'}"


def credential_warnings(source: object, today: date) -> list[str]:
    """Known credential expiries coming up, said before they stop intake (anchors' complaint 4)."""
    check = getattr(source, "expiry_warnings", None)
    return list(check(today)) if check else []


def summarize(mailbox: str, window: extract.Window, seen: int, decisions: list[load.Decision]) -> dict:
    """The run's totals; the CLI prints this as its last line (one JSON object)."""
    counts = Counter(d.outcome for d in decisions)
    rejected = Counter(d.reason for d in decisions if d.outcome == "rejected")
    return {
        "mailbox": mailbox,
        "day": window.day.isoformat(),
        "mode": window.mode,
        "seen": seen,
        "created": counts["created"],
        "already_created": counts["already_created"],
        "rejected": dict(sorted(rejected.items())),
        "failed": counts["failed"],
        "quarantined": counts["quarantined"],
        "gone": seen - len(decisions),
    }


def _publish_artifacts(
    mailbox: str, summary: dict, decisions: list[load.Decision], warnings: list[str] | None = None
) -> None:
    rows = [
        {"outcome": "created", "reason": "", "messages": summary["created"]},
        {"outcome": "already_created", "reason": "", "messages": summary["already_created"]},
        *({"outcome": "rejected", "reason": r, "messages": n} for r, n in summary["rejected"].items()),
        {"outcome": "failed", "reason": "", "messages": summary["failed"]},
        {"outcome": "quarantined", "reason": "", "messages": summary["quarantined"]},
    ]
    create_table_artifact(
        key=f"ingest-{mailbox}",
        table=rows,
        description=f"{mailbox} — {summary['day']} ({summary['mode']} run): {summary['seen']} message(s) read",
    )
    refused = [d for d in decisions if d.outcome in ("rejected", "quarantined", "failed")]
    lines = [f"# Refused or failed mail — {mailbox}, {summary['day']}", ""]
    if warnings:
        lines += ["## Warnings", "", *(f"- **{w}**" for w in warnings), ""]
    if not refused:
        lines.append("Nothing refused in this run.")
    else:
        lines += ["| received | sender | subject | outcome | reason |", "|---|---|---|---|---|"]
        for d in refused:
            subject = (d.subject or "(no subject)").replace("|", "\\|").replace("\n", " ")[:80]
            lines.append(f"| {d.received_at} | {d.sender or '(none)'} | {subject} | {d.outcome} | {d.reason} |")
    create_markdown_artifact(key=f"refused-{mailbox}", markdown="\n".join(lines))


def _collect_wave(chains, decisions: list[load.Decision]) -> object | None:
    """Wait for each chunk's extract → validate → clean → load chain; keep its decisions.

    Returns the first failure, as the stage that failed raised it (e.g. the mailbox went away),
    rather than Prefect's "UnfinishedRun" of the stages after it.
    """
    failure = None
    for chain in chains:
        chain[-1].wait()
        if chain[-1].state.is_completed():
            decisions.extend(chain[-1].result().decisions)
            continue
        failed = next((f for f in chain if f.state.is_failed()), chain[-1])
        failure = failure or failed.state.result(raise_on_failure=False)
    return failure


def _collect_acks(futures, totals: Counter, logger) -> None:
    """An acknowledgement problem never fails the run (the requests exist): it is logged."""
    for future in futures:
        future.wait()
        if future.state.is_completed():
            totals.update(vars(future.result()))
        else:
            logger.warning("acknowledgements of a chunk failed: %s", future.state.message)


@flow(
    name="ingest-mailbox",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_CHUNKS),
    description="Read one mailbox's new mail of the day and create helpdesk requests, exactly once.",
)
def ingest_mailbox(mailbox: str, day: date | None = None) -> dict:
    """Ingest ``mailbox``; ``day`` (YYYY-MM-DD) reruns that whole day instead of today's new mail.

    One run per mailbox at a time, whoever started it (schedule, a rerun from the UI, a shell):
    the run waits for the mailbox's global concurrency slot.
    """
    with mailbox_slot(mailbox):
        return _ingest(mailbox, day)


def _ingest(mailbox: str, day: date | None) -> dict:
    logger = get_run_logger()
    runtime = build_runtime(mailbox)
    box = runtime.mailbox
    now = datetime.now(UTC)
    window = extract.day_window(box.tz, day, now, box.lookback_minutes)
    warnings = credential_warnings(runtime.source, now.astimezone(box.tz).date())
    for warning in warnings:
        logger.warning(warning)
    ledger = Ledger(runtime.ledger_url)
    run_id = str(flow_run.id or uuid.uuid4())
    ledger.start_run(run_id, mailbox, window.day, window.mode)
    decisions: list[load.Decision] = []
    seen = 0
    try:
        dataset = user_matrix.dataset_path(runtime.data_dir, runtime.helpdesk.url)
        matrix = stages.get_user_matrix(runtime.helpdesk, dataset, runtime.config.user_matrix_ttl_minutes)
        refs = stages.list_messages(runtime.source, window)
        seen = len(refs)
        limits = validation.Limits(box.subject_max_chars, box.attachment_max_bytes, box.keep_emoji)
        clean_settings = drafts.CleanSettings(
            box.subject_max_chars, box.attachment_max_bytes, box.keep_emoji, box.language, box.routing_rules()
        )
        ctx = load.LoadContext(
            mailbox=mailbox,
            tz=box.tz,
            run_id=run_id,
            ledger=ledger,
            helpdesk=runtime.helpdesk,
            source=runtime.source,
            options=load.RequestOptions(box.priority, box.notify_requester, box.assignment_bot),
            refresh_requester=user_matrix.refresher(dataset, runtime.helpdesk.list_users),
            language=box.language,
        )
        acks = ack_context(box, runtime.source, ledger.engine, from_blocks=runtime.from_blocks)
        ack_totals = Counter()
        if acks is not None:
            ack_totals.update(vars(stages.retry_acknowledgements(acks)))
        chunks = extract.chunked(refs, box.chunk_size)
        results_dir = str(data_docs.results_folder(runtime.data_dir, mailbox, window.day))
        progress = RunProgress(mailbox, len(chunks))
        for start in range(0, len(chunks), PARALLEL_CHUNKS):
            wave = chunks[start : start + PARALLEL_CHUNKS]
            extracted = stages.extract_chunk.map(unmapped(runtime.source), [stages.Batch(c) for c in wave])
            judged = stages.validate_chunk.map(
                extracted, unmapped(matrix), unmapped(box.address), unmapped(limits), unmapped(results_dir)
            )
            cleaned = stages.clean_chunk.map(judged, unmapped(clean_settings))
            loaded = stages.load_chunk.map(unmapped(ctx), cleaned)
            acked = stages.acknowledge_chunk.map(unmapped(acks), cleaned, loaded) if acks is not None else []
            failure = _collect_wave(zip(extracted, judged, cleaned, loaded, strict=True), decisions)
            _collect_acks(acked, ack_totals, logger)
            if failure is not None:
                raise failure if isinstance(failure, BaseException) else RuntimeError(str(failure))
            done = min(start + PARALLEL_CHUNKS, len(chunks))
            logger.info("progress: %d of %d chunk(s) done", done, len(chunks))
            progress.update(done)
    except Exception as exc:
        # Record what was done before the failure; the flow run fails with the reason (retry from the UI).
        summary = summarize(mailbox, window, seen, decisions)
        ledger.finish_run(run_id, summary, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        ledger.dispose()
        _publish_artifacts(mailbox, summary, decisions, warnings)
        raise
    finally:
        close = getattr(runtime.source, "close", None)
        if close is not None:
            close()  # the IMAP connection; Maildir and Gmail hold nothing to close
    summary = summarize(mailbox, window, seen, decisions)
    if acks is not None:
        summary["acknowledgements"] = {k: ack_totals[k] for k in ("sent", "failed", "skipped", "retried")}
    if warnings:
        summary["warnings"] = warnings
    ledger.finish_run(run_id, summary, "completed" if not summary["failed"] else "partial")
    ledger.dispose()
    _publish_artifacts(mailbox, summary, decisions, warnings)
    logger.info("run totals: %s", json.dumps(summary, ensure_ascii=False))
    if summary["failed"]:
        raise RuntimeError(
            f"{summary['failed']} message(s) of mailbox {mailbox!r} could not be loaded because the helpdesk "
            "was unavailable; they stay pending and the next run (or a retry of this one) loads them"
        )
    return summary
