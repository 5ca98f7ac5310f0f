"""The user matrix (R4) as a dataset: one parquet file per helpdesk, with the time it was fetched.

Ingest never asks the helpdesk about one sender at a time: it reads this dataset (refreshed when
older than its TTL) and joins a whole chunk's senders against it. The file is an ordinary parquet
the data team can open in pandas or DuckDB; the fetch time is a column, so staleness is visible.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

COLUMNS = ["email", "user_id", "name", "fetched_at"]


def dataset_path(data_dir: Path, helpdesk_url: str) -> Path:
    """One dataset per helpdesk, so two clients' helpdesks never share a matrix."""
    digest = hashlib.sha256(helpdesk_url.encode()).hexdigest()[:12]
    return Path(data_dir) / "user_matrix" / f"users-{digest}.parquet"


def matrix_frame(users: Iterable[dict], fetched_at: datetime) -> pd.DataFrame:
    """Helpdesk users → the dataset's frame; e-mails lower-cased and stripped (R4: case-insensitive)."""
    rows = []
    for user in users:
        email = str(user.get("email") or "").strip().lower()
        if email:
            rows.append({"email": email, "user_id": str(user.get("id", "")), "name": str(user.get("name") or "")})
    frame = pd.DataFrame(rows, columns=["email", "user_id", "name"]).drop_duplicates("email", keep="first")
    frame["fetched_at"] = pd.Timestamp(fetched_at)
    return frame.reset_index(drop=True)


def write_dataset(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically: a reader never sees half a file, even with two mailboxes refreshing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def read_dataset(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        return None


def age(frame: pd.DataFrame, now: datetime) -> timedelta | None:
    if frame.empty or "fetched_at" not in frame:
        return None
    fetched = pd.Timestamp(frame["fetched_at"].iloc[0])
    if fetched.tzinfo is None:
        fetched = fetched.tz_localize(UTC)
    return now - fetched.to_pydatetime()


def current_matrix(
    path: Path, ttl: timedelta, fetch_users: Callable[[], list[dict]], now: datetime | None = None
) -> tuple[pd.DataFrame, bool]:
    """The cached matrix if younger than ``ttl``, else a fresh one. Returns (frame, refreshed).

    When the helpdesk cannot be asked, an older dataset is still better than no intake: it is used
    (the caller logs it as stale). With no dataset at all, the helpdesk's error propagates.
    """
    now = now or datetime.now(UTC)
    cached = read_dataset(path)
    if cached is not None:
        cached_age = age(cached, now)
        if cached_age is not None and cached_age < ttl:
            return cached, False
    try:
        users = fetch_users()
    except Exception:
        if cached is not None:
            return cached, False
        raise
    frame = matrix_frame(users, now)
    write_dataset(frame, path)
    return frame, True


def lookup(matrix: pd.DataFrame, senders: Iterable[str | None]) -> pd.DataFrame:
    """Join senders against the matrix in one go: columns sender, sender_known, requester_id."""
    wanted = pd.DataFrame({"sender": pd.Series([(s or "").strip().lower() for s in senders], dtype=object)})
    matrix = matrix.astype({"email": object, "user_id": object})
    joined = wanted.merge(
        matrix[["email", "user_id"]].rename(columns={"email": "sender", "user_id": "requester_id"}),
        on="sender",
        how="left",
    )
    joined["sender_known"] = joined["requester_id"].notna() & (joined["sender"] != "")
    joined["requester_id"] = joined["requester_id"].astype(object).where(joined["sender_known"], None)
    return joined


def refresher(path: Path, fetch_users: Callable[[], list[dict]]) -> Callable[[str], str | None]:
    """For the loader: refetch the matrix now (the cached one was stale) and look one address up."""

    def refresh_and_find(email: str) -> str | None:
        frame, _ = current_matrix(path, timedelta(0), fetch_users)
        found = lookup(frame, [email])
        return found["requester_id"].iloc[0] if bool(found["sender_known"].iloc[0]) else None

    return refresh_and_find
