"""Pytest fixtures for real IMAP servers: Dovecot IMAPS and a local Microsoft-like identity server.

Loaded as a plugin from ``tests/conftest.py`` (``pytest_plugins = ["tests.support.imap_fixtures"]``).
Dovecot and the identity server are session-scoped (start ~50 ms, but a stop costs ~1 s); each
test gets its own mailbox through a fresh user name (the static passdb accepts any name), and its
own app registration at the identity server, so tests never see each other's mail or tokens.
A missing Dovecot fails the tests with the apt command: it is never a silent skip.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.dovecot import PASSWORD, Dovecot, DovecotMissing, make_certificate, new_root, start_dovecot
from tests.support.identity import LocalIdentity

IMAP_PASSWORD_ENV = "IMAP_TEST_PASSWORD"
CLIENT_SECRET_ENV = "IMAP_TEST_CLIENT_SECRET"
REFRESH_TOKEN_ENV = "IMAP_TEST_REFRESH_TOKEN"


def _start(**options) -> Dovecot:
    try:
        return start_dovecot(**options)
    except DovecotMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def identity() -> Iterator[LocalIdentity]:
    """Local Microsoft identity (HTTPS for msal) and the introspection endpoint dovecot calls (HTTP)."""
    workdir = Path(tempfile.mkdtemp(prefix="identity-"))
    cert, key = make_certificate(workdir, "identity")
    server = LocalIdentity(cert, key)
    yield server
    server.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot(identity) -> Iterator[Dovecot]:
    """One Dovecot IMAPS server for the session: password logins and XOAUTH2 via introspection."""
    server = _start(introspection_url=identity.introspection_url)
    yield server
    server.destroy()


@pytest.fixture
def private_dovecot() -> Iterator[Callable[..., Dovecot]]:
    """Start a Dovecot of the test's own (to stop it, or with other settings); destroyed after the test."""
    started: list[Dovecot] = []

    def start(**options) -> Dovecot:
        server = _start(root=new_root("dovecot-private-"), **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.destroy()


@pytest.fixture
def imap_user(dovecot) -> str:
    """A fresh, empty mailbox on the session Dovecot."""
    return f"t{uuid.uuid4().hex[:12]}@helppeople.test"


@pytest.fixture
def imap_password(monkeypatch) -> str:
    """The static passdb's password, exported where configs point (password_env)."""
    monkeypatch.setenv(IMAP_PASSWORD_ENV, PASSWORD)
    return IMAP_PASSWORD_ENV


@pytest.fixture
def trust_identity(identity, monkeypatch) -> LocalIdentity:
    """msal (requests) trusts the local identity server's certificate, as for a TLS-inspecting proxy."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity.cafile))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return identity


def append(server: Dovecot, user: str, messages: list[bytes], when: datetime, folder: str = "INBOX") -> None:
    """Deliver messages with INTERNALDATE ``when`` (what SEARCH SINCE and the day window read)."""
    client = server.client(user)
    try:
        client.multiappend(folder, [{"msg": raw, "date": when} for raw in messages])
    finally:
        client.logout()


def flags_of(server: Dovecot, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
    """Every message's FLAGS, read without changing anything (EXAMINE)."""
    client = server.client(user)
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        data = client.fetch(uids, ["FLAGS"]) if uids else {}
        return {uid: {flag.decode() for flag in item[b"FLAGS"]} for uid, item in data.items()}
    finally:
        client.logout()
