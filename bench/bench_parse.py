"""Throughput of the pure pipeline (parse + classify + clean) on one core, and its cost on abuse.

Prints figures, asserts nothing. Measures, in this process, pinned to one CPU where the OS allows:
  - messages/s over the test corpus (tests/corpus/*.eml) and over N messages of bench/mailgen.py,
    per stage (parse, classify, clean) and together; the bare stdlib parse of the same bytes for
    reference (email.policy.default, which the issue's ~330/s figure refers to, and compat32);
  - the Great Expectations validate stage, amortised per message in chunks of 100 (optional);
  - pathological input: a single-line HTML body, tag soup and deeply nested HTML at 1, 2, 4 and
    5 MB, and nested multiparts; time per MB should stay flat (linear cost).
Each figure is the best of --rounds runs: the machine is shared, and the best run is the one
least disturbed by other work.

Usage: python bench/bench_parse.py [--n 1000] [--rounds 3] [--no-validate]
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import mailgen  # noqa: E402

from tasks.classify import classify  # noqa: E402
from tasks.clean import build_request_draft  # noqa: E402
from tasks.parse import UnparseableMessage, parse_message  # noqa: E402

RECEIVED = datetime(2025, 12, 2, 12, tzinfo=UTC)


def best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times)


def parseable(raws: list[bytes]) -> list[bytes]:
    kept = []
    for raw in raws:
        try:
            parse_message(raw)
        except UnparseableMessage:
            continue
        kept.append(raw)
    return kept


def throughput(label: str, raws: list[bytes], rounds: int) -> None:
    raws = parseable(raws)
    n = len(raws)
    size_kb = sum(map(len, raws)) / n / 1024
    parsed = [parse_message(raw) for raw in raws]  # warm-up, and the input of the later stages

    def chain() -> None:
        for raw in raws:
            msg = parse_message(raw)
            classify(msg, ("soporte@helppeople.test",))
            build_request_draft(msg, requester_id="u-1", received_at=RECEIVED)

    t_parse = best(lambda: [parse_message(raw) for raw in raws], rounds)
    t_classify = best(lambda: [classify(msg, ("soporte@helppeople.test",)) for msg in parsed], rounds)
    t_clean = best(lambda: [build_request_draft(m, requester_id="u-1", received_at=RECEIVED) for m in parsed], rounds)
    t_chain = best(chain, rounds)
    default = email.parser.BytesParser(policy=email.policy.default)
    compat = email.parser.BytesParser(policy=email.policy.compat32)
    t_default = best(lambda: [default.parsebytes(raw) for raw in raws], rounds)
    t_compat = best(lambda: [compat.parsebytes(raw) for raw in raws], rounds)
    print(f"\n{label}: {n} messages, average {size_kb:.1f} KB")
    print(f"  parse + classify + clean     {n / t_chain:7.0f} messages/s   ({t_chain * 1000 / n:.2f} ms/message)")
    print(f"    parse                      {n / t_parse:7.0f} messages/s")
    print(f"    classify                   {n / t_classify:7.0f} messages/s")
    print(f"    clean (R7-R11, HTML→text)  {n / t_clean:7.0f} messages/s")
    print(f"  stdlib parse, policy.default {n / t_default:7.0f} messages/s   (reference: the bare stdlib parse)")
    print(f"  stdlib parse, compat32       {n / t_compat:7.0f} messages/s")


def validate_cost(raws: list[bytes], rounds: int) -> None:
    from tasks.extract import parse_raw
    from tasks.model import MessageRef, RawMessage
    from tasks.user_matrix import matrix_frame
    from tasks.validation import Limits, judge_chunk

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    users = mailgen.make_users(50)
    matrix = matrix_frame([{"id": f"u-{i}", "email": e} for i, (e, _) in enumerate(users)], RECEIVED)
    items = [parse_raw(RawMessage(MessageRef(str(i), RECEIVED), raw)) for i, raw in enumerate(raws)]
    chunks = [items[i : i + 100] for i in range(0, len(items), 100)]
    judge_chunk(chunks[0], matrix, "soporte@helppeople.test", Limits())  # imports Great Expectations
    elapsed = best(lambda: [judge_chunk(c, matrix, "soporte@helppeople.test", Limits()) for c in chunks], rounds)
    print(f"\nvalidate (classify + Great Expectations suite), chunks of 100: {len(items) / elapsed:.0f} messages/s "
          f"({elapsed / len(chunks) * 1000:.0f} ms per chunk)")


# --------------------------------------------------------------------------------------------
# Pathological input
# --------------------------------------------------------------------------------------------

HEAD = b"From: Ana <ana.quinonez@cliente.test>\nTo: soporte@helppeople.test\nSubject: abuso\nMIME-Version: 1.0\n"


def html_message(html: str) -> bytes:
    return HEAD + b"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + html.encode()


def single_line(size: int) -> str:
    unit = "palabra <b>negrita</b> y un <a href='https://x.co/p'>enlace</a>. texto corrido sin etiquetas "
    return "<html><body><p>" + unit * (size // len(unit)) + "</p></body></html>"


def tag_soup(size: int) -> str:
    """Unclosed and stray tags, broken entities and text; the same stream for every size (a prefix)."""
    rng = random.Random(7)
    pieces = ["<div>", "</div>", "<p>", "</p>", "<b>", "</b>", "</i>", "<td>", "</td>", "<tr>", "</tr>", "<table>",
              "</table>", "<li>", "</li>", "<ul>", "</ul>", "<br>", "<a href='https://x.co'>", "</a>", "<", ">",
              "&amp;", "&#99999999;", "<span class=x>", "</span>", "<img src=cid:x@y width=3>", "<font face=Arial>",
              "</font>", "<o:p>", "</o:p>", "texto ", "más texto ", "ñandú ", "<blockquote>", "</blockquote>"]
    out, total = [], 0
    while total < size:
        piece = rng.choice(pieces)
        out.append(piece)
        total += len(piece)
    return "".join(out)


def nested_html(size: int) -> str:
    depth = size // 12
    return "<div><span>" * (depth // 2) + "hondo" + "</span></div>" * (depth // 2)


def nested_multipart(levels: int) -> bytes:
    parts = [HEAD + b"Content-Type: multipart/mixed; boundary=b0\n\n"]
    for i in range(1, levels):
        parts.append(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i))
    parts.append(b"--b%d\nContent-Type: text/plain\n\nhola\n" % (levels - 1))
    parts += [b"--b%d--\n" % i for i in reversed(range(levels))]
    return b"".join(parts)


def run_once(raw: bytes) -> str:
    try:
        msg = parse_message(raw)
    except UnparseableMessage as exc:
        return f"refused ({exc.reason})"
    classify(msg)
    draft = build_request_draft(msg, requester_id=None, received_at=RECEIVED)
    return f"{len(draft.description) / 1e6:.2f} M chars of description"


def pathological(rounds: int) -> None:
    print("\npathological input (parse + classify + clean of one message); time per MB should stay flat")
    mb = 1024 * 1024
    for label, make in (("single-line HTML body", single_line), ("tag soup", tag_soup),
                        ("HTML nested 2 levels per 24 bytes", nested_html)):
        for size in (1, 2, 4, 5):
            raw = html_message(make(size * mb))
            outcome = run_once(raw)
            elapsed = best(lambda raw=raw: run_once(raw), rounds)
            print(f"  {label:34} {size} MB: {elapsed:6.2f} s  {elapsed / size:5.2f} s/MB   {outcome}")
    for levels in (10, 30, 31, 1000, 10000, 50000):
        raw = nested_multipart(levels)
        outcome = run_once(raw)
        elapsed = best(lambda raw=raw: run_once(raw), rounds)
        print(f"  multipart nested {levels:>5} levels ({len(raw) / 1024:7.0f} KB): {elapsed * 1000:8.1f} ms  {outcome}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="generated messages (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure; the best is printed (default 3)")
    parser.add_argument("--no-validate", action="store_true", help="skip the Great Expectations stage")
    parser.add_argument("--no-pathological", action="store_true", help="skip the abuse figures")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        print("pinned to one CPU")
    corpus = [path.read_bytes() for path in sorted((ROOT / "tests" / "corpus").glob("*.eml"))]
    throughput("corpus (tests/corpus)", corpus, args.rounds)
    users = mailgen.make_users(50)
    generated = list(mailgen.generate_messages(args.n, known_senders=[email for email, _ in users]))
    throughput("generated mail (bench/mailgen.py)", generated, args.rounds)
    if not args.no_validate:
        validate_cost(generated, args.rounds)
    if not args.no_pathological:
        pathological(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
