"""Prefect operations around the flows: one run per mailbox, alerts, progress, nightly jobs.

* **One ingest run per mailbox at a time** — a global concurrency limit ``mailbox-<name>`` of 1.
  The deployment's own ``concurrency_limit`` only covers runs of *that* deployment; this limit also
  covers a day rerun started by hand, a ``mailservice run`` in a shell and the reconciliation's
  catch-up run. ``mailbox_slot(name)`` holds it (waiting for the other run to finish);
  ``one_run_per_mailbox`` is the same as a decorator for a flow whose first parameter is the mailbox.
* **Alerts** — per mailbox, two Prefect automations (created idempotently by ``mailservice apply``):
  its ingest runs failed twice within about two schedule periods, or no ingest run of it
  completed for 30 minutes. They send a notification through a Custom Webhook block when an alert
  URL is configured, and otherwise only record that they fired (visible in the UI's event feed).
* **Progress** — ``RunProgress`` keeps a progress artifact up to date while a large day is loaded.
* **Nightly jobs** — ``apply_operations`` also deploys ``reconcile-day/<mailbox>`` (00:30 in the
  mailbox's time zone, reconciling yesterday) and ``daily-report/all`` (01:00, yesterday's report).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

if TYPE_CHECKING:
    from mailservice.config import MailboxConfig, ServiceConfig

F = TypeVar("F", bound=Callable[..., Any])

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALERT_BLOCK = "mailservice-alerts"
ALERT_URL_ENV = "MAILSERVICE_ALERT_WEBHOOK_URL"
STALLED_MINUTES = 30
SLOT_LEASE_SECONDS = 60  # Prefect's minimum: how long a hard-killed run can keep its mailbox's slot
RECONCILE_CRON = "30 0 * * *"
REPORT_CRON = "0 1 * * *"
RECONCILE_ENTRYPOINT = "flows/reconcile_day.py:reconcile_day"
REPORT_ENTRYPOINT = "flows/daily_report.py:daily_report"

logger = logging.getLogger("mailservice.operations")


# -- one run per mailbox ---------------------------------------------------------------------------
def limit_name(mailbox: str) -> str:
    return f"mailbox-{mailbox}"


def ensure_concurrency_limit(mailbox: str) -> str:
    """Create (or reset to 1) the global concurrency limit ``mailbox-<name>``. Idempotent."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectAlreadyExists

    name = limit_name(mailbox)
    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectAlreadyExists):  # another process created it between read and create
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
        limit = client.read_global_concurrency_limit_by_name(name)
        if not limit.active:
            from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=True))
    return f"global concurrency limit {name}: 1 run at a time"


@contextmanager
def mailbox_slot(mailbox: str, timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold the mailbox's one slot for the body; waits while another run of the mailbox holds it.

    The limit is created if missing, so this also works before ``mailservice apply`` ran. The slot
    is a lease renewed while the run lives: a run killed hard (``kill -9``, a lost machine) keeps it
    until the lease expires, 1–2 minutes later; ``free_mailbox_slot`` frees it at once.
    """
    from prefect.concurrency.sync import concurrency

    ensure_concurrency_limit(mailbox)
    asked = time.monotonic()
    with concurrency(
        limit_name(mailbox),
        occupy=1,
        strict=True,
        timeout_seconds=timeout_seconds,
        lease_duration=SLOT_LEASE_SECONDS,
        # A Prefect server hiccup must not kill a run half-way: the ledger keeps it exactly-once anyway.
        raise_on_lease_renewal_failure=False,
    ):
        waited = time.monotonic() - asked
        if waited > 1:
            _log().info("waited %.1f s for another run of mailbox %r to finish", waited, mailbox)
        yield


def free_mailbox_slot(mailbox: str) -> str:
    """Free the mailbox's slot now, for a run that was killed hard and cannot give it back.

    Only for that case: freeing the slot of a live run lets a second run start beside it (the
    ledger still keeps every message exactly-once, but the runs overlap).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(limit_name(mailbox), GlobalConcurrencyLimitUpdate(active_slots=0))
    return f"global concurrency limit {limit_name(mailbox)}: slot freed"


def one_run_per_mailbox(fn: F) -> F:
    """Decorator: the whole call holds ``mailbox_slot(<first argument or mailbox=...>)``.

    Put it *under* ``@flow(...)`` so the slot is held inside the flow run.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mailbox = kwargs["mailbox"] if "mailbox" in kwargs else args[0]
        with mailbox_slot(mailbox):
            return fn(*args, **kwargs)

    # Prefect builds the parameter model from the signature and resolves string annotations
    # (``from __future__ import annotations``) in the *wrapper's* module: give it real types.
    signature = inspect.signature(fn, eval_str=True)
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{name: p.annotation for name, p in signature.parameters.items() if p.annotation is not p.empty},
        **({"return": signature.return_annotation} if signature.return_annotation is not signature.empty else {}),
    }
    return wrapper  # type: ignore[return-value]


def _log() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:
        return logger


# -- progress --------------------------------------------------------------------------------------
class RunProgress:
    """A Prefect progress artifact for a run over many chunks (updated in place, not versioned).

    Outside a flow run, or for a run of one chunk, it does nothing: a poll stays cheap.
    """

    def __init__(self, mailbox: str, total_chunks: int, description: str | None = None) -> None:
        self.total = total_chunks
        self.artifact_id: UUID | None = None
        if total_chunks <= 1:
            return
        try:
            from prefect.artifacts import create_progress_artifact

            self.artifact_id = create_progress_artifact(
                progress=0.0,
                key=f"progress-{mailbox}",
                description=description or f"{mailbox}: chunks loaded of {total_chunks}",
            )
        except Exception as exc:  # progress is a nicety; never fail a run over it
            logger.debug("no progress artifact: %s", exc)

    def update(self, done_chunks: int) -> None:
        if self.artifact_id is None:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.artifact_id, progress=round(100.0 * done_chunks / self.total, 1))
        except Exception as exc:
            logger.debug("progress artifact not updated: %s", exc)


# -- alerts ----------------------------------------------------------------------------------------
def failing_window(box: MailboxConfig) -> timedelta:
    """Two failures within this window ≈ two runs in a row (the schedule runs every schedule_minutes)."""
    return timedelta(minutes=max(10, 2 * box.schedule_minutes + box.schedule_minutes // 2 + 1))


def _mailbox_runs(box: MailboxConfig) -> list[dict[str, str]]:
    """Related-resource labels of an ingest run of this mailbox: the flow, and the mailbox's tag."""
    return [
        {"prefect.resource.role": "flow", "prefect.resource.name": "ingest-mailbox"},
        {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.mailbox:{box.name}"},
    ]


def ensure_alert_block(webhook_url: str | None) -> UUID | None:
    """The Custom Webhook block alerts are sent through; the URL is stored as a secret (R20)."""
    if not webhook_url:
        return None
    from prefect.blocks.fields import SecretDict
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name="helppeople-mail-service",
        url="{{webhook_url}}",
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        secrets=SecretDict({"webhook_url": webhook_url}),
    )
    return block.save(ALERT_BLOCK, overwrite=True)


def automations_for(box: MailboxConfig, block_id: UUID | None) -> list:
    """The two automations of one mailbox (not yet stored)."""
    from prefect.automations import AutomationCore, DoNothing, EventTrigger, Posture, SendNotification

    def action(subject: str, body: str) -> list:
        if block_id is None:
            return [DoNothing()]
        return [SendNotification(block_document_id=block_id, subject=subject, body=body)]

    window = failing_window(box)
    failing = AutomationCore(
        name=f"mailbox-{box.name}-failing",
        description=(
            f"Mailbox {box.name} ({box.address}): two ingest runs failed within {int(window.total_seconds() // 60)} "
            "minutes — intake is broken, look at the last run's error."
        ),
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=_mailbox_runs(box),
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            posture=Posture.Reactive,
            threshold=2,
            within=window,
        ),
        actions=action(
            f"helppeople Mail Service: mailbox {box.name} failed twice in a row",
            f"Ingest of mailbox {box.name} ({box.address}) failed twice. Last run: {{{{ flow_run.name }}}} — "
            "{{ flow_run.state.message }}. Retry it from the Prefect UI once the cause is fixed.",
        ),
    )
    stalled = AutomationCore(
        name=f"mailbox-{box.name}-stalled",
        description=f"Mailbox {box.name} ({box.address}): no ingest run completed for {STALLED_MINUTES} minutes.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=_mailbox_runs(box),
            expect={"prefect.flow-run.Completed"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(minutes=STALLED_MINUTES),
        ),
        actions=action(
            f"helppeople Mail Service: mailbox {box.name} has not completed a run for {STALLED_MINUTES} minutes",
            f"No ingest run of mailbox {box.name} ({box.address}) completed in the last {STALLED_MINUTES} minutes. "
            "Check that the worker is running and the deployment is not paused, then look at the last runs.",
        ),
    )
    return [failing, stalled]


def ensure_automations(mailboxes: Sequence[MailboxConfig], webhook_url: str | None = None) -> list[str]:
    """Create or update (by name) each mailbox's alert automations. Idempotent."""
    from prefect.client.orchestration import get_client

    block_id = ensure_alert_block(webhook_url)
    report = []
    how = f"notify through block custom-webhook/{ALERT_BLOCK}" if block_id else "no alert URL: recorded only"
    with get_client(sync_client=True) as client:
        for box in mailboxes:
            for automation in automations_for(box, block_id):
                existing = client.read_automations_by_name(automation.name)
                if existing:
                    client.update_automation(existing[0].id, automation)
                    for duplicate in existing[1:]:
                        client.delete_automation(duplicate.id)
                    verb = "updated"
                else:
                    client.create_automation(automation)
                    verb = "created"
                report.append(f"automation {automation.name} {verb} ({how})")
    return report


# -- nightly deployments ---------------------------------------------------------------------------
def deploy_reconcile(box: MailboxConfig, work_pool: str) -> str:
    from prefect.schedules import Cron

    from flows.reconcile_day import reconcile_day
    from mailservice.apply import deployment_tags

    source = reconcile_day.from_source(source=str(PROJECT_ROOT), entrypoint=RECONCILE_ENTRYPOINT)
    deployment_id = source.deploy(
        name=box.name,
        work_pool_name=work_pool,
        parameters={"mailbox": box.name},
        schedules=[Cron(RECONCILE_CRON, timezone=box.timezone)],
        tags=[*deployment_tags(box), "job:reconcile"],
        description=(
            f"Nightly reconciliation of mailbox {box.address}: yesterday ({box.timezone}) in the mailbox against "
            "the ledger and the helpdesk; mail with no outcome is processed. Custom run → day = YYYY-MM-DD "
            "reconciles another day."
        ),
        print_next_steps=False,
        build=False,
        push=False,
    )
    return f"deployment reconcile-day/{box.name}: cron {RECONCILE_CRON!r} {box.timezone} ({deployment_id})"


def deploy_daily_report(config: ServiceConfig, work_pool: str) -> str:
    from prefect.schedules import Cron

    from flows.daily_report import daily_report

    timezone = config.mailboxes[0].timezone
    source = daily_report.from_source(source=str(PROJECT_ROOT), entrypoint=REPORT_ENTRYPOINT)
    deployment_id = source.deploy(
        name="all",
        work_pool_name=work_pool,
        parameters={},
        schedules=[Cron(REPORT_CRON, timezone=timezone)],
        tags=["job:report"],
        description=(
            "Yesterday's ingestion report for every mailbox: totals (markdown artifact) and an HTML report with "
            "charts, linked from a link artifact. Custom run → day = YYYY-MM-DD for another day."
        ),
        print_next_steps=False,
        build=False,
        push=False,
    )
    return f"deployment daily-report/all: cron {REPORT_CRON!r} {timezone} ({deployment_id})"


def apply_operations(
    config: ServiceConfig, work_pool: str = "mailservice", webhook_url: str | None = None
) -> list[str]:
    """What ``mailservice apply`` adds for operations: limits, nightly deployments, alert automations."""
    report = [ensure_concurrency_limit(box.name) for box in config.mailboxes]
    report += [deploy_reconcile(box, work_pool) for box in config.mailboxes]
    report.append(deploy_daily_report(config, work_pool))
    report += ensure_automations(config.mailboxes, webhook_url or os.environ.get(ALERT_URL_ENV))
    return report
