"""Refresh the user-matrix dataset (R4) from the helpdesk, for every helpdesk the config names.

Ingest refreshes a stale dataset on its own; this flow exists so the dataset can be refreshed on a
schedule or by hand (after adding users in the helpdesk) and so each refresh is a visible run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from blocks.helpdesk import HelpdeskApi
from mailservice.runtime import active_config, helpdesk_block, runtime_from_blocks
from tasks import user_matrix


@task(name="fetch-users", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def fetch_and_write(helpdesk: HelpdeskApi, dataset: str) -> int:
    frame = user_matrix.matrix_frame(helpdesk.list_users(), datetime.now(UTC))
    user_matrix.write_dataset(frame, Path(dataset))
    return len(frame)


@flow(name="refresh-user-matrix", description="Refresh the cached user-matrix dataset from the helpdesk.")
def refresh_user_matrix(mailbox: str | None = None) -> dict:
    config = active_config()
    if config is None:
        if mailbox is None:
            raise ValueError("refresh-user-matrix needs a mailbox name when run from a deployment")
        runtime = runtime_from_blocks(mailbox)
        config, helpdesk = runtime.config, runtime.helpdesk
    else:
        helpdesk = helpdesk_block(config.helpdesk)
    dataset = user_matrix.dataset_path(config.data_dir, helpdesk.url)
    users = fetch_and_write(helpdesk, str(dataset))
    get_run_logger().info("user matrix refreshed: %d users in %s", users, dataset)
    create_table_artifact(
        key="user-matrix", table=[{"helpdesk": helpdesk.url, "users": users, "dataset": str(dataset)}]
    )
    return {"users": users, "dataset": str(dataset)}
