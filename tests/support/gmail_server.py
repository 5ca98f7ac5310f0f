"""A local Gmail API for tests: real HTTP on loopback, spoken to by the real google-api-python-client.

It serves the paths of the bundled discovery document (``/gmail/v1/users/{userId}/...``) and an
OAuth token endpoint (the ``token_uri`` written into the test's key file): the JWT-bearer grant is
verified with google.auth.jwt against the service account's public key, the refresh-token grant
against registered tokens. ``userId=me`` is the user the access token was issued for.

Messages live in memory (raw bytes, internalDate, labelIds), listed newest first like Gmail. Errors
are Google-shaped JSON so ``HttpError`` and the client's retry logic see what Google sends. Tests can
inject faults (the next N API answers 429/500/403-rate-limit), revoke keys and refresh tokens, and
read per-endpoint call counters (an idle poll must make no ``messages.get``).

Measured pitfalls handled here (see shared notes, test servers §4): Nagle is disabled on the
handler (else 46 ms per keep-alive request) and ``serve_forever`` polls every 50 ms (fast shutdown);
google-auth signs ``aud = https://oauth2.googleapis.com/token`` whatever ``token_uri`` is.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import shlex
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"
_SYSTEM_LABELS = ("INBOX", "SENT", "DRAFT", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "CHAT")
_IN_NAMES = {"inbox": "INBOX", "sent": "SENT", "drafts": "DRAFT", "draft": "DRAFT", "spam": "SPAM",
             "trash": "TRASH", "chats": "CHAT", "chat": "CHAT", "starred": "STARRED", "important": "IMPORTANT"}
_ROUTE = re.compile(r"^/gmail/v1/users/(?P<user>[^/]+)/(?P<rest>.+)$")


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    internal_ms: int
    label_ids: list[str]

    def meta(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": list(self.label_ids),
            "snippet": "",
            "historyId": "1",
            "internalDate": str(self.internal_ms),
            "sizeEstimate": len(self.raw),
        }


@dataclass
class ServiceAccount:
    email: str
    public_pem: bytes
    revoked: bool = False
    delegation: bool = True  # domain-wide delegation granted for gmail.modify


@dataclass
class FakeGmail:
    """State and controls of the local Gmail; every method is safe to call while the server runs."""

    url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    messages: dict[str, dict[str, StoredMessage]] = field(default_factory=dict)  # user → id → message
    labels: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # user → id → label
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    refresh_tokens: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # token → user, id, secret
    access_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token → (user, issued by)
    calls: Counter = field(default_factory=Counter)
    faults: deque = field(default_factory=deque)  # (status, reason) for the next API answers
    sent: dict = field(default_factory=dict)  # user → raw messages sent through messages.send
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(0x18F000000000))

    # -- URLs ---------------------------------------------------------------------------------
    @property
    def api_endpoint(self) -> str:
        return self.url + "/"

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    # -- credentials -------------------------------------------------------------------------
    def add_service_account(self, email: str = "ingest@helppeople-test.iam.gserviceaccount.com") -> dict[str, str]:
        """A new RSA key for ``email``; returns the key JSON (as Google's console downloads it)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with self.lock:
            self.service_accounts[email] = ServiceAccount(email, public_pem)
        return {
            "type": "service_account",
            "project_id": "helppeople-test",
            "private_key_id": secrets.token_hex(20),
            "private_key": private_pem,
            "client_email": email,
            "client_id": "1" + "".join(str(secrets.randbelow(10)) for _ in range(20)),
            "auth_uri": self.url + "/auth",
            "token_uri": self.token_uri,
        }

    def write_key_file(self, path: Path, email: str = "ingest@helppeople-test.iam.gserviceaccount.com") -> Path:
        path.write_text(json.dumps(self.add_service_account(email)), encoding="utf-8")
        return path

    def add_refresh_token(self, user: str, client_id: str, client_secret: str) -> str:
        token = "1//" + secrets.token_urlsafe(32)
        with self.lock:
            self.refresh_tokens[token] = (user.lower(), client_id, client_secret)
        return token

    def revoke_key(self, email: str) -> None:
        """The key is deleted in the console: new grants fail and issued access tokens stop working."""
        with self.lock:
            self.service_accounts[email].revoked = True
            self._drop_tokens(email)

    def deny_delegation(self, email: str) -> None:
        with self.lock:
            self.service_accounts[email].delegation = False
            self._drop_tokens(email)

    def revoke_refresh_token(self, token: str) -> None:
        with self.lock:
            self.refresh_tokens.pop(token, None)
            self._drop_tokens(token)

    def _drop_tokens(self, issuer: str) -> None:
        for access, (_user, by) in list(self.access_tokens.items()):
            if by == issuer:
                del self.access_tokens[access]

    # -- mail ---------------------------------------------------------------------------------
    def deliver(
        self, user: str, raw: bytes, received_at: datetime | None = None, labels: Iterable[str] = ("INBOX", "UNREAD")
    ) -> str:
        when = received_at or datetime.now(UTC)
        with self.lock:
            message_id = f"{next(self.ids):x}"
            self.messages.setdefault(user.lower(), {})[message_id] = StoredMessage(
                message_id, message_id, raw, int(when.timestamp() * 1000), list(labels)
            )
        return message_id

    def message(self, user: str, message_id: str) -> StoredMessage:
        return self.messages[user.lower()][message_id]

    def label_names(self, user: str, message_id: str) -> set[str]:
        """The labels of a message by name (system labels by id)."""
        with self.lock:
            by_id = self.labels.get(user.lower(), {})
            return {by_id[i]["name"] if i in by_id else i for i in self.message(user, message_id).label_ids}

    def user_labels(self, user: str) -> list[str]:
        with self.lock:
            return [label["name"] for label in self.labels.get(user.lower(), {}).values()]

    # -- faults and counters ------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 500, reason: str | None = None) -> None:
        """The next ``count`` API answers (not the token endpoint) are errors with this status."""
        with self.lock:
            self.faults.extend([(status, reason)] * count)

    def reset_calls(self) -> None:
        with self.lock:
            self.calls.clear()

    # -- request handling ---------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes, auth: str | None):
        """(status, json) for one request; runs under the lock, so the state is consistent."""
        with self.lock:
            if path == "/token" and method == "POST":
                self.calls["token"] += 1
                return self._token(parse_qs(body.decode("ascii", "replace")))
            if path.endswith("/batch") or path.startswith("/batch") or path.startswith("/upload"):
                self.calls["forbidden:" + path] += 1
                return _error(400, "badRequest", "batch and media endpoints are not served (they bypass api_endpoint)")
            match = _ROUTE.match(path)
            if not match:
                self.calls["unknown"] += 1
                return _error(404, "notFound", f"no such path {path}")
            endpoint = _endpoint_name(method, match["rest"], query)
            self.calls[endpoint] += 1
            if endpoint.startswith("messages.get"):
                self.calls["messages.get"] += 1
            if self.faults:
                status, reason = self.faults.popleft()
                return _fault(status, reason)
            user = self._authorised(auth)
            if user is None:
                return _error(401, "authError", "Request had invalid authentication credentials.", "UNAUTHENTICATED")
            wanted = match["user"].lower()
            if wanted not in ("me", user):
                return _error(403, "forbidden", "Delegation denied for " + user, "PERMISSION_DENIED")
            return self._api(method, match["rest"], query, body, user)

    def _authorised(self, auth: str | None) -> str | None:
        if not auth or not auth.startswith("Bearer "):
            return None
        entry = self.access_tokens.get(auth[len("Bearer ") :])
        return entry[0] if entry else None

    def _issue(self, user: str, issuer: str) -> tuple[int, dict]:
        token = "ya29." + secrets.token_urlsafe(32)
        self.access_tokens[token] = (user.lower(), issuer)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer", "scope": _scope()}

    def _token(self, form: dict[str, list[str]]) -> tuple[int, dict]:
        from google.auth import jwt

        grant = (form.get("grant_type") or [""])[0]
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            assertion = (form.get("assertion") or [""])[0]
            try:
                claims = jwt.decode(assertion, verify=False)
            except Exception:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
            account = self.service_accounts.get(str(claims.get("iss")))
            if account is None or account.revoked:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            try:
                claims = jwt.decode(
                    assertion, certs=account.public_pem, audience=[GOOGLE_AUDIENCE, self.token_uri]
                )
            except Exception:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            subject = claims.get("sub")
            if not subject:
                return 400, {"error": "invalid_request", "error_description": "a delegated user (sub) is required"}
            if not account.delegation or _scope() not in str(claims.get("scope", "")).split():
                return 401, {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens using this method, or "
                    "client not authorized for any of the scopes requested.",
                }
            return self._issue(str(subject), account.email)
        if grant == "refresh_token":
            token = (form.get("refresh_token") or [""])[0]
            entry = self.refresh_tokens.get(token)
            if entry is None:
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            user, client_id, client_secret = entry
            sent = ((form.get("client_id") or [""])[0], (form.get("client_secret") or [""])[0])
            if sent != (client_id, client_secret):
                return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
            return self._issue(user, token)
        return 400, {"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r}"}

    def _api(self, method: str, rest: str, query: dict[str, list[str]], body: bytes, user: str):
        mailbox = self.messages.setdefault(user, {})
        labels = self.labels.setdefault(user, {})
        parts = rest.split("/")
        if parts == ["labels"]:
            if method == "GET":
                system = [{"id": i, "name": i, "type": "system"} for i in _SYSTEM_LABELS]
                return 200, {"labels": system + list(labels.values())}
            if method == "POST":
                data = json.loads(body or b"{}")
                name = str(data.get("name", ""))
                taken = {label["name"].lower() for label in labels.values()} | {i.lower() for i in _SYSTEM_LABELS}
                if not name:
                    return _error(400, "invalidArgument", "Invalid label name")
                if name.lower() in taken:
                    return _error(409, "alreadyExists", "Label name exists or conflicts", "ALREADY_EXISTS")
                label_id = f"Label_{len(labels) + 1}"
                labels[label_id] = {"id": label_id, "name": name, "type": "user",
                                    "labelListVisibility": data.get("labelListVisibility", "labelShow"),
                                    "messageListVisibility": data.get("messageListVisibility", "show")}
                return 200, labels[label_id]
        if parts == ["messages"] and method == "GET":
            return self._list(mailbox, labels, query)
        if parts == ["messages", "send"] and method == "POST":
            data = json.loads(body or b"{}")
            raw = str(data.get("raw", ""))
            try:
                decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            except ValueError:
                return _error(400, "invalidArgument", "Invalid raw")
            if not decoded:
                return _error(400, "invalidArgument", "a raw RFC 822 message is required")
            self.sent.setdefault(user, []).append(decoded)
            sent_id = f"sent{sum(len(v) for v in self.sent.values())}"
            return 200, {"id": sent_id, "threadId": sent_id, "labelIds": ["SENT"]}
        if len(parts) >= 2 and parts[0] == "messages":
            message = mailbox.get(parts[1])
            if message is None:
                return _error(404, "notFound", "Requested entity was not found.", "NOT_FOUND")
            if len(parts) == 2 and method == "GET":
                return 200, _formatted(message, (query.get("format") or ["full"])[0], query.get("metadataHeaders"))
            if parts[2:] == ["modify"] and method == "POST":
                data = json.loads(body or b"{}")
                for label_id in data.get("addLabelIds") or []:
                    if label_id not in labels and label_id not in _SYSTEM_LABELS:
                        return _error(400, "invalidArgument", f"Invalid label: {label_id}")
                    if label_id not in message.label_ids:
                        message.label_ids.append(label_id)
                remove = set(data.get("removeLabelIds") or [])
                message.label_ids = [i for i in message.label_ids if i not in remove]
                return 200, {"id": message.id, "threadId": message.thread_id, "labelIds": list(message.label_ids)}
        return _error(404, "notFound", f"no such method {method} {rest}")

    def _list(self, mailbox: dict[str, StoredMessage], labels: dict, query: dict[str, list[str]]):
        try:
            match = _query_filter((query.get("q") or [""])[0], labels)
        except ValueError as exc:
            return _error(400, "invalidArgument", f"Invalid query: {exc}")
        include_spam_trash = (query.get("includeSpamTrash") or ["false"])[0] == "true"
        wanted_labels = set(query.get("labelIds") or [])
        found = [
            m for m in mailbox.values()
            if match(m)
            and wanted_labels <= set(m.label_ids)
            and (include_spam_trash or not {"SPAM", "TRASH"} & set(m.label_ids))
        ]
        found.sort(key=lambda m: (m.internal_ms, m.id), reverse=True)  # newest first, like Gmail
        size = min(int((query.get("maxResults") or ["100"])[0]), 500)
        start = int((query.get("pageToken") or ["0"])[0])
        page = found[start : start + size]
        response: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if page:  # Gmail leaves the key out when nothing matches
            response["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if start + size < len(found):
            response["nextPageToken"] = str(start + size)
        return 200, response


def _scope() -> str:
    return "https://www.googleapis.com/auth/gmail.modify"


def _endpoint_name(method: str, rest: str, query: dict[str, list[str]]) -> str:
    parts = rest.split("/")
    if parts[0] == "labels":
        return "labels.list" if method == "GET" else "labels.create"
    if parts[0] == "messages":
        if len(parts) == 1:
            return "messages.list"
        if len(parts) == 2 and method == "GET":
            return "messages.get:" + (query.get("format") or ["full"])[0]
        if parts[2:] == ["modify"]:
            return "messages.modify"
        if parts[1:] == ["send"]:
            return "messages.send"
    return f"other:{method} {rest}"


def _normal_label(name: str) -> str:
    return "-".join(name.lower().replace("/", " ").split())


def _date_bound(value: str) -> int:
    """An after:/before: value as epoch ms: epoch seconds, or YYYY/MM/DD (taken as UTC midnight here)."""
    if value.isdigit():
        return int(value) * 1000
    for fmt in ("%Y/%m/%d", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    raise ValueError(f"bad date {value!r}")


def _query_filter(q: str, labels: dict[str, dict[str, Any]]):
    """Gmail's search, the subset the service uses; anything else is a 400 so query drift shows up."""
    tests = []
    by_name = {_normal_label(label["name"]): label_id for label_id, label in labels.items()}
    for term in shlex.split(q):
        negate = term.startswith("-")
        op, _, value = term.lstrip("-").partition(":")
        op = op.lower()
        if op == "after":
            bound = _date_bound(value)
            test = lambda m, b=bound: m.internal_ms >= b  # noqa: E731
        elif op == "before":
            bound = _date_bound(value)
            test = lambda m, b=bound: m.internal_ms < b  # noqa: E731
        elif op == "label":
            label_id = by_name.get(_normal_label(value)) or (value.upper() if value.upper() in _SYSTEM_LABELS else None)
            test = lambda m, i=label_id: i is not None and i in m.label_ids  # noqa: E731
        elif op == "in":
            system = _IN_NAMES.get(value.lower())
            if system is None:
                raise ValueError(f"in:{value}")
            test = lambda m, i=system: i in m.label_ids  # noqa: E731
        else:
            raise ValueError(f"unsupported term {term!r}")
        tests.append((test, negate))
    return lambda m: all(test(m) != negate for test, negate in tests)


def _formatted(message: StoredMessage, fmt: str, wanted: list[str] | None) -> dict[str, Any]:
    out = message.meta()
    if fmt == "minimal":
        return out
    if fmt == "raw":
        out["raw"] = base64.urlsafe_b64encode(message.raw).decode("ascii").rstrip("=")  # unpadded: decode tolerantly
        return out
    headers = BytesHeaderParser(policy=compat32).parsebytes(message.raw)
    items = [{"name": k, "value": " ".join(str(v).split())} for k, v in headers.items()]
    if wanted:
        lowered = {w.lower() for w in wanted}
        items = [h for h in items if h["name"].lower() in lowered]
    out["payload"] = {"partId": "", "mimeType": headers.get_content_type(), "filename": "", "headers": items}
    return out


def _error(status: int, reason: str, message: str, api_status: str = "INVALID_ARGUMENT") -> tuple[int, dict]:
    return status, {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": api_status,
        }
    }


def _fault(status: int, reason: str | None) -> tuple[int, dict]:
    if status == 429:
        message = "Too many concurrent requests for user."
        return _error(429, reason or "rateLimitExceeded", message, "RESOURCE_EXHAUSTED")
    if status == 403:
        return _error(403, reason or "userRateLimitExceeded", "User-rate limit exceeded.", "PERMISSION_DENIED")
    return _error(status, reason or "backendError", "Backend Error", "UNAVAILABLE" if status == 503 else "INTERNAL")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else keep-alive requests cost ~46 ms each (Nagle × delayed ACK)
    fake: FakeGmail

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = self.fake.handle(
            method, parts.path, parse_qs(parts.query), body, self.headers.get("Authorization")
        )
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextmanager
def run_fake_gmail() -> Iterator[FakeGmail]:
    """Start the local Gmail on 127.0.0.1 (a free port) in a background thread; stop it on exit."""
    fake = FakeGmail()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
