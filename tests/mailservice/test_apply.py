"""`mailservice apply`: blocks and one scheduled deployment per mailbox, idempotent; a deployment
run (no config file) reads its settings and its secret token from those blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailservice import runtime
from mailservice.apply import apply_config, schedule_for
from mailservice.config import load_config
from tests.support.mail import deliver, message

pytestmark = pytest.mark.flow


def test_schedule_is_wall_clock_aligned_when_it_divides_an_hour():
    assert schedule_for(5) == {"cron": "*/5 * * * *"}
    assert schedule_for(7) == {"interval": 420}
    assert schedule_for(90) == {"interval": 5400}


def test_apply_creates_blocks_and_deployments_idempotently(prefect_harness, helpdesk, make_config, helpdesk_token):
    from prefect.client.orchestration import get_client

    from blocks.helpdesk import HelpdeskApi
    from blocks.settings import ServiceSettings

    config = load_config(make_config(helpdesk.url, client="cliente-sa", schedule_minutes=5))
    first = apply_config(config, Path("service.yaml"))
    second = apply_config(config, Path("service.yaml"))
    assert any("deployment ingest-mailbox/soporte" in line for line in first)
    assert [line.rsplit("(", 1)[-1] for line in first if "deployment" in line] == [
        line.rsplit("(", 1)[-1] for line in second if "deployment" in line
    ]  # same deployment id both times

    stored = HelpdeskApi.load("helpdesk")
    assert stored.token.get_secret_value() == "test-token"
    assert "test-token" not in str(ServiceSettings.load("mailservice").config)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("ingest-mailbox/soporte")
    assert deployment.parameters == {"mailbox": "soporte"}
    assert set(deployment.tags) == {"mailbox:soporte", "kind:maildir", "client:cliente-sa"}
    assert deployment.schedules[0].schedule.cron == "*/5 * * * *"
    assert deployment.concurrency_limit == 1 or deployment.global_concurrency_limit.limit == 1
    assert "Custom run" in deployment.description


def test_a_deployment_run_reads_blocks_not_the_config_file(
    prefect_harness, helpdesk, make_config, maildir, helpdesk_token, monkeypatch
):
    from flows.ingest_mailbox import ingest_mailbox

    config = load_config(make_config(helpdesk.url))
    apply_config(config, Path("service.yaml"))
    monkeypatch.delenv("HELPDESK_TOKEN")  # a worker has no env token: it comes from the block's secret
    runtime.use_config(None)
    deliver(maildir, message(subject="Desde el despliegue"))
    summary = ingest_mailbox(mailbox="soporte")
    assert summary["created"] == 1
    assert [r["title"] for r in helpdesk.requests()] == ["Desde el despliegue"]
