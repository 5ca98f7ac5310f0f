"""End-to-end benchmark: N generated messages in a Maildir → ingest flow → reference helpdesk.

Prints figures, asserts nothing. Measures, in this process:
  - end-to-end messages/s of one ingest run over N new messages (Prefect, GX, helpdesk over HTTP,
    ledger on SQLite), after a warm-up run that starts Prefect and imports Great Expectations;
  - the same pipeline's pure part alone (parse + classify + clean), our ceiling on one core;
  - an idle poll right after (nothing new): seconds and bodies read;
  - peak RSS of this process.
Usage: python bench/bench_ingest.py [--n 1000] [--chunk-size 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import mailgen  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"the reference helpdesk did not start on port {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--chunk-size", type=int, default=100)
    args = parser.parse_args()

    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    work = Path(tempfile.mkdtemp(prefix="mailservice-bench-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ["HELPDESK_TOKEN"] = "bench-token"

    users = mailgen.make_users(50)
    users_csv = work / "users.csv"
    mailgen.write_users_csv(users_csv, users)
    maildir = work / "mailbox"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    port = free_port()
    config_path = work / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "helpdesk": {"url": f"http://127.0.0.1:{port}", "token_env": "HELPDESK_TOKEN"},
        "ledger": f"sqlite:///{work / 'ledger.db'}",
        "data_dir": str(work / "data"),
        "mailboxes": [{"name": "bench", "kind": "maildir", "path": str(maildir),
                       "address": "soporte@helppeople.test", "timezone": "UTC", "chunk_size": args.chunk_size}],
    }))
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mailservice"), "helpdesk", "serve", "--db", str(work / "helpdesk.db"),
         "--port", str(port), "--users", str(users_csv)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port)
        from flows.ingest_mailbox import ingest_mailbox
        from mailservice import runtime
        from mailservice.config import load_config
        from tasks.classify import classify
        from tasks.clean import build_request_draft
        from tasks.parse import parse_message

        runtime.use_config(load_config(config_path))
        from tasks.validation import _shared_suite

        started = time.perf_counter()
        _shared_suite()  # Great Expectations' import and context: paid once per process that validates mail
        gx_start = time.perf_counter() - started
        ingest_mailbox(mailbox="bench")  # warm-up: starts Prefect, fetches the user matrix

        raw = list(mailgen.generate_messages(args.n, known_senders=[u[0] for u in users]))
        size_kb = sum(map(len, raw)) / len(raw) / 1024
        started = time.perf_counter()
        for item in raw:
            parsed = parse_message(item)
            classify(parsed)
            build_request_draft(parsed, requester_id="u-1", received_at=datetime.now(UTC))
        pure = time.perf_counter() - started

        mailgen.write_maildir(maildir, raw, datetime.now(UTC))
        started = time.perf_counter()
        summary = ingest_mailbox(mailbox="bench")
        elapsed = time.perf_counter() - started

        started = time.perf_counter()
        idle = ingest_mailbox(mailbox="bench")
        idle_elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"messages: {args.n} (average {size_kb:.1f} KB), chunk size {args.chunk_size}")
    print(f"run totals: {json.dumps(summary, ensure_ascii=False)}")
    print(f"end-to-end ingest: {elapsed:.2f} s → {args.n / elapsed:.0f} messages/s")
    print(f"parse + classify + clean alone (one core): {pure:.2f} s → {args.n / pure:.0f} messages/s")
    print(f"Great Expectations import + context, once per process: {gx_start:.1f} s")
    print(f"idle poll (nothing new): {idle_elapsed:.2f} s, {idle['seen']} message bodies read")
    print(f"peak RSS of the ingest process: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
