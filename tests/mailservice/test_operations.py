"""Operations in Prefect: alert automations created idempotently, and one that really fires — two
failed runs of a mailbox reach a webhook on loopback through the Custom Webhook block."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from prefect import flow, tags

from mailservice.config import MailboxConfig
from mailservice.operations import ALERT_BLOCK, RunProgress, automations_for, ensure_automations

pytestmark = pytest.mark.flow


def box(name: str, minutes: int = 5) -> MailboxConfig:
    return MailboxConfig(name=name, kind="maildir", path="/tmp/none", address=f"{name}@helppeople.test",
                         schedule_minutes=minutes)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args) -> None:
        return None


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", _Hook.received
    server.shutdown()
    server.server_close()


def test_automations_are_created_once_and_updated_in_place(prefect_harness):
    from prefect.client.orchestration import get_client

    first = ensure_automations([box("norte"), box("sur", 15)])
    second = ensure_automations([box("norte"), box("sur", 15)])
    assert [line.split()[2] for line in first] == ["created"] * 4
    assert [line.split()[2] for line in second] == ["updated"] * 4
    with get_client(sync_client=True) as client:
        failing = client.read_automations_by_name("mailbox-sur-failing")
        stalled = client.read_automations_by_name("mailbox-sur-stalled")
    assert len(failing) == len(stalled) == 1
    assert failing[0].trigger.threshold == 2 and failing[0].trigger.within.total_seconds() == 38 * 60
    assert stalled[0].trigger.posture == "Proactive" and stalled[0].trigger.within.total_seconds() == 30 * 60
    assert failing[0].actions[0].type == "do-nothing"  # no alert URL configured: recorded only
    [failing_spec, _] = automations_for(box("sur", 15), None)
    assert "prefect.tag.mailbox:sur" in str(failing_spec.trigger.match_related)


def test_two_failed_runs_of_a_mailbox_notify_the_webhook(prefect_harness, webhook):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    url, received = webhook
    ensure_automations([box("alertas")], webhook_url=url)
    stored = CustomWebhookNotificationBlock.load(ALERT_BLOCK)
    assert url not in stored.model_dump_json()  # the URL may carry a token: it is a secret (R20)

    @flow(name="ingest-mailbox")
    def failing_ingest(mailbox: str) -> None:
        raise RuntimeError(f"IMAP login failed for {mailbox}")

    with tags("mailbox:alertas"):
        for _ in range(2):
            assert failing_ingest("alertas", return_state=True).is_failed()
    deadline = time.monotonic() + 45
    while not received and time.monotonic() < deadline:
        time.sleep(0.5)
    assert received, "the automation did not notify within 45 s"
    assert "alertas failed twice" in received[0]["subject"]
    assert "IMAP login failed for alertas" in received[0]["text"]


def test_progress_outside_a_run_is_a_no_op():
    progress = RunProgress("soporte", 1)
    progress.update(1)
    assert progress.artifact_id is None
