"""The user matrix is a cached dataset: read from parquet while fresh, refreshed when stale (R4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from tasks.user_matrix import current_matrix, dataset_path, lookup, matrix_frame

USERS = [
    {"id": "u-1", "email": "Ana.Quinonez@Cliente.test", "name": "Ana Cristina Quiñonez"},
    {"id": "u-2", "email": "jorge@acme.test", "name": "Jorge"},
    {"id": "u-3", "email": "", "name": "sin correo"},
]


def test_lookup_is_case_insensitive_and_one_join_for_the_chunk():
    matrix = matrix_frame(USERS, datetime.now(UTC))
    found = lookup(matrix, ["ANA.quinonez@cliente.TEST", "nadie@otro.test", None, "jorge@acme.test"])
    assert found["sender_known"].tolist() == [True, False, False, True]
    assert found["requester_id"].tolist() == ["u-1", None, None, "u-2"]


def test_fresh_dataset_is_not_fetched_again_and_stale_one_is(tmp_path):
    calls: list[int] = []

    def fetch():
        calls.append(1)
        return USERS

    path = dataset_path(tmp_path, "http://127.0.0.1:8765")
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    frame, refreshed = current_matrix(path, timedelta(minutes=15), fetch, now=now)
    assert refreshed and len(frame) == 2 and path.exists()
    _, refreshed = current_matrix(path, timedelta(minutes=15), fetch, now=now + timedelta(minutes=10))
    assert not refreshed and len(calls) == 1
    _, refreshed = current_matrix(path, timedelta(minutes=15), fetch, now=now + timedelta(minutes=16))
    assert refreshed and len(calls) == 2


def test_dataset_is_plain_parquet_with_its_fetch_time(tmp_path):
    path = dataset_path(tmp_path, "http://x")
    current_matrix(path, timedelta(minutes=1), lambda: USERS)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["email", "user_id", "name", "fetched_at"]
    assert frame["email"].tolist() == ["ana.quinonez@cliente.test", "jorge@acme.test"]


def test_each_helpdesk_has_its_own_dataset(tmp_path):
    assert dataset_path(tmp_path, "http://a") != dataset_path(tmp_path, "http://b")


def test_stale_dataset_is_used_when_the_helpdesk_cannot_be_asked(tmp_path):
    path = dataset_path(tmp_path, "http://x")
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    current_matrix(path, timedelta(minutes=15), lambda: USERS, now=now)

    def down():
        raise ConnectionError("helpdesk down")

    frame, refreshed = current_matrix(path, timedelta(minutes=15), down, now=now + timedelta(hours=2))
    assert not refreshed and len(frame) == 2


def test_no_dataset_and_no_helpdesk_is_an_error(tmp_path):
    import pytest

    def down():
        raise ConnectionError("helpdesk down")

    with pytest.raises(ConnectionError):
        current_matrix(dataset_path(tmp_path, "http://x"), timedelta(minutes=15), down)
