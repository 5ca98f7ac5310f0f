"""``mailservice apply``: the config file becomes Prefect blocks and one deployment per mailbox.

The config file is the source of truth; applying it twice changes nothing the second time
(blocks are saved with overwrite, deployments are upserted by name). Secrets are resolved here
from where the config points and stored only in Secret fields of blocks (R20), so a worker needs
neither the config file nor the environment variables.
"""

from __future__ import annotations

from pathlib import Path

from blocks.ledger import safe_url
from blocks.settings import ServiceSettings
from mailservice.config import MailboxConfig, ServiceConfig
from mailservice.operations import apply_operations
from mailservice.runtime import SETTINGS_BLOCK, ack_sender, helpdesk_block, mailbox_source, smtp_block_name

HELPDESK_BLOCK = "helpdesk"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = "flows/ingest_mailbox.py:ingest_mailbox"


def schedule_for(minutes: int) -> dict:
    """Wall-clock aligned cron when the period divides an hour (runs at :00, :05, ...), else an interval."""
    if minutes < 60 and 60 % minutes == 0:
        return {"cron": f"*/{minutes} * * * *"}
    return {"interval": minutes * 60}


def deployment_tags(box: MailboxConfig) -> list[str]:
    tags = [f"mailbox:{box.name}", f"kind:{box.kind}"]
    if box.client:
        tags.append(f"client:{box.client}")
    return tags


def deployment_description(box: MailboxConfig) -> str:
    owner = f" for {box.client}" if box.client else ""
    return (
        f"Support mailbox {box.address}{owner} ({box.kind}): every {box.schedule_minutes} min, today's new mail "
        f"({box.timezone}) becomes helpdesk requests. To rerun a whole day: Run → Custom run → day = YYYY-MM-DD."
    )


def _ensure_work_pool(name: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            return f"work pool {name!r} created (type process)"
        except ObjectAlreadyExists:
            return f"work pool {name!r} exists"


def apply_config(config: ServiceConfig, config_path: Path, work_pool: str = "mailservice") -> list[str]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.ingest_mailbox import ingest_mailbox

    report: list[str] = []
    helpdesk = helpdesk_block(config.helpdesk)  # resolves the token now; fails clearly if missing
    helpdesk.save(HELPDESK_BLOCK, overwrite=True)
    report.append(f"block helpdesk-api/{HELPDESK_BLOCK}: {helpdesk.url} (token stored as a secret)")

    stored = config.model_dump(mode="json")
    stored["ledger"] = safe_url(config.ledger)  # the real URL lives in the secret field below
    ServiceSettings(config=stored, ledger_url=config.ledger, helpdesk_block=HELPDESK_BLOCK).save(
        SETTINGS_BLOCK, overwrite=True
    )
    report.append(
        f"block mail-service-settings/{SETTINGS_BLOCK}: {len(config.mailboxes)} mailbox(es) from {config_path}"
    )

    report.append(_ensure_work_pool(work_pool))
    source = ingest_mailbox.from_source(source=str(PROJECT_ROOT), entrypoint=ENTRYPOINT)
    for box in config.mailboxes:
        block = mailbox_source(box)  # secrets resolved now and stored as Secret fields (R20)
        block.save(box.name, overwrite=True)
        report.append(f"block {block.get_block_type_slug()}/{box.name}: {box.kind} mailbox {box.address}")
        if box.notify.mode == "email" and box.notify.transport(box.kind) == "smtp":
            sender = ack_sender(box, block)
            sender.save(smtp_block_name(box.name), overwrite=True)
            report.append(f"block smtp-sender/{smtp_block_name(box.name)}: acknowledgements via {sender.host}")
        deployment_id = source.deploy(
            name=box.name,
            work_pool_name=work_pool,
            parameters={"mailbox": box.name},
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
            tags=deployment_tags(box),
            description=deployment_description(box),
            print_next_steps=False,
            build=False,
            push=False,
            **schedule_for(box.schedule_minutes),
        )
        report.append(f"deployment ingest-mailbox/{box.name}: {schedule_for(box.schedule_minutes)} ({deployment_id})")
    # One run per mailbox, the nightly reconciliation and report, alerts on failing or stalled intake.
    report += apply_operations(config, work_pool)
    return report
