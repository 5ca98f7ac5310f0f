"""A Gmail / Google Workspace mailbox read through the Gmail API (R1: no password is ever shared).

Two ways in: a service-account key with domain-wide delegation (the service account acts as the
mailbox) or a user's OAuth refresh token. Transport is httplib2 with a timeout, the discovery
document is the one bundled with google-api-python-client (nothing is fetched), and every call
goes to ``api_endpoint``, so the same code runs against Google and against a local test server.

What is read: mail *received* by the mailbox. ``messages.list`` excludes spam and trash by default
(``includeSpamTrash`` is left false), and the query adds ``-in:sent -in:drafts`` so the mailbox's
own outgoing mail (e.g. acknowledgements, R12) never comes back as a request; the labels read with
each message's date are checked again (SENT, DRAFT, SPAM, TRASH, CHAT are never requests). Mail is
*not* limited to ``in:inbox``: a filter or an agent archiving a message before the poll must not
make it vanish. Gmail's search is coarse (seconds), so the query window is one second wider on
each side and the exact ``[since, until)`` filter is applied to ``internalDate``.

Cost: an idle poll is one ``labels.list`` and one ``messages.list`` page — no ``messages.get``.
Each new message costs a ``get(format=minimal)`` (date, size, labels), a ``get(format=raw)`` and
a ``modify``. Batch requests and media uploads are never used: both ignore ``api_endpoint``.

Marking (R15): the processed label (created on first use) is added after the outcome is recorded;
no label is ever removed (UNREAD stays as the user left it) and nothing is trashed or deleted.
"""

from __future__ import annotations

import base64
import json
import math
import random
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr, model_validator

from blocks.mailbox import MailboxUnavailable
from tasks.model import MessageRef, RawMessage

GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
PAGE_SIZE = 500  # messages.list's maximum
MB = 1024 * 1024
# Defaults used by ``from_config`` (the config has no keys for them); tests lower the backoff.
MAX_RETRIES = 5
RETRY_BACKOFF_SECONDS = 1.0
# System labels of mail that was not received by the mailbox (or is junk): never a request.
_NOT_RECEIVED = frozenset({"SENT", "DRAFT", "SPAM", "TRASH", "CHAT"})
# Headers of an oversize message that describe its (undownloaded) body; replaced by ours.
_BODY_HEADERS = frozenset(
    {"content-type", "content-transfer-encoding", "mime-version", "content-disposition", "content-length"}
)


def _request_class(backoff_seconds: float):
    """googleapiclient's HttpRequest with its retry wait scaled by ``backoff_seconds``.

    ``execute(num_retries=n)`` retries 429, 5xx, 403 rateLimitExceeded/userRateLimitExceeded and
    dropped connections, sleeping ``rand() * 2**attempt`` seconds; 1.0 keeps the library's timing.
    """
    from googleapiclient.http import HttpRequest

    if backoff_seconds == 1.0:
        return HttpRequest

    class ScaledBackoffRequest(HttpRequest):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._rand = lambda: random.random() * backoff_seconds

    return ScaledBackoffRequest


def decode_raw(value: str) -> bytes:
    """Gmail's ``raw`` is base64url; accept missing padding and the standard alphabet too."""
    text = value.strip().replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def query_label(name: str) -> str:
    """A label name as Gmail search spells it: lower case, spaces and slashes as dashes."""
    return "-".join(name.lower().replace("/", " ").split())


def _http_reason(exc: Any) -> tuple[int, str, str]:
    """(status, reason, message) of a googleapiclient HttpError, without its raw body."""
    status = int(getattr(exc.resp, "status", 0) or 0)
    reason, message = "", ""
    try:
        error = json.loads(exc.content.decode("utf-8"))["error"]
        message = str(error.get("message", ""))
        details = error.get("errors") or []
        if details and isinstance(details[0], dict):
            reason = str(details[0].get("reason", ""))
        reason = reason or str(error.get("status", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return status, reason, message[:200]


class GmailMailbox(Block):
    """
    A Gmail or Google Workspace mailbox read through the Gmail API.

    Authentication never uses a password (R1): either a service-account key with domain-wide
    delegation for the scope ``https://www.googleapis.com/auth/gmail.modify`` (the service account
    acts as ``delegated_user``, by default the mailbox ``address``), or a user's OAuth refresh
    token with its OAuth client id and secret.

    Attributes:
        mailbox_name: Name of the mailbox in the service config; used in error messages.
        address: The mailbox's address.
        delegated_user: User the service account acts as; empty means ``address``.
        service_account_info: The service-account key JSON (keep it secret).
        client_id: OAuth client id, for the refresh-token way in.
        client_secret: OAuth client secret, for the refresh-token way in.
        refresh_token: The user's OAuth refresh token.
        token_uri: Token endpoint for the refresh-token way in.
        api_endpoint: Base URL of the Gmail API.
        processed_label: Label added to a message once its outcome is recorded.

    Example:
        Load a stored Gmail mailbox and list today's new mail:
        ```python
        from blocks.gmail import GmailMailbox

        mailbox = GmailMailbox.load("BLOCK_NAME")
        refs = mailbox.list_refs(since, until, include_processed=False)
        ```
    """

    _block_type_name = "Gmail Mailbox"
    _block_type_slug = "gmail-mailbox"
    _logo_url = "https://cdn.jsdelivr.net/npm/@tabler/icons@2.47.0/icons/brand-gmail.svg"  # type: ignore[assignment]
    _description = (
        "A Gmail / Google Workspace mailbox read through the Gmail API with a service-account key "
        "(domain-wide delegation) or a user refresh token; no password is used."
    )

    mailbox_name: str = Field(default="gmail", description="Name of the mailbox in the service config.")
    address: str = Field(..., description="The mailbox's address, e.g. soporte@example.com.")
    delegated_user: str | None = Field(
        default=None, description="User the service account acts as (domain-wide delegation); empty: the address."
    )
    service_account_info: SecretStr | None = Field(
        default=None, description="Service-account key JSON with domain-wide delegation for the gmail.modify scope."
    )
    client_id: str | None = Field(default=None, description="OAuth client id (refresh-token way in).")
    client_secret: SecretStr | None = Field(default=None, description="OAuth client secret (refresh-token way in).")
    refresh_token: SecretStr | None = Field(default=None, description="The user's OAuth refresh token.")
    token_uri: str = Field(default=GOOGLE_TOKEN_URI, description="Token endpoint for the refresh-token way in.")
    api_endpoint: str = Field(
        default="https://gmail.googleapis.com/", description="Base URL of the Gmail API; change only for tests."
    )
    processed_label: str = Field(
        default="helppeople-ingested", description="Label added once a message's outcome is recorded (R15)."
    )
    timeout_seconds: float = Field(default=30, gt=0, description="Seconds to wait for each HTTP call.")
    max_retries: int = Field(
        default=MAX_RETRIES, ge=0, description="Retries of 429, 5xx, rate-limit 403 and dropped connections."
    )
    backoff_seconds: float = Field(
        default=RETRY_BACKOFF_SECONDS, ge=0, description="Scale of the exponential wait between retries."
    )
    max_message_bytes: int | None = Field(
        default=None, gt=0, description="Messages larger than this are not downloaded whole (headers and a note)."
    )
    credential_expires_on: date | None = Field(default=None, description="Known expiry of the key or token.")
    expiry_warning_days: int = Field(default=14, ge=0, description="Warn this many days before that expiry.")

    _local: threading.local = PrivateAttr(default_factory=threading.local)
    _creds_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _label_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _creds: Any = PrivateAttr(default=None)
    _label_id: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_way_in(self) -> GmailMailbox:
        if bool(self.service_account_info) == bool(self.refresh_token):
            raise ValueError("give exactly one of service_account_info or refresh_token (no password, R1)")
        if self.refresh_token and not (self.client_id and self.client_secret):
            raise ValueError("a refresh token needs the OAuth client_id and client_secret it was issued to")
        return self

    @classmethod
    def from_config(cls, box: Any) -> GmailMailbox:
        """The block for a ``kind: gmail`` config entry, secrets resolved by reference (R20)."""
        from mailservice.config import ConfigError
        from mailservice.secrets import secret_from

        where = f"mailboxes ({box.name})"
        info: SecretStr | None = None
        client_secret = refresh_token = None
        if box.service_account_file is not None:
            try:
                info = SecretStr(box.service_account_file.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(
                    f"{where}.service_account_file: cannot read {box.service_account_file} ({exc.strerror}); "
                    "download the key JSON of the service account and point this key at it"
                ) from None
        elif box.service_account_env:
            info = secret_from(box.service_account_env, key=f"{where}.service_account_env")
        elif box.user_oauth is not None:
            oauth = box.user_oauth
            client_secret = secret_from(oauth.client_secret_env, key=f"{where}.user_oauth.client_secret_env")
            refresh_token = secret_from(oauth.refresh_token_env, key=f"{where}.user_oauth.refresh_token_env")
        if info is not None:
            _parse_key(info, where)
        return cls(
            mailbox_name=box.name,
            address=box.address,
            delegated_user=box.delegated_user,
            service_account_info=info,
            client_id=box.user_oauth.client_id if box.user_oauth else None,
            client_secret=client_secret,
            refresh_token=refresh_token,
            token_uri=box.user_oauth.token_uri if box.user_oauth else GOOGLE_TOKEN_URI,
            api_endpoint=box.api_endpoint,
            processed_label=box.processed_label,
            timeout_seconds=box.timeout_seconds,
            max_retries=MAX_RETRIES,
            backoff_seconds=RETRY_BACKOFF_SECONDS,
            # The whole message may hold attachments up to the limit, base64-encoded (×4/3), plus text.
            max_message_bytes=int(box.attachment_max_mb * 1.4 * MB + MB),
            credential_expires_on=box.credential_expires_on,
            expiry_warning_days=box.expiry_warning_days,
        )

    # -- credentials and the API client ------------------------------------------------------
    @property
    def subject(self) -> str:
        return self.delegated_user or self.address

    def _who(self) -> str:
        return f"Gmail mailbox {self.mailbox_name!r} ({self.address})"

    def _credentials(self) -> Any:
        """Built once per block; the only place the secrets are unwrapped."""
        with self._creds_lock:
            if self._creds is not None:
                return self._creds
            if self.service_account_info is not None:
                from google.oauth2 import service_account

                info = _parse_key(self.service_account_info, self._who())
                try:
                    creds = service_account.Credentials.from_service_account_info(
                        info, scopes=[GMAIL_SCOPE], subject=self.subject
                    )
                except (ValueError, KeyError, TypeError):
                    raise MailboxUnavailable(
                        f"{self._who()}: the service-account key is not a usable key JSON (missing fields or an "
                        "unreadable private_key). Download a new JSON key for the service account."
                    ) from None
            else:
                from google.oauth2.credentials import Credentials

                creds = Credentials(
                    None,
                    refresh_token=self.refresh_token.get_secret_value(),
                    client_id=self.client_id,
                    client_secret=self.client_secret.get_secret_value(),
                    token_uri=self.token_uri,
                )
            self._creds = creds
            return creds

    def _service(self) -> Any:
        """One API client per thread: httplib2.Http is not thread-safe (mapped tasks share this block)."""
        service = getattr(self._local, "service", None)
        if service is None:
            import httplib2
            from google_auth_httplib2 import AuthorizedHttp
            from googleapiclient.discovery import build

            http = AuthorizedHttp(self._credentials(), http=httplib2.Http(timeout=self.timeout_seconds))
            service = build(
                "gmail",
                "v1",
                http=http,
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": self.api_endpoint},
                requestBuilder=_request_class(self.backoff_seconds),
            )
            self._local.service = service
        return service

    def _execute(self, request: Any, action: str, *, tolerate: tuple[int, ...] = ()) -> Any:
        """Run one API call with the client's own retries; failures become MailboxUnavailable.

        Returns None for an HTTP status in ``tolerate`` (e.g. 404: a message gone since listing).
        """
        from google.auth.exceptions import RefreshError, TransportError
        from googleapiclient.errors import HttpError

        try:
            return request.execute(num_retries=self.max_retries)
        except HttpError as exc:
            status, reason, message = _http_reason(exc)
            if status in tolerate:
                return None
            raise MailboxUnavailable(self._api_refusal(action, status, reason, message)) from None
        except RefreshError as exc:
            raise MailboxUnavailable(self._token_refusal(exc)) from None
        except (TransportError, OSError) as exc:
            raise MailboxUnavailable(self._unreachable(action, exc)) from None
        except Exception as exc:
            import httplib2

            if isinstance(exc, httplib2.HttpLib2Error):
                raise MailboxUnavailable(self._unreachable(action, exc)) from None
            raise

    # -- failure messages: which mailbox, what was refused, what to check; never a secret ------
    def _token_refusal(self, exc: Any) -> str:
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        error = str(data.get("error", "")) or "refused"
        description = str(data.get("error_description", ""))[:200]
        said = f"{error}: {description}" if description else error
        if self.service_account_info is not None:
            if error in ("unauthorized_client", "access_denied", "invalid_scope"):
                check = (
                    "that domain-wide delegation is granted to the service account's client id for the scope "
                    f"{GMAIL_SCOPE} (Admin console → Security → API controls → Domain-wide delegation), "
                    f"and that {self.subject} is a user of the Workspace domain"
                )
            else:
                check = (
                    "that the service-account key is still active (Google Cloud console → IAM → Service accounts "
                    f"→ Keys; a deleted or disabled key gives invalid_grant) and that {self.subject} exists; "
                    "download a new key if it was revoked"
                )
            return f"{self._who()}: the token endpoint refused the service-account key ({said}). Check {check}."
        return (
            f"{self._who()}: the token endpoint refused the refresh token ({said}). Check the refresh token: it is "
            "invalid once the user revokes access, changes password (for some scopes), or after 7 days for apps "
            "in 'Testing' status; obtain a new one with the same OAuth client and update the secret."
        )

    def _api_refusal(self, action: str, status: int, reason: str, message: str) -> str:
        said = f"HTTP {status}" + (f" {reason}" if reason else "") + (f": {message}" if message else "")
        if status == 401:
            check = "the credentials: the access token was refused even after a refresh"
        elif status == 403 and reason in ("rateLimitExceeded", "userRateLimitExceeded"):
            check = f"nothing to fix now: the Gmail quota was still exceeded after {self.max_retries} retries"
        elif status == 403:
            check = (
                f"that the Gmail API is enabled in the Google Cloud project and that the {GMAIL_SCOPE} scope is "
                "granted (domain-wide delegation for the service account, or the user's consent)"
            )
        elif status == 429 or status >= 500:
            check = f"nothing to fix now: Gmail kept answering {status} after {self.max_retries} retries"
        elif status == 400 and reason == "failedPrecondition":
            check = f"that {self.subject} has Gmail enabled in the Workspace admin console"
        elif status == 404:
            check = f"that {self.subject} exists and that api_endpoint ({self.api_endpoint}) is the Gmail API"
        else:
            check = f"the mailbox settings and api_endpoint ({self.api_endpoint})"
        return f"{self._who()}: the Gmail API refused {action} ({said}). Check {check}."

    def _unreachable(self, action: str, exc: BaseException) -> str:
        detail = str(exc)[:200] or type(exc).__name__
        return (
            f"{self._who()}: cannot reach Google while {action} ({type(exc).__name__}: {detail}). Check "
            f"api_endpoint ({self.api_endpoint}), the token endpoint, DNS and any proxy (httplib2 honours "
            "http(s)_proxy and no_proxy); a later run will try again."
        )

    # -- the processed label ------------------------------------------------------------------
    def _find_label(self) -> str | None:
        if self._label_id is not None:
            return self._label_id
        response = self._execute(self._service().users().labels().list(userId="me"), "listing labels")
        wanted = self.processed_label.lower()
        for label in response.get("labels", []):
            if str(label.get("name", "")).lower() == wanted:
                self._label_id = str(label["id"])
                return self._label_id
        return None

    def _ensure_label(self) -> str:
        with self._label_lock:
            found = self._find_label()
            if found is not None:
                return found
            body = {"name": self.processed_label, "labelListVisibility": "labelShow", "messageListVisibility": "show"}
            created = self._execute(
                self._service().users().labels().create(userId="me", body=body),
                f"creating the label {self.processed_label!r}",
                tolerate=(409,),  # created meanwhile by another run
            )
            if created is None:
                found = self._find_label()
                if found is None:
                    raise MailboxUnavailable(
                        f"{self._who()}: the label {self.processed_label!r} exists but is not listed; check "
                        "that processed_label does not clash with a system label"
                    )
                return found
            self._label_id = str(created["id"])
            return self._label_id

    # -- MailboxSource ------------------------------------------------------------------------
    def query(self, since: datetime, until: datetime, *, include_processed: bool, label_exists: bool = True) -> str:
        """The ``q`` of messages.list: one second wider than the window on each side."""
        terms = [
            f"after:{math.floor(since.timestamp()) - 1}",
            f"before:{math.ceil(until.timestamp()) + 1}",
            "-in:sent",
            "-in:drafts",
        ]
        if not include_processed and label_exists:
            terms.append(f"-label:{query_label(self.processed_label)}")
        return " ".join(terms)

    def list_refs(self, since: datetime, until: datetime, *, include_processed: bool) -> list[MessageRef]:
        messages = self._service().users().messages()
        label_id = self._find_label()
        q = self.query(since, until, include_processed=include_processed, label_exists=label_id is not None)
        ids: list[str] = []
        request = messages.list(userId="me", q=q, maxResults=PAGE_SIZE)
        while request is not None:
            response = self._execute(request, "listing messages")
            ids.extend(str(m["id"]) for m in response.get("messages", []))
            request = messages.list_next(request, response)
        refs: list[MessageRef] = []
        for message_id in dict.fromkeys(ids):
            meta = self._execute(
                messages.get(
                    userId="me", id=message_id, format="minimal", fields="id,internalDate,sizeEstimate,labelIds"
                ),
                f"reading the date of message {message_id}",
                tolerate=(404,),
            )
            if meta is None:
                continue
            received = datetime.fromtimestamp(int(meta["internalDate"]) / 1000, tz=UTC)
            labels = set(meta.get("labelIds") or [])
            if not since <= received < until or labels & _NOT_RECEIVED:
                continue
            processed = label_id is not None and label_id in labels
            if processed and not include_processed:
                continue
            refs.append(MessageRef(message_id, received, int(meta.get("sizeEstimate") or 0), processed))
        refs.sort(key=lambda ref: (ref.received_at, ref.source_id))
        return refs

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[RawMessage]:
        messages = self._service().users().messages()
        for ref in refs:
            if self.max_message_bytes is not None and ref.size > self.max_message_bytes:
                raw = self._headers_only(ref)
            else:
                response = self._execute(
                    messages.get(userId="me", id=ref.source_id, format="raw", fields="id,raw"),
                    f"downloading message {ref.source_id}",
                    tolerate=(404,),
                )
                raw = decode_raw(response["raw"]) if response is not None else None
            if raw is not None:
                yield RawMessage(ref, raw)

    def _headers_only(self, ref: MessageRef) -> bytes | None:
        """An oversize message as its own headers plus a Spanish note, so it still gets an outcome."""
        response = self._execute(
            self._service().users().messages().get(userId="me", id=ref.source_id, format="metadata"),
            f"reading the headers of message {ref.source_id}",
            tolerate=(404,),
        )
        if response is None:
            return None
        lines: list[str] = []
        for header in (response.get("payload") or {}).get("headers") or []:
            name = str(header.get("name", "")).strip()
            if not name or name.lower() in _BODY_HEADERS or name.lower().startswith("x-helppeople-"):
                continue
            value = " ".join(str(header.get("value", "")).split())
            lines.append(f"{name}: {value}")
        size_mb = ref.size / MB
        # The note depends on the message only (not on the configured limit): its key stays stable.
        note = (
            f"Este mensaje no se descargó completo porque su tamaño ({size_mb:.1f} MB) supera el máximo que "
            "el servicio descarga. El texto y los adjuntos siguen en el buzón "
            f"{self.address}; ábralo allí para verlos."
        )
        lines += [
            f"X-Helppeople-Oversize: {ref.size}",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n" + note + "\r\n").encode("utf-8")

    def mark_processed(self, refs: Sequence[MessageRef]) -> None:
        if not refs:
            return
        label_id = self._ensure_label()
        messages = self._service().users().messages()
        for ref in refs:
            self._execute(
                messages.modify(userId="me", id=ref.source_id, body={"addLabelIds": [label_id]}, fields="id"),
                f"labelling message {ref.source_id} as processed",
                tolerate=(404,),
            )

    # -- sending (R12 acknowledgements for Gmail mailboxes) --------------------------------------
    def send(self, message_bytes: bytes, from_address: str, to_addresses: Sequence[str]) -> None:
        """Send a ready RFC 5322 message as the mailbox through ``messages.send`` with ``raw`` in the
        body (the media upload form would bypass ``api_endpoint``). Gmail takes the envelope from the
        message's own headers; the arguments mirror the SMTP sender's for one interface."""
        raw = base64.urlsafe_b64encode(message_bytes).decode("ascii")
        self._execute(
            self._service().users().messages().send(userId="me", body={"raw": raw}, fields="id"),
            f"sending a message to {', '.join(to_addresses)}",
        )

    # -- expiry --------------------------------------------------------------------------------
    def expiry_warnings(self, today: date) -> list[str]:
        """A warning when the key or token expires within ``expiry_warning_days`` (or already did)."""
        expires = self.credential_expires_on
        if expires is None:
            return []
        days = (expires - today).days
        what = "service-account key" if self.service_account_info is not None else "OAuth refresh token"
        if days < 0:
            return [
                f"{self._who()}: the {what} expired on {expires.isoformat()}; intake stops until it is replaced "
                "(update the secret and credential_expires_on)."
            ]
        if days <= self.expiry_warning_days:
            when = "today" if days == 0 else f"in {days} day(s)"
            return [
                f"{self._who()}: the {what} expires on {expires.isoformat()} ({when}); replace it before then "
                "and update credential_expires_on, or intake stops."
            ]
        return []


def _parse_key(info: SecretStr, where: str) -> dict:
    """The key JSON as a dict; errors never quote the key."""
    try:
        data = json.loads(info.get_secret_value())
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("type") != "service_account" or "private_key" not in data:
        from mailservice.config import ConfigError

        raise ConfigError(
            f"{where}: the service-account key is not a key JSON of type service_account (with private_key, "
            "client_email and token_uri); download a JSON key for the service account"
        )
    return data
