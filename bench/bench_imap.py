"""IMAP benchmark: real Dovecot IMAPS on loopback → ingest flow → reference helpdesk.

Prints figures, asserts nothing. Starts its own Dovecot (``tests/support/dovecot.py``; needs
``dovecot-imapd``) and the reference helpdesk (``mailservice helpdesk serve``), then measures:

  1. end-to-end messages/s of one ingest run over N (default 1,000) new ~20 KB messages, after a
     warm-up run (Prefect start, Great Expectations import, user matrix);
  2. in the same process, the raw rate of fetching the same messages (UID FETCH BODY.PEEK[] in
     batches of 100) and parsing them with imapclient + the stdlib ``email`` alone — the physical
     limit — and the ratio of the two;
  3. an idle poll of a mailbox whose day holds 10,000 already-processed messages: seconds (the
     flow run, and the block's listing alone) and the number of message bodies fetched (counted
     on the block: must be 0);
  4. peak RSS of a separate process ingesting 50 messages of 5 MB.

Usage: python bench/bench_imap.py [--n 1000] [--idle 10000] [--big 50] [--big-mb 5] [--chunk-size 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import mailgen  # noqa: E402
from bench_ingest import free_port, wait_for  # noqa: E402  (shared with the Maildir bench)

MAILBOX_ADDRESS = "soporte@helppeople.test"
PASSWORD_ENV = "BENCH_IMAP_PASSWORD"
KEYWORD = "$HelppeopleIngested"


def quiet_prefect(work: Path) -> None:
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))


class BodyCounter:
    """Counts the messages the IMAP block hands out (a spy on ``ImapMailbox.fetch``, nothing replaced)."""

    def __init__(self) -> None:
        from blocks.imap import ImapMailbox

        self.count = 0
        real = ImapMailbox.fetch
        counter = self

        def counting_fetch(block, refs):
            for item in real(block, refs):
                counter.count += 1
                yield item

        ImapMailbox.fetch = counting_fetch


def multiappend(server, user: str, messages: list[bytes], when: datetime, flags: tuple = (), batch: int = 100) -> float:
    client = server.client(user, timeout=120)
    started = time.perf_counter()
    for start in range(0, len(messages), batch):
        client.multiappend("INBOX", [{"msg": m, "date": when, "flags": flags} for m in messages[start : start + batch]])
    elapsed = time.perf_counter() - started
    client.logout()
    return elapsed


def raw_fetch_and_parse(server, user: str, day: datetime) -> tuple[int, float, int]:
    """imapclient + stdlib email alone: SEARCH, UID FETCH BODY.PEEK[] by 100, parse, read body and files."""
    client = server.client(user, timeout=120)
    client.select_folder("INBOX", readonly=True)
    started = time.perf_counter()
    uids = client.search(["SINCE", day.date()])
    parser = BytesParser(policy=policy.default)
    total = size = 0
    for start in range(0, len(uids), 100):
        for data in client.fetch(uids[start : start + 100], ["BODY.PEEK[]"]).values():
            raw = data[b"BODY[]"]
            size += len(raw)
            msg = parser.parsebytes(raw)
            body = msg.get_body(preferencelist=("plain", "html"))
            if body is not None:
                body.get_content()
            for part in msg.iter_attachments():
                part.get_payload(decode=True)
            total += 1
    elapsed = time.perf_counter() - started
    client.logout()
    return total, elapsed, size


def big_messages(count: int, megabytes: float, sender: str) -> list[bytes]:
    """``count`` requests of about ``megabytes`` MB each (a base64 attachment)."""
    payload = os.urandom(int(megabytes * 1024 * 1024 * 57 / 78))
    out = []
    for index in range(count):
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = sender
        msg["To"] = MAILBOX_ADDRESS
        msg["Subject"] = f"Envío el archivo de la nómina {index}"
        msg["Message-ID"] = f"<grande-{index}@cliente.test>"
        msg["Date"] = "Fri, 04 Dec 2026 09:00:00 -0500"
        msg.set_content(f"Buenos días, adjunto el archivo número {index} para revisión.")
        msg.add_attachment(payload, maintype="application", subtype="octet-stream", filename=f"nomina-{index}.bin")
        out.append(msg.as_bytes())
    return out


def rss_child(config_path: str) -> int:
    """Run in a fresh process: warm up on an empty mailbox, then ingest the big mailbox; print RSS."""
    from flows.ingest_mailbox import ingest_mailbox
    from mailservice import runtime
    from mailservice.config import load_config

    runtime.use_config(load_config(config_path))
    ingest_mailbox(mailbox="empty")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    summary = ingest_mailbox(mailbox="big")
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "seconds": elapsed, "summary": summary}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=50)
    parser.add_argument("--big-mb", type=float, default=5)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--big-chunk-size", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (ledger, helpdesk db)")
    parser.add_argument("--rss-child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        quiet_prefect(Path(args.rss_child).parent)
        return rss_child(args.rss_child)

    from tests.support.dovecot import PASSWORD, start_dovecot

    work = Path(tempfile.mkdtemp(prefix="mailservice-bench-imap-"))
    quiet_prefect(work)
    os.environ["HELPDESK_TOKEN"] = "bench-token"
    os.environ[PASSWORD_ENV] = PASSWORD
    users = mailgen.make_users(50)
    users_csv = work / "users.csv"
    mailgen.write_users_csv(users_csv, users)
    known = [u[0] for u in users]

    server = start_dovecot()
    port = free_port()
    box = {"kind": "imap", "address": MAILBOX_ADDRESS, "timezone": "UTC", "host": server.host, "port": server.port,
           "password_env": PASSWORD_ENV, "ca_file": str(server.cafile), "chunk_size": args.chunk_size,
           "lookback_minutes": 0}
    config_path = work / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "helpdesk": {"url": f"http://127.0.0.1:{port}", "token_env": "HELPDESK_TOKEN"},
        "ledger": f"sqlite:///{work / 'ledger.db'}",
        "data_dir": str(work / "data"),
        "mailboxes": [
            {**box, "name": "bench", "username": "bench@helppeople.test"},
            {**box, "name": "idle", "username": "idle@helppeople.test"},
            {**box, "name": "empty", "username": "empty@helppeople.test"},
            {**box, "name": "big", "username": "big@helppeople.test", "chunk_size": args.big_chunk_size},
        ],
    }), encoding="utf-8")
    helpdesk = subprocess.Popen(
        [str(Path(sys.executable).parent / "mailservice"), "helpdesk", "serve", "--db", str(work / "helpdesk.db"),
         "--port", str(port), "--users", str(users_csv)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port)
        from blocks.imap import ImapMailbox
        from flows.ingest_mailbox import ingest_mailbox
        from mailservice import runtime
        from mailservice.config import load_config
        from mailservice.runtime import mailbox_source
        from tasks.extract import day_window

        config = load_config(config_path)
        runtime.use_config(config)
        bodies = BodyCounter()
        ingest_mailbox(mailbox="bench")  # warm-up: Prefect, Great Expectations, the user matrix

        # 1. end to end
        now = datetime.now(UTC)
        received = now - timedelta(seconds=30)  # INTERNALDATE in the past: dovecot keeps it as given
        raw = list(mailgen.generate_messages(args.n, known_senders=known))
        size_kb = sum(map(len, raw)) / len(raw) / 1024
        seed_seconds = multiappend(server, "bench@helppeople.test", raw, received)
        bodies.count = 0
        started = time.perf_counter()
        summary = ingest_mailbox(mailbox="bench")
        elapsed = time.perf_counter() - started
        e2e_bodies = bodies.count

        # 2. the physical limit: imapclient + email alone on the same messages (now in the page cache)
        raw_count, raw_seconds, raw_bytes = raw_fetch_and_parse(server, "bench@helppeople.test", received)

        # 3. idle poll over a day of processed mail
        small = [mailgen_small(i) for i in range(args.idle)]
        idle_seed = multiappend(server, "idle@helppeople.test", small, received, flags=(KEYWORD,), batch=500)
        idle_runs = []
        for _ in range(2):
            bodies.count = 0
            started = time.perf_counter()
            idle_summary = ingest_mailbox(mailbox="idle")
            idle_runs.append((time.perf_counter() - started, bodies.count, idle_summary["seen"]))
        block: ImapMailbox = mailbox_source(config.mailbox("idle"))
        window = day_window(config.mailbox("idle").tz, None, datetime.now(UTC), 0)
        block.list_refs(window.since, window.until, include_processed=False)  # connect + login
        started = time.perf_counter()
        listed = block.list_refs(window.since, window.until, include_processed=False)
        list_seconds = time.perf_counter() - started
        block.close()

        # 4. peak RSS, in a process of its own
        big = big_messages(args.big, args.big_mb, known[0])
        big_mb = sum(map(len, big)) / len(big) / (1024 * 1024)
        big_seed = multiappend(server, "big@helppeople.test", big, received, batch=5)
        del big
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--rss-child", str(config_path)],
            capture_output=True, text=True, env=dict(os.environ), timeout=1800,
        )
        rss = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 else None
    finally:
        runtime.use_config(None)
        helpdesk.terminate()
        helpdesk.wait(timeout=10)
        server.destroy()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)  # ~200 MB: the helpdesk stored the 5 MB files

    print(f"dovecot IMAPS on loopback; messages: {args.n} (average {size_kb:.1f} KB), chunk size {args.chunk_size}")
    print(f"seeding with MULTIAPPEND: {seed_seconds:.2f} s → {args.n / seed_seconds:.0f} messages/s")
    print(f"run totals: {json.dumps(summary, ensure_ascii=False)}")
    print(f"1. end-to-end ingest: {elapsed:.2f} s → {args.n / elapsed:.0f} messages/s ({e2e_bodies} bodies fetched)")
    print(f"2. imapclient + email alone (fetch by 100 + parse): {raw_seconds:.2f} s → "
          f"{raw_count / raw_seconds:.0f} messages/s, {raw_bytes / raw_seconds / 1e6:.1f} MB/s")
    print(f"   ratio end-to-end / physical limit: {(args.n / elapsed) / (raw_count / raw_seconds):.2f}")
    print(f"3. idle poll, {args.idle} processed messages in the day (seeded in {idle_seed:.1f} s):")
    for label, (seconds, fetched, seen) in zip(("first", "second"), idle_runs, strict=True):
        print(f"   {label} flow run: {seconds:.2f} s, {seen} listed, {fetched} message bodies fetched")
    print(f"   the block's listing alone (SEARCH ... UNKEYWORD): {list_seconds * 1000:.1f} ms, {len(listed)} listed")
    if rss:
        peak, baseline = rss["peak_mb"], rss["baseline_mb"]
        print(f"4. {args.big} messages of {big_mb:.1f} MB (seeded in {big_seed:.1f} s), "
              f"chunk size {args.big_chunk_size}: peak RSS {peak:.0f} MB (after a warm-up run {baseline:.0f} MB, "
              f"+{peak - baseline:.0f} MB), {rss['seconds']:.1f} s, created {rss['summary']['created']}")
    else:
        print(f"4. the RSS run failed (exit {child.returncode}):\n{child.stderr[-3000:]}")
    return 0


def mailgen_small(index: int) -> bytes:
    """A small plain request (~600 bytes) for the idle-poll mailbox."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "ana.quinonez@cliente.test"
    msg["To"] = MAILBOX_ADDRESS
    msg["Subject"] = f"Solicitud ya procesada {index}"
    msg["Message-ID"] = f"<procesada-{index}@cliente.test>"
    msg["Date"] = "Fri, 04 Dec 2026 09:00:00 -0500"
    msg.set_content(f"Mensaje {index} que ya tiene su solicitud.")
    return msg.as_bytes()


if __name__ == "__main__":
    sys.exit(main())
