"""One ingest run per mailbox at a time: the global concurrency limit ``mailbox-<name>`` (a real
Prefect server, the test harness) holds two simultaneous runs of one mailbox to one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date

import pytest
from prefect import flow

from blocks.ledger import Ledger
from mailservice import runtime
from mailservice.audit import utc
from mailservice.config import load_config
from mailservice.operations import ensure_concurrency_limit, limit_name, one_run_per_mailbox
from tests.support.mail import deliver, message

pytestmark = pytest.mark.flow


@flow(name="hold-mailbox")
@one_run_per_mailbox
def hold_mailbox(mailbox: str, seconds: float) -> tuple[float, float]:
    started = time.monotonic()
    time.sleep(seconds)
    return started, time.monotonic()


def run_together(*calls: Callable[[], object]) -> list:
    """Start the calls in threads at the same moment; return their results (re-raising failures)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def runner(i: int, call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def test_two_runs_of_one_mailbox_take_turns_and_other_mailboxes_do_not_wait(prefect_harness):
    from prefect.client.orchestration import get_client

    (a_start, a_end), (b_start, b_end), (c_start, c_end) = run_together(
        lambda: hold_mailbox("buzon-uno", 1.5),
        lambda: hold_mailbox("buzon-uno", 1.5),
        lambda: hold_mailbox("buzon-dos", 3.0),
    )
    first, second = sorted([(a_start, a_end), (b_start, b_end)])
    assert second[0] >= first[1], "two runs of one mailbox overlapped"
    assert c_start < second[1] and first[0] < c_end, "another mailbox's run waited for this one"
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name("buzon-uno"))
    assert (limit.limit, limit.active, limit.active_slots) == (1, True, 0)  # created on demand, released
    assert ensure_concurrency_limit("buzon-uno").endswith("1 run at a time")  # idempotent


def test_two_simultaneous_ingest_runs_of_one_mailbox_do_not_overlap(
    prefect_harness, helpdesk, make_config, maildir, helpdesk_token
):
    from flows.ingest_mailbox import ingest_mailbox

    for i in range(12):
        deliver(maildir, message(subject=f"Caso simultáneo {i}"))
    config = make_config(helpdesk.url, chunk_size=4)
    helpdesk.set_faults(latency_ms=60)  # each create takes a while: unguarded runs would overlap
    runtime.use_config(load_config(config))
    try:
        first, second = run_together(
            lambda: ingest_mailbox(mailbox="soporte", day=None),
            lambda: ingest_mailbox(mailbox="soporte", day=None),
        )
    finally:
        runtime.use_config(None)
        helpdesk.clear_faults()
    assert sorted([first["seen"], second["seen"]]) == [0, 12]  # the second run found it all done
    assert first["created"] + second["created"] == 12 and len(helpdesk.requests()) == 12

    ledger = Ledger(load_config(config).ledger)
    runs = sorted(ledger.run_rows("soporte"), key=lambda r: utc(r["started_at"]))
    ledger.dispose()
    assert len(runs) == 2 and all(isinstance(r["day"], date) for r in runs)
    assert utc(runs[1]["started_at"]) >= utc(runs[0]["finished_at"]), "two ingest runs of one mailbox overlapped"
