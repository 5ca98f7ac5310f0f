"""The reference helpdesk: a small, real HTTP server that implements ``docs/helpdesk-api.yaml``.

It exists so that the service can be developed, demonstrated and tested end to end without a
licence for the real helpdesk: the client block talks to it over real HTTP exactly as it would talk
to production. It keeps its data in SQLite so a demo survives restarts, and it can inject faults
(429s, 500s, latency, a slow answer after the commit) so the retry and exactly-once paths are
exercised by tests instead of assumed.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import html
import json
import random
import re
import sqlite3
import threading
import uuid
from base64 import b64decode
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

FIRST_REQUEST_NUMBER = 1001
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000
TITLE_MAX_CHARS = 80  # R7: the helpdesk's title column
FAULTY_PREFIXES = ("/users", "/requests")  # faults never touch "/" or "/_admin/*"


class ApiError(Exception):
    """An error answered as the contract's JSON error object, so every client sees one shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}
        self.extra = extra or {}

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, "field": self.field, **self.extra}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


# --------------------------------------------------------------------------- payload


class RequestIn(BaseModel):
    """The ``request`` part of POST /requests. Unknown fields are refused so client typos surface."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=255)
    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
    description: str = Field(min_length=1)
    requester_email: str = Field(min_length=3, max_length=320)
    requester_id: str | None = None
    channel: Literal["mail"] = "mail"
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    received_at: AwareDatetime | None = None
    notify_requester: bool = False
    assignment_bot: bool = False
    category: str | None = None
    group: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("external_id", "title", "description", "requester_email")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


@dataclass
class AttachmentIn:
    name: str
    content_type: str
    content: bytes


# --------------------------------------------------------------------------- storage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    email_key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    external_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attachments (
    request_number INTEGER NOT NULL REFERENCES requests(number) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (request_number, idx)
);
"""


class Store:
    """SQLite behind one lock: the reference server favours obviously-correct over fast.

    The UNIQUE constraint on ``external_id`` is what makes creation idempotent; the lock only
    keeps this process's connection safe, and ``BEGIN IMMEDIATE`` covers a second process on the
    same file.
    """

    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._seed_request_numbers()

    def _seed_request_numbers(self) -> None:
        """AUTOINCREMENT never reuses a number, so deleted requests leave gaps as in a real helpdesk."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'requests'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('requests', ?)", (FIRST_REQUEST_NUMBER - 1,)
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- users

    def upsert_users(self, users: list[tuple[str | None, str, str]]) -> None:
        """Keep existing ids so request requester_ids stay valid across restarts."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for user_id, email, name in users:
                    self._upsert_user(user_id, email, name)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _upsert_user(self, user_id: str | None, email: str, name: str) -> None:
        key = email.casefold()
        row = self._db.execute("SELECT seq, id FROM users WHERE email_key = ?", (key,)).fetchone()
        if row is not None:
            new_id = user_id or row["id"]
            self._db.execute(
                "UPDATE users SET id = ?, email = ?, name = ? WHERE seq = ?", (new_id, email, name, row["seq"])
            )
            return
        cur = self._db.execute(
            "INSERT INTO users (id, email_key, email, name) VALUES (?, ?, ?, ?)",
            (user_id or f"pending-{uuid.uuid4().hex}", key, email, name),
        )
        if user_id is None:
            seq = cur.lastrowid
            self._db.execute("UPDATE users SET id = ? WHERE seq = ?", (self._free_user_id(seq), seq))

    def _free_user_id(self, seq: int | None) -> str:
        n = seq or 1
        while self._db.execute("SELECT 1 FROM users WHERE id = ?", (f"u-{n}",)).fetchone():
            n += 1
        return f"u-{n}"

    def users_page(self, page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            total = self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
            rows = self._db.execute(
                "SELECT id, email, name FROM users ORDER BY seq LIMIT ? OFFSET ?", (per_page, (page - 1) * per_page)
            ).fetchall()
        return [dict(r) for r in rows], total

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, email, name FROM users WHERE email_key = ?", (email.strip().casefold(),)
            ).fetchone()
        return dict(row) if row else None

    # -- requests

    def create_request(self, fields: dict[str, Any], attachments: list[AttachmentIn]) -> tuple[dict[str, Any], bool]:
        """Insert, or return the request already stored under the same external_id (and False).

        The look-up runs inside ``BEGIN IMMEDIATE``, so even a second server process on the same
        file sees a racing duplicate; the UNIQUE constraint is the last line of defence.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                existing = self._request_by_external_id(fields["external_id"])
                number = None if existing else self._insert_request(fields, attachments)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if existing is not None:
                return existing, False
            return self._request_by_number(number), True  # type: ignore[arg-type,return-value]

    def _insert_request(self, fields: dict[str, Any], attachments: list[AttachmentIn]) -> int:
        body = {**fields, "attachments": [_attachment_meta(a) for a in attachments]}
        cur = self._db.execute(
            "INSERT INTO requests (id, external_id, body) VALUES (?, ?, ?)",
            (fields["id"], fields["external_id"], json.dumps(body, ensure_ascii=False)),
        )
        number = int(cur.lastrowid or 0)
        self._db.executemany(
            "INSERT INTO attachments (request_number, idx, name, content_type, size, content) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(number, i, a.name, a.content_type, len(a.content), a.content) for i, a in enumerate(attachments)],
        )
        return number

    def _request_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT number, body FROM requests WHERE external_id = ?", (external_id,)).fetchone()
        return _request_from_row(row)

    def _request_by_number(self, number: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT number, body FROM requests WHERE number = ?", (number,)).fetchone()
        return _request_from_row(row)

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT number, body FROM requests WHERE id = ?", (request_id,)).fetchone()
        return _request_from_row(row)

    def find_requests(self, external_id: str | None) -> list[dict[str, Any]]:
        with self._lock:
            if external_id is None:
                rows = self._db.execute("SELECT number, body FROM requests ORDER BY number").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT number, body FROM requests WHERE external_id = ? ORDER BY number", (external_id,)
                ).fetchall()
        return [r for r in (_request_from_row(row) for row in rows) if r is not None]

    def delete_request(self, request_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM requests WHERE id = ?", (request_id,))
        return cur.rowcount > 0

    def attachment(self, request_id: str, index: int) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(
                "SELECT a.name, a.content_type, a.content FROM attachments a "
                "JOIN requests r ON r.number = a.request_number WHERE r.id = ? AND a.idx = ?",
                (request_id, index),
            ).fetchone()


def _attachment_meta(attachment: AttachmentIn) -> dict[str, Any]:
    return {"name": attachment.name, "content_type": attachment.content_type, "size": len(attachment.content)}


def _request_from_row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    body = json.loads(row["body"])
    return {"id": body["id"], "number": row["number"], **{k: v for k, v in body.items() if k != "id"}}


# --------------------------------------------------------------------------- user matrix CSV


def read_users_csv(path: Path) -> list[tuple[str | None, str, str]]:
    """Read ``email,name[,id]`` rows; a bad file stops start-up with the line to fix."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {(c or "").strip().lower(): c for c in reader.fieldnames or []}
        missing = {"email", "name"} - columns.keys()
        if missing:
            raise ValueError(
                f"{path}: the users CSV needs a header with columns email,name (optional id); "
                f"missing: {', '.join(sorted(missing))}"
            )
        users = []
        for line, row in enumerate(reader, start=2):
            users.append(_user_from_row(path, line, row, columns))
    return [u for u in users if u is not None]


def _user_from_row(
    path: Path, line: int, row: dict[str, str | None], columns: dict[str, str]
) -> tuple[str | None, str, str] | None:
    email = (row.get(columns["email"]) or "").strip()
    if not email and not any((v or "").strip() for v in row.values() if isinstance(v, str)):
        return None  # blank line
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise ValueError(f"{path}, line {line}: {email!r} is not an e-mail address; fix or remove the row")
    name = (row.get(columns["name"]) or "").strip() or email.split("@", 1)[0]
    user_id = (row.get(columns["id"]) or "").strip() if "id" in columns else ""
    return (user_id or None, email, name)


# --------------------------------------------------------------------------- faults


class FaultsIn(BaseModel):
    """PUT /_admin/faults replaces the whole configuration: omitted fields go back to 'no fault'."""

    model_config = ConfigDict(extra="forbid")

    rate_429: float = Field(0.0, ge=0.0, le=1.0)
    rate_500: float = Field(0.0, ge=0.0, le=1.0)
    latency_ms: int = Field(0, ge=0, le=600_000)
    retry_after_seconds: int = Field(1, ge=0, le=3600)
    sequence: list[int] = Field(default_factory=list)
    delay_after_commit_ms: int = Field(0, ge=0, le=600_000)
    seed: int | None = None

    @field_validator("sequence")
    @classmethod
    def _http_statuses(cls, value: list[int]) -> list[int]:
        bad = [code for code in value if not 100 <= code <= 599]
        if bad:
            raise ValueError(f"not HTTP status codes: {bad}")
        return value


@dataclass
class Faults:
    """Live fault state; ``sequence`` is consumed as requests arrive."""

    config: FaultsIn = field(default_factory=FaultsIn)
    rng: random.Random = field(default_factory=random.Random)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, config: FaultsIn) -> None:
        with self.lock:
            self.config = config.model_copy(deep=True)
            self.rng = random.Random(config.seed)

    def draw(self) -> tuple[int | None, float]:
        """The status to fail with (None: behave normally), and the latency to add first."""
        with self.lock:
            cfg = self.config
            if cfg.sequence:
                return cfg.sequence.pop(0), cfg.latency_ms / 1000
            roll = self.rng.random()
            if roll < cfg.rate_429:
                return 429, cfg.latency_ms / 1000
            if roll < cfg.rate_429 + cfg.rate_500:
                return 500, cfg.latency_ms / 1000
            return None, cfg.latency_ms / 1000

    def fault_response(self, status: int) -> JSONResponse | None:
        if status < 400:
            return None  # a 2xx/3xx in the sequence means "answer this one normally"
        headers = {"Retry-After": str(self.config.retry_after_seconds)} if status == 429 else None
        phrase = _phrase(status)
        return ApiError(
            status,
            phrase.lower().replace(" ", "_"),
            f"Injected fault: the reference helpdesk answers {status} {phrase} (see PUT /_admin/faults).",
            headers=headers,
        ).response()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# --------------------------------------------------------------------------- app


@dataclass
class ServerState:
    store: Store
    token: str | None
    max_attachment_bytes: int
    faults: Faults = field(default_factory=Faults)
    calls: Counter[str] = field(default_factory=Counter)
    calls_lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        with self.calls_lock:
            self.calls[key] += 1


_ROUTE_KEYS = [
    (re.compile(r"^/requests/[^/]+/attachments/[^/]+$"), "/requests/{id}/attachments/{index}"),
    (re.compile(r"^/requests/[^/]+$"), "/requests/{id}"),
]


def route_key(method: str, path: str) -> str:
    """Group hits by route template so stats read like the contract ("POST /requests")."""
    for pattern, template in _ROUTE_KEYS:
        if pattern.match(path):
            return f"{method} {template}"
    return f"{method} {path}"


def create_app(db_path: Path, users_csv: Path | None, token: str | None, max_attachment_mb: float = 25) -> FastAPI:
    """Build the reference helpdesk; users from ``users_csv`` are upserted now, before serving."""
    store = Store(Path(db_path))
    if users_csv is not None:
        store.upsert_users(read_users_csv(Path(users_csv)))
    state = ServerState(store=store, token=token or None, max_attachment_bytes=int(max_attachment_mb * 1024 * 1024))
    app = FastAPI(
        title="helppeople reference helpdesk",
        description="Implements docs/helpdesk-api.yaml for development, demos and tests.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the contract is docs/helpdesk-api.yaml, not the generated schema
    )
    app.state.helpdesk = state
    _install_error_handlers(app)
    _install_middleware(app, state)
    _install_routes(app, state)
    app.router.on_shutdown.append(store.close)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field_name = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return ApiError(422, "invalid_request", str(first.get("msg")), field_name).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        phrase = _phrase(exc.status_code)
        code = "not_found" if exc.status_code == 404 else phrase.lower().replace(" ", "_")
        return ApiError(exc.status_code, code, str(exc.detail or phrase), headers=exc.headers).response()


def _install_middleware(app: FastAPI, state: ServerState) -> None:
    @app.middleware("http")
    async def _count_and_inject_faults(request: Request, call_next):  # type: ignore[no-untyped-def]
        path = request.url.path
        state.count(route_key(request.method, path))
        if path.startswith(FAULTY_PREFIXES):
            status, latency = state.faults.draw()
            if latency:
                await asyncio.sleep(latency)
            faulted = state.faults.fault_response(status) if status else None
            if faulted is not None:
                return faulted
        return await call_next(request)


def _check_auth(request: Request, state: ServerState, browser: bool = False) -> None:
    """Bearer token for API clients; the HTML page also takes Basic auth (password = token) for browsers."""
    if state.token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    presented = credentials.strip() if scheme.lower() == "bearer" else None
    if browser and scheme.lower() == "basic":
        presented = _basic_password(credentials.strip())
    if presented is not None and hmac.compare_digest(presented.encode(), state.token.encode()):
        return
    challenge = 'Basic realm="helpdesk"' if browser else 'Bearer realm="helpdesk"'
    raise ApiError(
        401,
        "unauthorized",
        "Missing or wrong token: send 'Authorization: Bearer <token>' with the helpdesk's API token.",
        headers={"WWW-Authenticate": challenge},
    )


def _basic_password(encoded: str) -> str | None:
    try:
        return b64decode(encoded, validate=True).decode("utf-8").partition(":")[2]
    except (ValueError, UnicodeDecodeError):
        return None


def _install_routes(app: FastAPI, state: ServerState) -> None:
    _install_user_routes(app, state)
    _install_request_routes(app, state)
    _install_admin_routes(app, state)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request) -> HTMLResponse:
        _check_auth(request, state, browser=True)
        rows = await run_in_threadpool(state.store.find_requests, None)
        return HTMLResponse(render_index(rows))


def _page_params(request: Request) -> tuple[int, int]:
    page = _int_param(request, "page", 1, minimum=1)
    per_page = _int_param(request, "per_page", DEFAULT_PER_PAGE, minimum=1)
    if per_page > MAX_PER_PAGE:
        raise ApiError(422, "invalid_request", f"per_page is at most {MAX_PER_PAGE}", "per_page")
    return page, per_page


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name} must be an integer, got {raw!r}", name) from None
    if value < minimum:
        raise ApiError(422, "invalid_request", f"{name} must be at least {minimum}", name)
    return value


def _paged(items: list[dict[str, Any]], total: int, page: int, per_page: int) -> dict[str, Any]:
    next_page = page + 1 if page * per_page < total else None
    return {"items": items, "page": page, "per_page": per_page, "total": total, "next_page": next_page}


def _install_user_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/users")
    async def list_users(request: Request) -> dict[str, Any]:
        _check_auth(request, state)
        page, per_page = _page_params(request)
        items, total = await run_in_threadpool(state.store.users_page, page, per_page)
        return _paged(items, total, page, per_page)


def _install_request_routes(app: FastAPI, state: ServerState) -> None:
    @app.post("/requests")
    async def create_request(request: Request) -> JSONResponse:
        _check_auth(request, state)
        payload, attachments = await _read_multipart(request, state)
        stored, created = await run_in_threadpool(_create, state, payload, attachments)
        if created and state.faults.config.delay_after_commit_ms:
            # Committed, not yet answered: the window in which a client can die (see the contract).
            await asyncio.sleep(state.faults.config.delay_after_commit_ms / 1000)
        return JSONResponse(stored, status_code=201 if created else 200)

    @app.get("/requests", response_model=None)
    async def list_requests(request: Request) -> Any:
        _check_auth(request, state)
        params = request.query_params
        if not any(k in params for k in ("external_id", "page", "per_page")):
            return await run_in_threadpool(state.store.find_requests, None)
        page, per_page = _page_params(request)
        matches = await run_in_threadpool(state.store.find_requests, params.get("external_id"))
        return _paged(matches[(page - 1) * per_page : page * per_page], len(matches), page, per_page)

    @app.get("/requests/{request_id}")
    async def get_request(request: Request, request_id: str) -> dict[str, Any]:
        _check_auth(request, state)
        found = await run_in_threadpool(state.store.get_request, request_id)
        if found is None:
            raise ApiError(404, "not_found", f"No request with id {request_id!r}.", "id")
        return found

    @app.delete("/requests/{request_id}", tags=["admin"])
    async def delete_request(request: Request, request_id: str) -> Response:
        _check_auth(request, state)
        if not await run_in_threadpool(state.store.delete_request, request_id):
            raise ApiError(404, "not_found", f"No request with id {request_id!r}.", "id")
        return Response(status_code=204)

    @app.get("/requests/{request_id}/attachments/{index}")
    async def get_attachment(request: Request, request_id: str, index: int) -> Response:
        _check_auth(request, state)
        row = await run_in_threadpool(state.store.attachment, request_id, index)
        if row is None:
            raise ApiError(404, "not_found", f"Request {request_id!r} has no attachment {index}.", "index")
        disposition = f"attachment; filename*=UTF-8''{quote(row['name'], safe='')}"
        return Response(row["content"], media_type=row["content_type"], headers={"Content-Disposition": disposition})


async def _read_multipart(request: Request, state: ServerState) -> tuple[RequestIn, list[AttachmentIn]]:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            422, "invalid_request", "POST /requests takes multipart/form-data with a 'request' JSON part.", "request"
        )
    form = await request.form(max_files=1000, max_fields=1000, max_part_size=10 * 1024 * 1024)
    try:
        payload = _parse_payload(form.get("request"))
        _check_idempotency_key(request, payload)
        attachments = [await _read_attachment(part, state) for part in form.getlist("attachments")]
    finally:
        await form.close()
    return payload, attachments


def _parse_payload(part: Any) -> RequestIn:
    if part is None:
        raise ApiError(422, "invalid_request", "The 'request' part (a JSON object) is missing.", "request")
    raw = (part.file.read() if isinstance(part, UploadFile) else part) or ""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_request", f"The 'request' part is not valid JSON: {exc}", "request") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", "The 'request' part must be a JSON object.", "request")
    try:
        return RequestIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = ".".join(str(p) for p in first["loc"]) or "request"
        raise ApiError(422, "invalid_request", f"{field_name}: {first['msg']}", field_name) from None


def _check_idempotency_key(request: Request, payload: RequestIn) -> None:
    key = request.headers.get("idempotency-key")
    if key is not None and key != payload.external_id:
        raise ApiError(
            422,
            "invalid_request",
            "The Idempotency-Key header must equal the request's external_id.",
            "Idempotency-Key",
        )


async def _read_attachment(part: Any, state: ServerState) -> AttachmentIn:
    if not isinstance(part, UploadFile) or not part.filename:
        raise ApiError(
            422, "invalid_request", "Every 'attachments' part must be a file with a filename.", "attachments"
        )
    content = await part.read()
    if len(content) > state.max_attachment_bytes:
        limit_mb = state.max_attachment_bytes / (1024 * 1024)
        raise ApiError(
            413,
            "attachment_too_large",
            f"Attachment {part.filename!r} is {len(content) / (1024 * 1024):.1f} MB; "
            f"this helpdesk accepts at most {limit_mb:g} MB per file.",
            "attachments",
            extra={"filename": part.filename, "max_bytes": state.max_attachment_bytes},
        )
    return AttachmentIn(part.filename, part.content_type or "application/octet-stream", content)


def _create(state: ServerState, payload: RequestIn, attachments: list[AttachmentIn]) -> tuple[dict[str, Any], bool]:
    """Resolve the requester and store; an existing external_id wins over everything else."""
    existing = state.store.find_requests(payload.external_id)
    if existing:
        return existing[0], False
    user = state.store.user_by_email(payload.requester_email)
    if user is None:
        raise ApiError(
            422,
            "unknown_requester",
            f"{payload.requester_email!r} is not a user of this helpdesk; register the user first.",
            "requester_email",
        )
    if payload.requester_id is not None and payload.requester_id != user["id"]:
        raise ApiError(
            422,
            "unknown_requester",
            f"requester_id {payload.requester_id!r} is not the id of {payload.requester_email!r} ({user['id']!r}).",
            "requester_id",
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    fields = {
        "id": uuid.uuid4().hex,
        "external_id": payload.external_id,
        "title": payload.title,
        "description": payload.description,
        "requester_email": user["email"],
        "requester_id": user["id"],
        "requester_name": user["name"],
        "channel": payload.channel,
        "status": "new",
        "assigned": "unassigned",
        "priority": payload.priority,
        "received_at": payload.received_at.isoformat() if payload.received_at else now,
        "created_at": now,
        "notify_requester": payload.notify_requester,
        "assignment_bot": payload.assignment_bot,
        "category": payload.category,
        "group": payload.group,
        "tags": payload.tags,
    }
    return state.store.create_request(fields, attachments)


def _install_admin_routes(app: FastAPI, state: ServerState) -> None:
    @app.put("/_admin/faults", tags=["admin"])
    async def put_faults(request: Request) -> dict[str, Any]:
        _check_auth(request, state)
        try:
            config = FaultsIn.model_validate(await request.json())
        except ValueError as exc:
            raise ApiError(422, "invalid_request", f"Fault configuration rejected: {exc}", "faults") from None
        state.faults.replace(config)
        return state.faults.config.model_dump()

    @app.get("/_admin/faults", tags=["admin"])
    async def get_faults(request: Request) -> dict[str, Any]:
        _check_auth(request, state)
        return state.faults.config.model_dump()

    @app.get("/_admin/stats", tags=["admin"])
    async def get_stats(request: Request) -> dict[str, Any]:
        _check_auth(request, state)
        with state.calls_lock:
            return {"calls": dict(state.calls)}

    @app.delete("/_admin/stats", tags=["admin"])
    async def reset_stats(request: Request) -> Response:
        _check_auth(request, state)
        with state.calls_lock:
            state.calls.clear()
        return Response(status_code=204)


# --------------------------------------------------------------------------- HTML page

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Helpdesk requests</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
th {{ background: #f4f4f4; }} td.num {{ font-variant-numeric: tabular-nums; }}
</style></head>
<body><h1>Helpdesk requests</h1><p>{count} request(s), newest last.</p>
<table><thead><tr><th>#</th><th>Title</th><th>Requester</th><th>Attachments</th><th>Created</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


def render_index(requests: list[dict[str, Any]]) -> str:
    """Everything user-supplied is escaped: titles come straight from e-mail subjects."""
    rows = "\n".join(_render_row(r) for r in requests) or '<tr><td colspan="5">No requests yet.</td></tr>'
    return _PAGE.format(count=len(requests), rows=rows)


def _render_row(req: dict[str, Any]) -> str:
    esc = html.escape
    files = ", ".join(f"{esc(a['name'])} ({_human_size(a['size'])})" for a in req.get("attachments", [])) or "—"
    requester = f"{esc(req.get('requester_name') or '')} &lt;{esc(req.get('requester_email') or '')}&gt;"
    return (
        f'<tr><td class="num">{int(req["number"])}</td><td>{esc(req["title"])}</td>'
        f"<td>{requester}</td><td>{files}</td><td>{esc(str(req.get('created_at', '')))}</td></tr>"
    )


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


# --------------------------------------------------------------------------- serve


def serve(
    db_path: Path,
    port: int,
    users_csv: Path | None,
    token: str | None = None,
    host: str = "127.0.0.1",
    max_attachment_mb: float = 25,
    faults: dict[str, Any] | None = None,
) -> None:
    """Run the reference helpdesk in the foreground until interrupted."""
    import uvicorn

    app = create_app(db_path, users_csv, token, max_attachment_mb)
    if faults:
        app.state.helpdesk.faults.replace(FaultsIn.model_validate(faults))
    uvicorn.run(app, host=host, port=port, log_level="warning")
