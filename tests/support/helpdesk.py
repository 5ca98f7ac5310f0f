"""Run the reference helpdesk on loopback for a test: real HTTP, real SQLite, no mocks.

The server runs in a background thread of the test process on a socket bound before start-up, so
the URL is known up front and there is no free-port race. Stopping is bounded: a test never hangs
on a server that will not go away.
"""

from __future__ import annotations

import csv
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import uvicorn

from mailservice.helpdesk_server import create_app

START_TIMEOUT_SECONDS = 10
STOP_TIMEOUT_SECONDS = 10


class ReferenceHelpdesk:
    """A running reference helpdesk; admin calls bypass faults, so they are safe mid-test."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self._http = requests.Session()
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"ReferenceHelpdesk(url={self.url!r})"  # never the token

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault configuration; omitted keys reset to 'no fault' (PUT semantics)."""
        return self._call("PUT", "/_admin/faults", json=faults)

    def clear_faults(self) -> dict[str, Any]:
        return self.set_faults()

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/_admin/faults")

    def stats(self) -> dict[str, int]:
        """Hits per route since start (or the last reset), faulted ones included."""
        return self._call("GET", "/_admin/stats")["calls"]

    def reset_stats(self) -> None:
        self._call("DELETE", "/_admin/stats")

    def requests(self) -> list[dict[str, Any]]:
        """Every stored request; only call when no faults are set (GET /requests is faultable)."""
        return self._call("GET", "/requests")

    def delete_request(self, request_id: str) -> None:
        """Simulate an agent deleting the request on the helpdesk side."""
        self._call("DELETE", f"/requests/{request_id}")

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"{self.url}{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None


class _QuietServer(uvicorn.Server):
    """A uvicorn server that never touches signal handlers: it runs outside the main thread."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it keep-alive answers wait ~40 ms (Nagle + delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the reference helpdesk thread died during start-up; see the log above")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the reference helpdesk did not start within {START_TIMEOUT_SECONDS} s")
        time.sleep(0.01)


@contextmanager
def run_reference_helpdesk(
    db_path: Path,
    users_csv: Path | None,
    token: str | None = None,
    max_attachment_mb: float = 25,
) -> Iterator[ReferenceHelpdesk]:
    """Serve the reference helpdesk on 127.0.0.1 for the duration of the ``with`` block."""
    app = create_app(Path(db_path), Path(users_csv) if users_csv else None, token, max_attachment_mb)
    sock = _bound_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = _QuietServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="reference-helpdesk", daemon=True)
    thread.start()
    handle = ReferenceHelpdesk(f"http://127.0.0.1:{port}", token)
    try:
        _wait_started(server, thread)
        yield handle
    finally:
        handle.close()
        server.should_exit = True
        thread.join(STOP_TIMEOUT_SECONDS)
        sock.close()


def write_users_csv(path: Path, users: list[tuple[str, str]]) -> Path:
    """Write a user matrix CSV (``email,name``) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows(users)
    return path
