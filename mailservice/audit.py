"""The audit dataset (R18): ledger rows become two tables the data team can query and export.

* **messages** — one row per message the ledger knows (no bodies): its outcome, reason, request,
  sizes, runs and the minutes from arrival to request;
* **summary** — one row per (mailbox, day): arrived, created, refused by reason, failed,
  quarantined, pending, and the median and 95th percentile of the arrival → request latency.

The numbers add up by construction: every ledger row has exactly one outcome, so
``arrived = created + refused + failed + quarantined + pending``. A message whose request already
existed ("already_created" in a run's totals) is a ``created`` row here: the ledger keeps one row
per message, not one per run. Where the nightly reconciliation counted the mailbox itself for that
day, the summary also says how many messages the mailbox held (``in_mailbox``).

Pure: rows in, pandas DataFrames out, no database and no Prefect. The column lists below are the
schema documented in ``docs/audit-schema.md``; parquet files are written with exactly these Arrow
types, so pandas, DuckDB or Spark read them with no project code.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

OUTCOMES = ("created", "rejected", "failed", "quarantined", "pending")
FORMATS = ("table", "csv", "parquet", "json")

# name → Arrow type. Order is the column order of every output.
MESSAGE_SCHEMA = pa.schema(
    [
        ("mailbox", pa.string()),
        ("day", pa.date32()),
        ("message_key", pa.string()),
        ("source_id", pa.string()),
        ("message_id", pa.string()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("sender", pa.string()),
        ("subject", pa.string()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("signals", pa.string()),
        ("request_id", pa.string()),
        ("request_number", pa.int64()),
        ("request_created_at", pa.timestamp("us", tz="UTC")),
        ("latency_min", pa.float64()),
        ("size_bytes", pa.int64()),
        ("attachments", pa.int64()),
        ("attachments_omitted", pa.int64()),
        ("attempts", pa.int64()),
        ("marked_processed", pa.bool_()),
        ("quarantine_id", pa.int64()),
        ("replays", pa.int64()),
        ("first_run_id", pa.string()),
        ("last_run_id", pa.string()),
        ("first_seen_at", pa.timestamp("us", tz="UTC")),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)

SUMMARY_SCHEMA = pa.schema(
    [
        ("mailbox", pa.string()),
        ("day", pa.date32()),
        ("arrived", pa.int64()),
        ("created", pa.int64()),
        ("refused_total", pa.int64()),
        ("refused", pa.string()),  # JSON object reason → count (a real object in --format json)
        ("failed", pa.int64()),
        ("quarantined", pa.int64()),
        ("pending", pa.int64()),
        ("latency_p50_min", pa.float64()),
        ("latency_p95_min", pa.float64()),
        ("in_mailbox", pa.int64()),
        ("reconciled_at", pa.timestamp("us", tz="UTC")),
        ("reconcile_status", pa.string()),
    ]
)

_TIMESTAMPS = {f.name for schema in (MESSAGE_SCHEMA, SUMMARY_SCHEMA) for f in schema if pa.types.is_timestamp(f.type)}
_INTEGERS = {f.name for schema in (MESSAGE_SCHEMA, SUMMARY_SCHEMA) for f in schema if pa.types.is_integer(f.type)}


def utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime. SQLite returns naive datetimes: the ledger writes UTC, so naive means UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 60, 3)


def message_frame(
    rows: Iterable[dict], kept: Iterable[dict] = (), replays: Iterable[dict] = ()
) -> pd.DataFrame:
    """Ledger ``mail_messages`` rows (+ kept raw index, replays) → the audit's message rows."""
    kept_ids = {(k["mailbox"], k["message_key"]): k["id"] for k in kept}
    replay_counts: dict[tuple[str, str], int] = {}
    for replay in replays:
        ident = (replay["mailbox"], replay["message_key"])
        replay_counts[ident] = replay_counts.get(ident, 0) + 1
    records = []
    for row in rows:
        ident = (row["mailbox"], row["message_key"])
        received, requested = utc(row["received_at"]), utc(row.get("request_created_at"))
        created = row["outcome"] == "created"
        records.append(
            {
                "mailbox": row["mailbox"],
                "day": _as_date(row["day"]),
                "message_key": row["message_key"],
                "source_id": row["source_id"],
                "message_id": row.get("message_id"),
                "received_at": received,
                "sender": row.get("sender"),
                "subject": row.get("subject"),
                "outcome": row["outcome"],
                "reason": row.get("reason"),
                "detail": row.get("detail"),
                "signals": "; ".join(row.get("signals") or []),
                "request_id": row.get("request_id"),
                "request_number": row.get("request_number"),
                "request_created_at": requested if created else None,
                "latency_min": _minutes(received, requested) if created else None,
                "size_bytes": row.get("size_bytes") or 0,
                "attachments": row.get("attachments") or 0,
                "attachments_omitted": row.get("attachments_omitted") or 0,
                "attempts": row.get("attempts") or 0,
                "marked_processed": bool(row.get("marked_processed")),
                "quarantine_id": kept_ids.get(ident),
                "replays": replay_counts.get(ident, 0),
                "first_run_id": row.get("first_run_id"),
                "last_run_id": row.get("last_run_id"),
                "first_seen_at": utc(row.get("first_seen_at")),
                "updated_at": utc(row.get("updated_at")),
            }
        )
    return _typed(records, MESSAGE_SCHEMA)


def _percentile(values: Sequence[float], q: float) -> float | None:
    clean = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not clean:
        return None
    return round(float(np.percentile(clean, q)), 2)


def summary_frame(messages: pd.DataFrame, reconciliations: Iterable[dict] = ()) -> pd.DataFrame:
    """One row per (mailbox, day) of the message rows, plus days only a reconciliation saw.

    ``reconciliations`` are ``mail_reconciliations`` rows; the latest one per (mailbox, day) gives
    ``in_mailbox``, ``reconciled_at`` and ``reconcile_status``.
    """
    latest: dict[tuple[str, date], dict] = {}
    for rec in reconciliations:
        ident = (rec["mailbox"], _as_date(rec["day"]))
        if ident not in latest or utc(rec["finished_at"]) >= utc(latest[ident]["finished_at"]):
            latest[ident] = rec
    groups: dict[tuple[str, date], pd.DataFrame] = {}
    if not messages.empty:
        for (mailbox, day), group in messages.groupby(["mailbox", "day"], sort=True):
            groups[(mailbox, day)] = group
    records = []
    for mailbox, day in sorted(set(groups) | set(latest)):
        group = groups.get((mailbox, day))
        counts = group["outcome"].value_counts().to_dict() if group is not None else {}
        refused: dict[str, int] = {}
        latencies: list[float] = []
        if group is not None:
            rejected = group[group["outcome"] == "rejected"]
            refused = {str(k): int(v) for k, v in sorted(rejected["reason"].fillna("unknown").value_counts().items())}
            latencies = [float(v) for v in group.loc[group["outcome"] == "created", "latency_min"].dropna()]
        rec = latest.get((mailbox, day))
        records.append(
            {
                "mailbox": mailbox,
                "day": day,
                "arrived": 0 if group is None else len(group),
                "created": int(counts.get("created", 0)),
                "refused_total": sum(refused.values()),
                "refused": json.dumps(refused, sort_keys=True),
                "failed": int(counts.get("failed", 0)),
                "quarantined": int(counts.get("quarantined", 0)),
                "pending": int(counts.get("pending", 0)),
                "latency_p50_min": _percentile(latencies, 50),
                "latency_p95_min": _percentile(latencies, 95),
                "in_mailbox": rec["in_mailbox"] if rec else None,
                "reconciled_at": utc(rec["finished_at"]) if rec else None,
                "reconcile_status": rec["status"] if rec else None,
            }
        )
    return _typed(records, SUMMARY_SCHEMA)


def _typed(records: list[dict], schema: pa.Schema) -> pd.DataFrame:
    """A DataFrame with the schema's columns in order: nullable Int64, UTC timestamps, dates as dates."""
    frame = pd.DataFrame.from_records(records, columns=schema.names)
    for name in schema.names:
        if name in _TIMESTAMPS:
            frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
        elif name in _INTEGERS:
            frame[name] = frame[name].astype("Int64")
        elif pa.types.is_floating(schema.field(name).type):
            frame[name] = frame[name].astype("float64")
        elif pa.types.is_boolean(schema.field(name).type):
            frame[name] = frame[name].astype("bool")
    return frame


# -- outputs ---------------------------------------------------------------------------------------
def _schema_for(frame: pd.DataFrame) -> pa.Schema:
    return SUMMARY_SCHEMA if list(frame.columns) == SUMMARY_SCHEMA.names else MESSAGE_SCHEMA


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table with the documented types (and no pandas index)."""
    schema = _schema_for(frame)
    columns = {}
    for field in schema:
        values = frame[field.name].tolist()
        columns[field.name] = pa.array([None if _missing(v) else v for v in values], type=field.type)
    return pa.table(columns, schema=schema)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _json_value(name: str, value: Any) -> Any:
    if _missing(value):
        return None
    if name == "refused" and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def json_records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready dicts: ISO dates and timestamps, nulls as None, ``refused`` as an object."""
    return [
        {name: _json_value(name, value) for name, value in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def to_json_lines(frame: pd.DataFrame) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in json_records(frame))


def to_csv(frame: pd.DataFrame) -> str:
    out = frame.copy()
    for name in out.columns:
        if name in _TIMESTAMPS:
            out[name] = [None if _missing(v) else v.isoformat() for v in out[name]]
    return out.to_csv(index=False, lineterminator="\n")


TABLE_SUMMARY_COLUMNS = [
    "mailbox", "day", "arrived", "created", "refused_total", "failed", "quarantined", "pending",
    "latency_p50_min", "latency_p95_min", "in_mailbox",
]
TABLE_MESSAGE_COLUMNS = [
    "mailbox", "day", "received_at", "outcome", "reason", "request_number", "latency_min", "sender", "subject",
]


def to_table(frame: pd.DataFrame) -> str:
    """For a terminal: the main columns (csv, json and parquet have them all); refusals under each day."""
    if frame.empty:
        return "(no rows)\n"
    summary = list(frame.columns) == SUMMARY_SCHEMA.names
    out = frame[TABLE_SUMMARY_COLUMNS if summary else TABLE_MESSAGE_COLUMNS].copy()
    out = out.rename(columns={"refused_total": "refused", "latency_p50_min": "p50_min", "latency_p95_min": "p95_min"})
    if not summary:
        out["received_at"] = [v.strftime("%Y-%m-%d %H:%M:%SZ") for v in out["received_at"]]
        out["subject"] = [v if _missing(v) or len(v) <= 50 else v[:47] + "..." for v in out["subject"]]
    out = out.astype(object).where(out.notna(), "-")
    lines = out.to_string(index=False).splitlines()
    if not summary:
        return "\n".join(lines) + "\n"
    text = [lines[0]]
    for line, refused in zip(lines[1:], frame["refused"], strict=True):
        text.append(line)
        reasons = json.loads(refused)
        if reasons:
            text.append("    refused: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    return "\n".join(text) + "\n"


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_arrow(frame), path)


def render(frame: pd.DataFrame, fmt: str) -> str | bytes:
    """The frame in one of FORMATS; parquet is bytes, the others text."""
    if fmt == "json":
        return to_json_lines(frame)
    if fmt == "csv":
        return to_csv(frame)
    if fmt == "table":
        return to_table(frame)
    if fmt == "parquet":
        buffer = io.BytesIO()
        pq.write_table(to_arrow(frame), buffer)
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def totals(summary: pd.DataFrame) -> dict:
    """Summary rows added up (for reports): arrived, each outcome, refused by reason."""
    refused: dict[str, int] = {}
    for value in summary.get("refused", []):
        for reason, count in json.loads(value).items():
            refused[reason] = refused.get(reason, 0) + count
    return {
        "arrived": int(summary["arrived"].sum()) if len(summary) else 0,
        "created": int(summary["created"].sum()) if len(summary) else 0,
        "refused": dict(sorted(refused.items())),
        "refused_total": sum(refused.values()),
        "failed": int(summary["failed"].sum()) if len(summary) else 0,
        "quarantined": int(summary["quarantined"].sum()) if len(summary) else 0,
        "pending": int(summary["pending"].sum()) if len(summary) else 0,
    }
