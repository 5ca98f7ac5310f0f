"""The helpdesk connection: the one place the service talks to the helpdesk API (R13, R14, R20).

The contract is ``docs/helpdesk-api.yaml``. Retries are urllib3's ``Retry`` mounted on one
``requests.Session`` per block: 429/5xx and dropped connections are retried with exponential
backoff and ``Retry-After`` respected, for POST too, because a create carries the message's
external id and the helpdesk answers a repeat with the request it already has. What is left after
the retries is turned into one of three errors that say what to do next.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from inspect import signature
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr, field_validator
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_AFTER_MAX_SECONDS = 60  # a helpdesk asking for an hour's pause must not hang a 5-minute run
MAX_PAGES = 10_000  # guards against a server whose next_page never ends
TOKEN_ENV = "HELPDESK_TOKEN"
_SESSION_LOCK = threading.Lock()


class HelpdeskError(Exception):
    """Anything that went wrong talking to the helpdesk. Messages never contain the token."""


class HelpdeskAuthError(HelpdeskError):
    """401/403: the token is missing, wrong, expired or lacks rights. Retrying will not help."""


class HelpdeskUnavailable(HelpdeskError):
    """429/5xx/timeouts/refused connections that outlived the retries: try again on a later run."""


class HelpdeskRejected(HelpdeskError):
    """400/413/422: the helpdesk refused this request's content; resending it unchanged won't help."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        field: str | None = None,
        api_message: str = "",
        filename: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.message = api_message
        self.filename = filename


@dataclass(frozen=True)
class CreatedRequest:
    """What the loader needs after a create; ``created`` is False when the helpdesk already had it."""

    id: str
    number: int
    external_id: str
    created: bool


class HelpdeskApi(Block):
    """
    Connection to the helpdesk API where mail becomes requests (tickets).

    The token is a bearer token issued by the helpdesk; leave it empty only for a helpdesk that
    needs no authentication (the local reference helpdesk started without ``--token``).

    Attributes:
        url: Base URL of the helpdesk API, e.g. ``https://helpdesk.example.com/api``.
        token: The helpdesk API token, sent as ``Authorization: Bearer <token>``.
        timeout_seconds: Seconds to wait for the helpdesk to connect and to answer each call.
        max_retries: Retries for rate limits (429), server errors (5xx) and dropped connections.
        backoff_factor: Base of the exponential wait between retries, in seconds.

    Example:
        Load a stored helpdesk connection:
        ```python
        from blocks.helpdesk import HelpdeskApi

        helpdesk = HelpdeskApi.load("BLOCK_NAME")
        users = helpdesk.list_users()
        ```
    """

    _block_type_name = "Helpdesk API"
    _block_type_slug = "helpdesk-api"
    _logo_url = "https://cdn.jsdelivr.net/npm/@tabler/icons@2.47.0/icons/lifebuoy.svg"  # type: ignore[assignment]
    _description = (
        "Connection to the helpdesk API (URL and bearer token) used to read the user matrix "
        "and create requests from support e-mail."
    )

    url: str = Field(
        ...,
        title="URL",
        description="Base URL of the helpdesk API, e.g. https://helpdesk.example.com/api.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="Helpdesk API token, sent as 'Authorization: Bearer <token>'. Empty: no authentication.",
    )
    timeout_seconds: float = Field(
        default=30,
        gt=0,
        description="Seconds to wait for the helpdesk to connect and to answer each call.",
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        description="Retries for rate limits (429), server errors (5xx) and dropped connections.",
    )
    backoff_factor: float = Field(
        default=0.5,
        ge=0,
        description="Base of the exponential wait between retries, in seconds (0.5 → 0, 1, 2, 4 … s).",
    )

    _session: requests.Session | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError(f"the helpdesk url must start with http:// or https://, got {_public_url(value)!r}")
        return value.rstrip("/")

    # ------------------------------------------------------------------ public API

    def list_users(self, per_page: int = 100) -> list[dict[str, Any]]:
        """The user matrix (R4): every page of GET /users."""
        users: list[dict[str, Any]] = []
        page = 1
        for _ in range(MAX_PAGES):
            body = self._json("GET", "/users", "reading the user matrix", params={"page": page, "per_page": per_page})
            users.extend(body["items"])
            next_page = body.get("next_page")
            if next_page is None:
                return users
            if not isinstance(next_page, int) or next_page <= page:
                raise HelpdeskError(
                    f"reading the user matrix: the helpdesk at {self._public_base} sent next_page={next_page!r} "
                    f"after page {page} of GET /users; it does not page as docs/helpdesk-api.yaml says."
                )
            page = next_page
        raise HelpdeskError(
            f"reading the user matrix: GET /users at {self._public_base} did not end after {MAX_PAGES} pages."
        )

    def create_request(self, payload: dict[str, Any], attachments: list[tuple[str, str, bytes]]) -> CreatedRequest:
        """Create one request; a repeat with the same external_id returns the existing one (created=False).

        ``attachments`` are ``(filename, content_type, content)``.
        """
        external_id = payload.get("external_id")
        if not external_id:
            raise ValueError("create_request needs payload['external_id']: it is what makes a retry safe")
        files: list[tuple[str, tuple[str | None, Any, str]]] = [
            ("request", (None, json.dumps(payload, ensure_ascii=False), "application/json"))
        ]
        files += [
            ("attachments", (name, content, ctype or "application/octet-stream"))
            for name, ctype, content in attachments
        ]
        response = self._send(
            "POST",
            "/requests",
            f"creating the request for message {external_id}",
            files=files,
            headers={"Idempotency-Key": str(external_id)},
        )
        body = response.json()
        return CreatedRequest(
            id=str(body["id"]),
            number=int(body["number"]),
            external_id=str(body["external_id"]),
            created=response.status_code == 201,
        )

    def find_request(self, external_id: str) -> dict[str, Any] | None:
        """The request created for a message, if any: how a rerun finds what an earlier run created."""
        body = self._json(
            "GET", "/requests", f"looking up the request for message {external_id}", params={"external_id": external_id}
        )
        items = body.get("items") or []
        return items[0] if items else None

    def get_request(self, id: str) -> dict[str, Any] | None:
        """One request by helpdesk id; None when the helpdesk no longer has it."""
        response = self._send("GET", f"/requests/{quote(str(id), safe='')}", f"reading request {id}", allow_404=True)
        return None if response.status_code == 404 else response.json()

    def list_requests(self) -> list[dict[str, Any]]:
        """Every request on the helpdesk (GET /requests without parameters answers a plain list)."""
        return self._json("GET", "/requests", "listing requests")

    def close(self) -> None:
        """Release pooled connections; the next call opens a fresh session."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ session

    def get_session(self) -> requests.Session:
        """The block's one session, created on first use so a loaded block costs nothing until used."""
        if self._session is None:
            with _SESSION_LOCK:
                if self._session is None:
                    self._session = self._build_session()
        return self._session

    def _build_session(self) -> requests.Session:
        """The only place the token is unwrapped."""
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=self._retry_policy())
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"Accept": "application/json", "User-Agent": "helppeople-mail-service"})
        if self.token is not None and self.token.get_secret_value():
            session.headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        return session

    def _retry_policy(self) -> Retry:
        options: dict[str, Any] = {
            "total": self.max_retries,
            "connect": self.max_retries,
            "read": self.max_retries,
            "status": self.max_retries,
            "other": 0,
            "status_forcelist": RETRY_STATUSES,
            "allowed_methods": None,  # every method: creates are idempotent by external_id
            "backoff_factor": self.backoff_factor,
            "respect_retry_after_header": True,
            "raise_on_status": False,
        }
        if "retry_after_max" in signature(Retry.__init__).parameters:  # urllib3 >= 2.6
            options["retry_after_max"] = RETRY_AFTER_MAX_SECONDS
        return Retry(**options)

    def __getstate__(self) -> dict[Any, Any]:
        """A pickled block (Prefect results, process runners) carries settings, not live sockets."""
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private["_session"] = None
        return {**state, "__pydantic_private__": private}

    # ------------------------------------------------------------------ HTTP

    def _json(self, method: str, path: str, action: str, **kwargs: Any) -> Any:
        response = self._send(method, path, action, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise HelpdeskError(
                f"{action}: the helpdesk at {self._public_base} answered {method} {path} with something that is "
                "not JSON; check that the block's url points at the helpdesk API."
            ) from None

    def _send(self, method: str, path: str, action: str, allow_404: bool = False, **kwargs: Any) -> requests.Response:
        url = f"{self.url}{path}"
        try:
            response = self.get_session().request(method, url, timeout=self.timeout_seconds, **kwargs)
        except requests.exceptions.InvalidURL as exc:
            raise HelpdeskError(f"{action}: {_public_url(url)} is not a valid URL ({type(exc).__name__}).") from None
        except requests.exceptions.RequestException as exc:
            raise HelpdeskUnavailable(
                f"{action}: the helpdesk at {self._public_base} is not answering "
                f"({_describe_transport_error(exc)} after {self.max_retries} retries). "
                "The messages stay pending and are retried on the next run."
            ) from None
        if response.ok or (allow_404 and response.status_code == 404):
            return response
        raise self._error_for(response, method, path, action)

    def _error_for(self, response: requests.Response, method: str, path: str, action: str) -> HelpdeskError:
        status = response.status_code
        code, api_message, field_name, extra = _error_body(response)
        where = f"{method} {self._public_base}{path}"
        if status in (401, 403):
            return HelpdeskAuthError(
                f"{action}: the helpdesk refused the credentials (HTTP {status} {code}) at {where}. "
                f"Check the token in {self._block_label} / env {TOKEN_ENV}."
            )
        if status in (400, 413, 422):
            filename = (extra.get("filename") or _quoted_filename(api_message)) if status == 413 else None
            return HelpdeskRejected(
                f"{action}: the helpdesk rejected it (HTTP {status} {code}"
                f"{f', field {field_name}' if field_name else ''}) at {where}: {api_message or 'no details given'}",
                status=status,
                code=code,
                field=field_name,
                api_message=api_message,
                filename=filename,
            )
        if status == 429 or status >= 500:
            return HelpdeskUnavailable(
                f"{action}: the helpdesk at {self._public_base} is not answering (HTTP {status} {code} "
                f"after {self.max_retries} retries). The messages stay pending and are retried on the next run."
            )
        return HelpdeskError(
            f"{action}: unexpected HTTP {status} {code} from {where}: {api_message or 'no details given'}. "
            f"Check the url in {self._block_label}."
        )

    @property
    def _public_base(self) -> str:
        return _public_url(self.url)

    @property
    def _block_label(self) -> str:
        name = self._block_document_name
        return f"block '{self.get_block_type_slug()}/{name}'" if name else "the HelpdeskApi block"


# ---------------------------------------------------------------------- helpers


def _public_url(url: str) -> str:
    """The URL without user-info, query or fragment, so a message can never leak a credential."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _error_body(response: requests.Response) -> tuple[str, str, str | None, dict[str, Any]]:
    """(code, message, field, extra) from the contract's error object, or from the status for foreign bodies."""
    fallback = f"http_{response.status_code}"
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return fallback, (response.reason or ""), None, {}
    extra = {k: v for k, v in error.items() if k not in ("code", "message", "field")}
    return str(error.get("code") or fallback), str(error.get("message") or ""), error.get("field"), extra


def _quoted_filename(message: str) -> str | None:
    match = re.search(r"""['"]([^'"]+)['"]""", message)
    return match.group(1) if match else None


def _describe_transport_error(exc: requests.exceptions.RequestException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection refused" if "refused" in str(exc).lower() else "connection failed"
    return type(exc).__name__
