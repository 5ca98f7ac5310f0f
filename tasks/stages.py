"""The Prefect tasks of the ingest flow: thin wrappers around the pure stage functions.

Each task works on a *chunk* of messages (Prefect costs about 10 ms per task run; one run per
message would cost more than the work). Inputs hold blocks with sessions and connection pools, so
no task is cached (``NO_CACHE``): retries and reruns are made safe by the ledger, not by caching.
Logs say per message what was decided and why (one line, written by the load stage, which knows
the final outcome) — never a body, never a secret.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from blocks.helpdesk import HelpdeskApi
from blocks.mailbox import MailboxSource
from tasks import acknowledgements, drafts, extract, load, user_matrix, validation
from tasks.model import MessageRef


class Batch:
    """A chunk's items, opaque to Prefect.

    Prefect walks task inputs looking for futures, descending into lists and dataclasses; a chunk
    of parsed messages is thousands of nested objects, and walking them cost as much as parsing.
    A plain class is not descended into, so chunks travel between tasks as ``Batch``.
    """

    __slots__ = ("items",)

    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)


def worth_retrying(task, task_run, state) -> bool:
    """Retry what time can fix (a dropped connection), not what a person must fix (a refused login)."""
    try:
        state.result()
    except Exception as exc:
        return getattr(exc, "retryable", True)
    return True


@task(name="user-matrix", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def get_user_matrix(helpdesk: HelpdeskApi, dataset: Path, ttl_minutes: float) -> pd.DataFrame:
    """The cached user-matrix dataset, refreshed from the helpdesk when older than the TTL."""
    frame, refreshed = user_matrix.current_matrix(dataset, timedelta(minutes=ttl_minutes), helpdesk.list_users)
    fetched = frame["fetched_at"].iloc[0] if len(frame) else "never"
    how = "refreshed from the helpdesk" if refreshed else f"cached dataset fetched at {fetched}"
    get_run_logger().info("user matrix: %d users (%s, %s)", len(frame), how, dataset)
    return frame


@task(
    name="list-messages", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10],
    retry_condition_fn=worth_retrying,
)
def list_messages(source: MailboxSource, window: extract.Window) -> list[MessageRef]:
    """Names and dates only: a poll with nothing new costs a directory listing, no bodies."""
    refs = source.list_refs(window.since, window.until, include_processed=window.include_processed)
    get_run_logger().info(
        "%d message(s) to read for %s (%s run, %s → %s)",
        len(refs), window.day, window.mode, window.since.isoformat(), window.until.isoformat(),
    )
    return refs


@task(
    name="extract", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=worth_retrying
)
def extract_chunk(source: MailboxSource, refs: Batch) -> Batch:
    refs = refs.items
    items = extract.extract_messages(source.fetch(refs))
    logger = get_run_logger()
    gone = len(refs) - len(items)
    if gone:
        logger.warning("%d message(s) disappeared from the mailbox between listing and fetching", gone)
    for item in items:
        if item.quarantine is not None:
            logger.warning("%s: cannot be parsed (%s); kept whole for replay", item.quarantine.key,
                           item.quarantine.reason)
    return Batch(items)


@task(name="validate", cache_policy=NO_CACHE)
def validate_chunk(
    chunk: Batch, matrix: pd.DataFrame, mailbox_address: str, limits: validation.Limits,
    results_dir: str | None = None,
) -> Batch:
    judged, report = validation.judge_chunk(chunk.items, matrix, mailbox_address, limits)
    if results_dir and report.result_json is not None:
        # Kept for Great Expectations Data Docs, built with the daily report (mailservice.data_docs).
        folder = Path(results_dir)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{uuid.uuid4().hex}.json"
        target.write_text(json.dumps(report.result_json, default=str), encoding="utf-8")
    logger = get_run_logger()
    failed = [s for s in report.expectation_stats if not s["success"]]
    logger.info(
        "expectation suite on %d message(s): %d of %d expectations met%s",
        len(chunk), len(report.expectation_stats) - len(failed), len(report.expectation_stats),
        "".join(f"; {s['rule']} {s['reason']}: {s['unexpected']}" for s in failed),
    )
    return Batch(judged)


@task(name="clean", cache_policy=NO_CACHE)
def clean_chunk(judged: Batch, settings: drafts.CleanSettings) -> Batch:
    return Batch(drafts.clean_chunk(judged.items, settings))


@task(name="load", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def load_chunk(ctx: load.LoadContext, results: Batch) -> load.ChunkOutcome:
    """Safe to retry: the ledger and the helpdesk's external ids make a repeat create nothing twice."""
    logger = get_run_logger()
    return load.load_chunk(ctx, results.items, log=logger.info)


@task(name="acknowledge", cache_policy=NO_CACHE)
def acknowledge_chunk(
    ctx: acknowledgements.AckContext, results: Batch, loaded: load.ChunkOutcome
) -> acknowledgements.AckSummary:
    """R12 mode email. Never fails the run for a send: failures are recorded and retried once."""
    return acknowledgements.acknowledge_chunk(ctx, results.items, loaded, get_run_logger().info)


@task(name="retry-acknowledgements", cache_policy=NO_CACHE)
def retry_acknowledgements(ctx: acknowledgements.AckContext) -> acknowledgements.AckSummary:
    return acknowledgements.retry_failed(ctx, get_run_logger().info)
