"""Shared fixtures: real servers on loopback (reference helpdesk, PostgreSQL), a real Maildir, and
an opt-in Prefect test harness for flow tests (session-scoped: it costs ~10 s to start)."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.helpdesk import run_reference_helpdesk

pytest_plugins = ["tests.support.imap_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
DEMO_USERS = ROOT / "demo" / "users.csv"
PG_ADMIN_URL = os.environ.get("MAILSERVICE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


# -- loopback only ---------------------------------------------------------------------------------
_real_connect = socket.socket.connect


def _loopback_only(sock: socket.socket, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("127."):
            raise RuntimeError(f"test tried to reach {host}: only loopback addresses are allowed in tests")
    return _real_connect(sock, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network_beyond_loopback() -> Iterator[None]:
    socket.socket.connect = _loopback_only  # a guard, not a mock: every real connection still happens
    yield
    socket.socket.connect = _real_connect


# -- Prefect ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory) -> Iterator[str]:
    """A real Prefect API (SQLite) for flow tests; yields its URL so subprocesses can use it too."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_LOCAL_STORAGE_PATH,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-storage")
    with temporary_settings(
        updates={PREFECT_LOCAL_STORAGE_PATH: storage, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    ), prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()


# -- helpdesk --------------------------------------------------------------------------------------
@pytest.fixture
def users_csv(tmp_path) -> Path:
    """The demo users, so demo-like mail from known senders is accepted."""
    path = tmp_path / "users.csv"
    path.write_bytes(DEMO_USERS.read_bytes())
    return path


@pytest.fixture
def helpdesk(tmp_path, users_csv):
    with run_reference_helpdesk(tmp_path / "helpdesk.db", users_csv, token="test-token") as handle:
        yield handle


# -- databases -------------------------------------------------------------------------------------
def create_postgres_database() -> str:
    """A fresh PostgreSQL database (dropped at the end of the session); fails clearly if PG is down."""
    from sqlalchemy import create_engine, text

    name = f"mailservice_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({type(exc).__name__}). The ledger must work on "
            "PostgreSQL: start it (pg_ctlcluster 15 main start) or point MAILSERVICE_TEST_PG at one."
        )
    finally:
        admin.dispose()
    _created_databases.append(name)
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


_created_databases: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    if not _created_databases:
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in _created_databases:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path) -> str:
    """Each ledger test runs on the SQLite default and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return create_postgres_database()


# -- mailbox and config ----------------------------------------------------------------------------
@pytest.fixture
def maildir(tmp_path) -> Path:
    path = tmp_path / "mailbox"
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True)
    return path


@pytest.fixture
def make_config(tmp_path, maildir):
    """Write a service config for the test's helpdesk, ledger and Maildir; returns its path."""

    def build(helpdesk_url: str, ledger: str | None = None, **mailbox_overrides) -> Path:
        box = {
            "name": "soporte",
            "kind": "maildir",
            "path": str(maildir),
            "address": "soporte@helppeople.test",
            "timezone": "America/Bogota",
            "chunk_size": 10,
        }
        box.update(mailbox_overrides)
        config = {
            "helpdesk": {"url": helpdesk_url, "token_env": "HELPDESK_TOKEN", "max_retries": 3,
                         "backoff_factor": 0.05},
            "ledger": ledger or f"sqlite:///{tmp_path / 'ledger.db'}",
            "data_dir": str(tmp_path / "data"),
            "mailboxes": [box],
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    return build


@pytest.fixture
def helpdesk_token(monkeypatch) -> str:
    monkeypatch.setenv("HELPDESK_TOKEN", "test-token")
    return "test-token"


@pytest.fixture
def run_flow(prefect_harness, helpdesk_token):
    """Run the real ingest flow in process against a config file (Prefect test harness).

    Returns the summary, or the failed state when ``expect_failure``; asserts which one it got.
    """
    from flows.ingest_mailbox import ingest_mailbox
    from mailservice import runtime
    from mailservice.config import load_config

    def run(config_path: Path, day=None, expect_failure: bool = False, mailbox: str = "soporte"):
        runtime.use_config(load_config(config_path))
        try:
            state = ingest_mailbox(mailbox=mailbox, day=day, return_state=True)
        finally:
            runtime.use_config(None)
        if expect_failure:
            assert state.is_failed(), state
            return state
        assert state.is_completed(), state.message
        return state.result()

    return run
