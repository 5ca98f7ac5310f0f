"""The validate stage's rules (R4, R5, R6, R7, R11) as a Great Expectations suite over a chunk.

Each chunk's parsed fields become one pandas DataFrame row per message; the suite runs once per
chunk, and every failed expectation becomes a reason on the rows it failed. Each expectation says
in its ``meta`` which reason it stands for and whether it refuses the message (``reject``) or only
adds a note to it (``note``: the request is still created, R7 and R11 decisions).
No Prefect here; Great Expectations is imported lazily because it takes seconds to import.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd

from tasks.classify import classify
from tasks.clean import normalized_subject
from tasks.extract import Extracted
from tasks.model import Classification, MessageRef, ParsedMessage
from tasks.parse import body_present
from tasks.user_matrix import lookup

if TYPE_CHECKING:
    import great_expectations as gx

# When several reasons apply, the first in this order is the one recorded as *the* reason
# (all of them are kept as signals). R6 kinds come first: a bounce is a bounce even from a stranger.
REASON_ORDER = (
    "bounce",
    "auto_reply",
    "reply",
    "forward",
    "unknown_sender",
    "not_addressed_to_mailbox",
    "missing_subject",
    "missing_body",
)
KIND_COLUMN_REASON = "{kind}"  # the R6 expectation's reason is the row's own kind


@dataclass(frozen=True)
class Verdict:
    """What validation says about one message."""

    reasons: tuple[str, ...] = ()  # refusing reasons, in REASON_ORDER
    notes: tuple[str, ...] = ()  # non-refusing findings (subject_shortened, attachment_over_limit)
    requester_id: str | None = None

    @property
    def accepted(self) -> bool:
        return not self.reasons

    @property
    def reason(self) -> str | None:
        return self.reasons[0] if self.reasons else None


@dataclass(frozen=True)
class Limits:
    subject_max_chars: int = 80
    attachment_max_bytes: int = 20 * 1024 * 1024
    keep_emoji: bool = False


def validation_frame(
    items: Sequence[tuple[MessageRef, ParsedMessage, Classification]],
    matrix: pd.DataFrame,
    mailbox_address: str,
    limits: Limits,
) -> pd.DataFrame:
    """One row per message with the fields the suite checks; never any nulls in checked columns."""
    senders = lookup(matrix, [parsed.sender for _, parsed, _ in items])
    address = mailbox_address.lower()
    rows = []
    for (_ref, parsed, kind), (_, match) in zip(items, senders.iterrows(), strict=True):
        largest = max((a.size for a in parsed.attachments), default=0)
        rows.append(
            {
                "message_key": parsed.key,
                "kind": kind.kind,
                "sender_known": bool(match["sender_known"]),
                "requester_id": match["requester_id"],
                "addressed_to_mailbox": address in parsed.recipients,
                "subject_chars": len(normalized_subject(parsed.subject, keep_emoji=limits.keep_emoji)),
                "body_present": bool(body_present(parsed)),
                "largest_attachment_bytes": largest,
            }
        )
    columns = [
        "message_key", "kind", "sender_known", "requester_id", "addressed_to_mailbox",
        "subject_chars", "body_present", "largest_attachment_bytes",
    ]
    return pd.DataFrame(rows, columns=columns)


def _expectations(limits: Limits) -> list[gx.expectations.Expectation]:
    import great_expectations as gx

    e = gx.expectations
    return [
        e.ExpectColumnValuesToBeInSet(
            column="kind", value_set=["new"], meta={"reason": KIND_COLUMN_REASON, "severity": "reject", "rule": "R6"}
        ),
        e.ExpectColumnValuesToBeInSet(
            column="sender_known", value_set=[True],
            meta={"reason": "unknown_sender", "severity": "reject", "rule": "R4"},
        ),
        e.ExpectColumnValuesToBeInSet(
            column="addressed_to_mailbox", value_set=[True],
            meta={"reason": "not_addressed_to_mailbox", "severity": "reject", "rule": "R5"},
        ),
        e.ExpectColumnValuesToBeBetween(
            column="subject_chars", min_value=1,
            meta={"reason": "missing_subject", "severity": "reject", "rule": "R5"},
        ),
        e.ExpectColumnValuesToBeInSet(
            column="body_present", value_set=[True],
            meta={"reason": "missing_body", "severity": "reject", "rule": "R5"},
        ),
        e.ExpectColumnValuesToBeBetween(
            column="subject_chars", max_value=limits.subject_max_chars,
            meta={"reason": "subject_shortened", "severity": "note", "rule": "R7"},
        ),
        e.ExpectColumnValuesToBeBetween(
            column="largest_attachment_bytes", max_value=limits.attachment_max_bytes,
            meta={"reason": "attachment_over_limit", "severity": "note", "rule": "R11"},
        ),
    ]


class _Suite:
    """A process-wide ephemeral GX context; GX contexts are not thread-safe, so runs are serialised."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas("mail_chunks")
        self.batch_definition = source.add_dataframe_asset("chunk").add_batch_definition_whole_dataframe("whole")
        self._suites: dict[Limits, gx.ExpectationSuite] = {}

    def suite(self, limits: Limits):
        import great_expectations as gx

        if limits not in self._suites:
            name = f"mail-intake-{len(self._suites)}"
            suite = self.context.suites.add(gx.ExpectationSuite(name=name))
            for expectation in _expectations(limits):
                suite.add_expectation(expectation)
            self._suites[limits] = suite
        return self._suites[limits]

    def validate(self, frame: pd.DataFrame, limits: Limits):
        with self._lock:
            batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
            return batch.validate(
                self.suite(limits),
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["message_key"]},
            )


_suite_lock = threading.Lock()


@lru_cache(maxsize=1)
def _build_suite() -> _Suite:
    return _Suite()


def _shared_suite() -> _Suite:
    """One GX context per process, even when four chunk threads ask for it at once."""
    with _suite_lock:
        return _build_suite()


@dataclass
class SuiteReport:
    """Per-message verdicts plus the suite's own statistics (for artifacts and Data Docs)."""

    verdicts: dict[str, Verdict]
    expectation_stats: list[dict] = field(default_factory=list)
    result_json: dict | None = None  # the GX validation result, for Data Docs


def run_suite(frame: pd.DataFrame, limits: Limits) -> SuiteReport:
    """Validate the chunk; every failed expectation turns into a reason on the rows it failed."""
    reasons: dict[str, set[str]] = {key: set() for key in frame["message_key"]}
    notes: dict[str, set[str]] = {key: set() for key in frame["message_key"]}
    stats: list[dict] = []
    result_json = None
    if not frame.empty:
        kinds = dict(zip(frame["message_key"], frame["kind"], strict=True))
        result = _shared_suite().validate(frame, limits)
        result_json = result.to_json_dict()
        for item in result.results:
            meta = item.expectation_config.meta or {}
            failed_keys = [row["message_key"] for row in (item.result.get("unexpected_index_list") or [])]
            stats.append(
                {
                    "rule": meta.get("rule"),
                    "reason": meta.get("reason"),
                    "expectation": item.expectation_config.type,
                    "success": bool(item.success),
                    "unexpected": len(failed_keys),
                }
            )
            target = reasons if meta.get("severity") == "reject" else notes
            for key in failed_keys:
                reason = meta["reason"].format(kind=kinds[key])
                target[key].add(reason)
    requester = dict(zip(frame["message_key"], frame["requester_id"], strict=True)) if not frame.empty else {}
    verdicts = {
        key: Verdict(
            reasons=tuple(r for r in REASON_ORDER if r in reasons[key]),
            notes=tuple(sorted(notes[key])),
            requester_id=requester.get(key),
        )
        for key in reasons
    }
    return SuiteReport(verdicts, stats, result_json)


@dataclass
class Judged:
    """A message after validation: its R6 class and the suite's verdict (None when quarantined)."""

    item: Extracted
    classification: Classification | None = None
    verdict: Verdict | None = None


def judge_chunk(
    chunk: Sequence[Extracted],
    matrix: pd.DataFrame,
    mailbox_address: str,
    limits: Limits,
) -> tuple[list[Judged], SuiteReport]:
    """Classify every parsed message (R6), then run the suite over the whole chunk at once."""
    parsed = [item for item in chunk if item.parsed is not None]
    classified = [classify(item.parsed, own_addresses=[mailbox_address]) for item in parsed]
    frame = validation_frame(
        [(item.ref, item.parsed, kind) for item, kind in zip(parsed, classified, strict=True)],
        matrix,
        mailbox_address,
        limits,
    )
    report = run_suite(frame, limits)
    kinds = {id(item): kind for item, kind in zip(parsed, classified, strict=True)}
    judged = [
        Judged(item)
        if item.parsed is None
        else Judged(item, kinds[id(item)], report.verdicts[item.parsed.key])
        for item in chunk
    ]
    return judged, report
