"""An IMAP mailbox (Office 365 / Exchange Online or any IMAP server) read by the ingest flow (R1).

TLS always (implicit TLS, port 993), the server certificate always verified: against the system
store, or against ``ca_file`` for a private CA. There is no switch that disables verification.
Login with a password, or XOAUTH2 with an access token from Microsoft identity (``msal``):
client credentials for an app-registered mailbox, or a user's delegated refresh token. The token
is cached in the block instance and renewed before it expires.

How the day is read (R3, R15), with nothing but the server's own state:

* ``list_refs``: ``UID SEARCH SINCE/BEFORE`` (day-granular, widened by a day on each side for the
  server's time zone) ``UNKEYWORD $HelppeopleIngested``, then ``UID FETCH (INTERNALDATE
  RFC822.SIZE FLAGS)`` of the hits by UID batch, filtered exactly by INTERNALDATE. An idle poll is
  one SEARCH that finds nothing: no FETCH at all. ``source_id`` is ``"{UIDVALIDITY}:{UID}"``.
* ``fetch``: ``UID FETCH BODY.PEEK[]`` (never sets ``\\Seen``) in batches bounded by count and by
  bytes. A message larger than ``max_message_bytes`` is not downloaded whole: its header, its
  first text part (if small) and a Spanish note naming its size and the files left out make a
  small message that still gets an outcome. A ``source_id`` whose UIDVALIDITY is no longer the
  folder's is never fetched by UID: the message is found again by INTERNALDATE and size, or
  skipped (the next run lists it again; the ledger's content key prevents a second request).
* ``mark_processed``: ``UID STORE +FLAGS.SILENT ($HelppeopleIngested)`` when PERMANENTFLAGS allows
  the keyword; otherwise ``UID MOVE`` to ``processed_folder`` (created if missing). Mail is never
  deleted and never EXPUNGEd (beyond what MOVE itself implies).

One connection per block instance, shared by the flow's worker threads under a lock; a dropped
connection is reopened once, then the failure becomes ``MailboxUnavailable`` with a message a
person can act on. Secrets are unwrapped only where the login happens and never appear in a
message or a log.
"""

from __future__ import annotations

import contextlib
import email.header
import hashlib
import imaplib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from blocks.mailbox import MailboxUnavailable
from tasks.model import MessageRef, RawMessage

if TYPE_CHECKING:
    from imapclient import IMAPClient

    from mailservice.config import MailboxConfig

PROCESSED_KEYWORD = "$HelppeopleIngested"
META_BATCH = 1000  # UIDs per metadata FETCH (~7 KB of UID list; dovecot's line limit is 64 KB)
BATCH_MAX_BYTES = 16 * 1024 * 1024  # one body FETCH holds at most this much (unless one message is bigger)
STORE_BATCH = 500
OVERSIZE_TEXT_MAX = 1024 * 1024  # text part kept from an oversize message: at most this big
TOKEN_RENEW_SECONDS = 300  # a delegated token with less life left than this is renewed before use
_ATOM_SPECIALS = re.compile(r'[\s(){%*"\\\]\x00-\x1f\x7f]')
# OAuth errors that mean "these credentials will not work": not retried, remembered by the instance.
_REFUSALS = frozenset({
    "invalid_client", "unauthorized_client", "invalid_grant", "invalid_request", "invalid_scope",
    "consent_required", "interaction_required", "access_denied", "invalid_tenant",
})
_CONTENT_FIELDS = (b"content-type", b"content-transfer-encoding", b"content-disposition", b"mime-version")

T = TypeVar("T")


class ImapLoginRefused(MailboxUnavailable):
    """The server (or the identity provider) refused the credentials; retrying will not help.

    ``retryable = False`` lets a task's retry condition skip pointless retries (and account lockouts).
    """

    retryable = False


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:
        return logging.getLogger(__name__)


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB".replace(".", ",")
    return f"{max(1, round(size / 1024))} KB"


@dataclass
class _Connection:
    """Everything that lives as long as the connection; shared by copies of the block."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    client: Any = None  # IMAPClient
    selected: str | None = None
    selected_readonly: bool = False
    uidvalidity: dict[str, int] = field(default_factory=dict)
    mode: str | None = None  # "keyword" | "move", decided on the first read-write SELECT
    refused: str | None = None  # a refused login is not tried again by this instance
    app: Any = None  # msal application (one per block instance: its token cache lives in it)
    token: str | None = None  # delegated flow: the access token and when it expires
    token_expires_at: float = 0.0
    rotated_refresh_token: str | None = None
    logins: int = 0


@dataclass(frozen=True)
class _Part:
    section: str
    ctype: str
    size: int  # as stored (encoded)
    filename: str | None
    disposition: str | None
    encoding: str = ""

    @property
    def decoded_size(self) -> int:
        # base64 as mail carries it: 76 characters and CRLF per 57 bytes
        return self.size * 57 // 78 if self.encoding == "base64" else self.size


class ImapMailbox(Block):
    """An IMAP mailbox read over TLS: Office 365 (password or XOAUTH2 via msal) or any IMAP server.

    Example:
        ```python
        from blocks.imap import ImapMailbox
        mailbox = ImapMailbox.load("BLOCK_NAME")
        refs = mailbox.list_refs(since, until, include_processed=False)
        ```
    """

    _block_type_name = "IMAP Mailbox"
    _logo_url = "https://raw.githubusercontent.com/PrefectHQ/prefect/main/docs/images/logos/prefect-logo.png"
    _description = "An IMAP mailbox (Office 365 or any IMAP server over TLS) read by helppeople Mail Service."

    host: str = Field(description="IMAP server host name, e.g. outlook.office365.com.")
    port: int = Field(993, ge=1, le=65535, description="IMAPS port (implicit TLS).")
    username: str = Field(description="Login name, usually the mailbox address.")
    folder: str = Field("INBOX", description="Folder the support mail arrives in.")
    password: SecretStr | None = Field(None, description="Password for LOGIN (leave empty for XOAUTH2).")
    tenant_id: str | None = Field(None, description="XOAUTH2: Microsoft Entra tenant id or domain.")
    client_id: str | None = Field(None, description="XOAUTH2: application (client) id of the app registration.")
    client_secret: SecretStr | None = Field(None, description="XOAUTH2: client secret of the app registration.")
    refresh_token: SecretStr | None = Field(
        None, description="XOAUTH2 delegated flow: a user's refresh token (else client credentials are used)."
    )
    authority_host: str = Field(
        "https://login.microsoftonline.com", description="Identity host; change only for sovereign clouds or tests."
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["https://outlook.office365.com/.default"], description="XOAUTH2 token scopes."
    )
    ca_file: str | None = Field(
        None, description="CA bundle (path or PEM text) for a server with a private CA; verification is never off."
    )
    processed_keyword: str = Field(PROCESSED_KEYWORD, description="IMAP keyword set on mail whose outcome is recorded.")
    processed_folder: str = Field(
        "Processed", description="Folder processed mail is moved to when the server refuses custom keywords."
    )
    fetch_batch: int = Field(200, ge=1, le=1000, description="Messages per UID FETCH command.")
    timeout_seconds: float = Field(
        30, gt=0, le=600, description="Network timeout for the server and the identity host."
    )
    max_message_bytes: int | None = Field(
        None, ge=1, description="Larger messages are not downloaded whole (headers, text and a note instead)."
    )
    mailbox_name: str = Field("imap", description="The mailbox's name in the service config, used in messages.")
    credential_expires_on: date | None = Field(None, description="Known expiry of the password or client secret.")
    expiry_warning_days: int = Field(14, ge=0, le=365, description="Warn this many days before that expiry.")

    _conn: _Connection = PrivateAttr(default_factory=_Connection)

    # -- configuration -----------------------------------------------------------------------
    @field_validator("processed_keyword")
    @classmethod
    def _atom(cls, value: str) -> str:
        if not value or value.startswith("\\") or _ATOM_SPECIALS.search(value):
            raise ValueError("must be an IMAP keyword: no spaces, no ( ) { % * \" \\ ], not starting with \\")
        return value

    @model_validator(mode="after")
    def _one_login(self) -> ImapMailbox:
        oauth = bool(self.client_id or self.tenant_id)
        if oauth and not (self.client_id and self.tenant_id):
            raise ValueError("XOAUTH2 needs both tenant_id and client_id")
        if oauth == (self.password is not None):
            raise ValueError("give either a password or XOAUTH2 settings (tenant_id, client_id), not both or none")
        if oauth and self.client_secret is None and self.refresh_token is None:
            raise ValueError("XOAUTH2 needs a client_secret (client credentials) or a refresh_token (delegated)")
        return self

    @classmethod
    def from_config(cls, box: MailboxConfig) -> ImapMailbox:
        """The block for a ``kind: imap`` config entry, secrets resolved from env or Secret blocks (R20)."""
        from mailservice.secrets import secret_from

        where = f"mailboxes ({box.name})"
        settings: dict[str, Any] = {}
        if box.oauth is not None:
            oauth = box.oauth
            settings = {
                "tenant_id": oauth.tenant_id,
                "client_id": oauth.client_id,
                "client_secret": secret_from(
                    oauth.client_secret_env, oauth.client_secret_block,
                    key=f"{where}.oauth.client_secret_env/client_secret_block",
                ),
                "refresh_token": secret_from(oauth.refresh_token_env, key=f"{where}.oauth.refresh_token_env"),
                "authority_host": oauth.authority_host,
                "scopes": list(oauth.scopes),
            }
        else:
            settings["password"] = secret_from(
                box.password_env, box.password_block, key=f"{where}.password_env/password_block"
            )
        return cls(
            host=box.host,
            port=box.port,
            username=box.username,
            folder=box.folder,
            ca_file=str(box.ca_file) if box.ca_file else None,
            processed_keyword=box.processed_keyword,
            processed_folder=box.processed_folder,
            fetch_batch=box.fetch_batch,
            timeout_seconds=box.timeout_seconds,
            # Whole-message limit: the attachment limit plus base64 (×4/3, with margin) plus 1 MB for text.
            max_message_bytes=int(box.attachment_max_bytes * 1.4) + 1024 * 1024,
            mailbox_name=box.name,
            credential_expires_on=box.credential_expires_on,
            expiry_warning_days=box.expiry_warning_days,
            **settings,
        )

    @property
    def uses_oauth(self) -> bool:
        return self.client_id is not None

    @property
    def uidvalidity(self) -> int | None:
        """UIDVALIDITY of ``folder`` as last seen by this instance (None before the first read)."""
        return self._conn.uidvalidity.get(self.folder)

    @property
    def logins(self) -> int:
        """Successful logins by this instance (one per connection; more means reconnects)."""
        return self._conn.logins

    def expiry_warnings(self, today: date) -> list[str]:
        """Warnings for a credential whose known expiry is near (msal renews its own tokens)."""
        expires = self.credential_expires_on
        if expires is None:
            return []
        days = (expires - today).days
        what = "client secret" if self.uses_oauth else "password"
        if days < 0:
            return [
                f"IMAP mailbox {self.mailbox_name!r}: the {what} expired on {expires.isoformat()}; intake fails "
                "until a new one is stored where the config points and credential_expires_on is updated."
            ]
        if days <= self.expiry_warning_days:
            return [
                f"IMAP mailbox {self.mailbox_name!r}: the {what} expires on {expires.isoformat()} (in {days} "
                "day(s)); renew it and update credential_expires_on before then, or intake stops."
            ]
        return []

    # -- errors ------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"IMAP mailbox {self.mailbox_name!r} ({self.host}:{self.port}, user {self.username})"

    def _unavailable(self, what: str, check: str, cls: type[MailboxUnavailable] = MailboxUnavailable):
        return cls(f"{self._where()}: {what}. Check {check}")

    def _network_error(self, exc: BaseException, doing: str) -> MailboxUnavailable:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return self._unavailable(
                f"TLS certificate not trusted ({exc.verify_message or exc.reason})",
                "that host is the right server; if it uses a private CA, set ca_file to that CA's certificate "
                "(verification is never switched off)",
            )
        if isinstance(exc, ConnectionRefusedError):
            return self._unavailable(
                f"connection refused while {doing}",
                "that the server is running and that host and port are right (IMAPS, usually 993)",
            )
        if isinstance(exc, TimeoutError):
            return self._unavailable(
                f"timeout after {self.timeout_seconds:g} s while {doing}",
                "that the server is reachable from this machine (firewall, VPN) and not overloaded",
            )
        if isinstance(exc, socket.gaierror):
            return self._unavailable(f"host name not found while {doing}", "the spelling of host")
        if isinstance(exc, ssl.SSLError):
            return self._unavailable(
                f"TLS failed while {doing} ({exc.reason or type(exc).__name__})",
                "that the port speaks implicit TLS (IMAPS, usually 993), not plain IMAP or STARTTLS",
            )
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return self._unavailable(
            f"connection failed while {doing} ({detail})", "that the server is up and reachable from this machine"
        )

    # -- connection --------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        if self.ca_file and self.ca_file.lstrip().startswith("-----BEGIN"):
            return ssl.create_default_context(cadata=self.ca_file)
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (FileNotFoundError, ssl.SSLError) as exc:
            raise self._unavailable(
                f"cannot read the CA file {self.ca_file} ({type(exc).__name__})", "that ca_file is a PEM file"
            ) from None

    def _open(self) -> IMAPClient:
        import imapclient

        conn = self._conn
        if conn.refused:
            raise ImapLoginRefused(conn.refused)
        context = self._ssl_context()
        try:
            client = imapclient.IMAPClient(
                self.host, port=self.port, ssl=True, ssl_context=context, timeout=self.timeout_seconds
            )
        except (OSError, imaplib.IMAP4.error) as exc:
            raise self._network_error(exc, "connecting") from None
        client.normalise_times = False  # INTERNALDATE stays timezone-aware
        try:
            self._login(client)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        conn.logins += 1
        return client

    def _login(self, client: IMAPClient) -> None:
        from imapclient.exceptions import LoginError

        try:
            if not self.uses_oauth:
                client.login(self.username, self.password.get_secret_value())
                return
            try:
                client.oauth2_login(self.username, self._access_token())
            except LoginError:
                # The cached token may have been revoked: one more try with a token fresh from the provider.
                client.oauth2_login(self.username, self._access_token(fresh=True))
        except LoginError as exc:
            server_said = str(exc).strip()[:200]
            if self.uses_oauth:
                why = (
                    f"XOAUTH2 login refused (server said: {server_said})",
                    f"that the app registration {self.client_id} may open this mailbox (IMAP.AccessAsApp and an "
                    "Exchange service principal with FullAccess to the mailbox, or a delegated IMAP.AccessAsUser.All "
                    "consent) and that username is the mailbox address",
                )
            else:
                why = (
                    f"login refused (server said: {server_said})",
                    "username and the password the config points to (password_env / password_block); for "
                    "Office 365, basic authentication may be disabled for the tenant: use oauth (XOAUTH2)",
                )
            message = f"{self._where()}: {why[0]}. Check {why[1]}"
            self._conn.refused = message
            raise ImapLoginRefused(message) from None
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise self._network_error(exc, "logging in") from None

    # -- XOAUTH2 tokens (msal) ---------------------------------------------------------------
    def _msal_app(self):
        conn = self._conn
        if conn.app is not None:
            return conn.app
        import msal
        import requests

        authority = f"{self.authority_host.rstrip('/')}/{self.tenant_id}"
        options = {"authority": authority, "instance_discovery": False, "timeout": self.timeout_seconds}
        try:
            if self.client_secret is not None:
                conn.app = msal.ConfidentialClientApplication(
                    self.client_id, client_credential=self.client_secret.get_secret_value(), **options
                )
            else:
                conn.app = msal.PublicClientApplication(self.client_id, **options)
        except ValueError as exc:
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise self._unavailable(
                f"the identity provider does not know the tenant ({first_line})",
                "oauth.tenant_id and oauth.authority_host",
            ) from None
        except requests.exceptions.SSLError:
            raise self._unavailable(
                f"the identity provider {self.authority_host} presented a TLS certificate that is not trusted",
                "oauth.authority_host (a TLS-inspecting proxy needs its CA in REQUESTS_CA_BUNDLE)",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise self._unavailable(
                f"the identity provider {self.authority_host} cannot be reached ({type(exc).__name__})",
                "oauth.authority_host and this machine's access to it (proxy, firewall)",
            ) from None
        return conn.app

    def access_token(self) -> str:
        """A valid XOAUTH2 access token from this mailbox's identity app; lent to the SMTP sender
        (Office 365's scope covers IMAP and SMTP), so both use one app and one token cache."""
        if self.client_id is None or self.tenant_id is None:
            raise ImapLoginRefused(f"{self._where()}: this mailbox has no oauth settings to lend a token from")
        return self._access_token()

    def _access_token(self, fresh: bool = False) -> str:
        """A valid access token: msal's cache (client credentials) or our own (delegated refresh token)."""
        import requests

        conn = self._conn
        try:
            if self.refresh_token is None:
                if fresh:
                    conn.app = None  # a new application has an empty token cache
                result = self._msal_app().acquire_token_for_client(scopes=self.scopes)
            else:
                if not fresh and conn.token and conn.token_expires_at - time.time() > TOKEN_RENEW_SECONDS:
                    return conn.token
                refresh = conn.rotated_refresh_token or self.refresh_token.get_secret_value()
                result = self._msal_app().acquire_token_by_refresh_token(refresh, scopes=self.scopes)
        except requests.exceptions.RequestException as exc:
            raise self._unavailable(
                f"the identity provider {self.authority_host} cannot be reached ({type(exc).__name__})",
                "oauth.authority_host and this machine's access to it (proxy, firewall)",
            ) from None
        if "access_token" not in result:
            error = result.get("error", "unknown_error")
            description = ((result.get("error_description") or "").splitlines() or [""])[0][:200]
            check = (
                "that the user's refresh token is still valid (it may have expired or been revoked: sign in "
                "again and store the new one where oauth.refresh_token_env points)"
                if self.refresh_token is not None
                else f"oauth.client_id ({self.client_id}), the client secret the config points to (it may have "
                "expired: see credential_expires_on) and the app's admin consent"
            )
            if error not in _REFUSALS:  # e.g. temporarily_unavailable: a later try may work
                raise self._unavailable(
                    f"the identity provider could not issue a token now ({error}: {description})",
                    f"the status of {self.authority_host}; the next run tries again",
                )
            message = f"{self._where()}: the identity provider refused the token request ({error}: {description}). "
            message += f"Check {check}"
            conn.refused = message
            raise ImapLoginRefused(message)
        if self.refresh_token is not None:
            conn.token = result["access_token"]
            conn.token_expires_at = time.time() + float(result.get("expires_in") or 0)
            if result.get("refresh_token"):
                conn.rotated_refresh_token = result["refresh_token"]
        return result["access_token"]

    def _client(self) -> IMAPClient:
        conn = self._conn
        if conn.client is None:
            conn.client = self._open()
            conn.selected = None
        return conn.client

    def _drop(self) -> None:
        conn = self._conn
        client, conn.client, conn.selected = conn.client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _call(self, doing: str, operation: Callable[[IMAPClient], T]) -> T:
        """Run ``operation`` on the connection under the lock; reconnect once if the connection dropped."""
        with self._conn.lock:
            for attempt in (1, 2):
                client = self._client()
                try:
                    return operation(client)
                except (imaplib.IMAP4.abort, OSError, EOFError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise self._network_error(exc, doing) from None
                    _logger().warning("%s: connection dropped while %s; reconnecting once", self._where(), doing)
                except imaplib.IMAP4.error as exc:
                    raise self._unavailable(
                        f"the server refused a command while {doing} ({str(exc)[:200]})",
                        "folder and processed_folder exist and the user may read and flag mail in them",
                    ) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Log out; the next call connects again."""
        with self._conn.lock:
            client, self._conn.client, self._conn.selected = self._conn.client, None, None
            if client is not None:
                try:
                    client.logout()
                except Exception:
                    with contextlib.suppress(Exception):
                        client.shutdown()

    def _select(self, client: IMAPClient, folder: str, *, readonly: bool = False) -> int:
        """Select ``folder`` (read-write unless asked) if it is not already; returns its UIDVALIDITY."""
        conn = self._conn
        if conn.selected == folder and (readonly or not conn.selected_readonly):
            return conn.uidvalidity[folder]
        response = client.select_folder(folder, readonly=readonly)
        uidvalidity = int(response[b"UIDVALIDITY"])
        known = conn.uidvalidity.get(folder)
        if known is not None and known != uidvalidity:
            _logger().warning(
                "%s: UIDVALIDITY of %s changed from %s to %s (folder recreated or rebuilt); earlier UIDs are "
                "no longer used and the day is listed again", self._where(), folder, known, uidvalidity,
            )
        conn.uidvalidity[folder] = uidvalidity
        conn.selected, conn.selected_readonly = folder, readonly
        if folder == self.folder and not readonly and conn.mode is None:
            conn.mode = self._decide_mode(client, response)
        return uidvalidity

    def _decide_mode(self, client: IMAPClient, response: dict) -> str:
        permanent = {bytes(flag).lower() for flag in response.get(b"PERMANENTFLAGS", ())}
        if b"\\*" in permanent or self.processed_keyword.lower().encode() in permanent:
            return "keyword"
        if b"MOVE" in client.capabilities():
            _logger().info(
                "%s: the server does not allow the keyword %s; processed mail is moved to %s",
                self._where(), self.processed_keyword, self.processed_folder,
            )
            return "move"
        raise self._unavailable(
            "the server allows neither custom keywords (PERMANENTFLAGS has no \\*) nor MOVE, so processed mail "
            "cannot be marked without deleting it (the service never deletes mail)",
            "the user's rights on the folder (keywords need the 'write' right) or use another folder",
        )

    def _mode(self, client: IMAPClient) -> str:
        self._select(client, self.folder)
        return self._conn.mode

    # -- listing -----------------------------------------------------------------------------
    def _ref_id(self, folder: str, uidvalidity: int, uid: int) -> str:
        base = f"{uidvalidity}:{uid}"
        return base if folder == self.folder else f"{folder}:{base}"

    def _parse_id(self, source_id: str) -> tuple[str, int, int]:
        parts = source_id.rsplit(":", 2)
        if len(parts) == 2:
            return self.folder, int(parts[0]), int(parts[1])
        return parts[0], int(parts[1]), int(parts[2])

    @staticmethod
    def _search_days(since: datetime, until: datetime) -> tuple[date, date]:
        """SEARCH SINCE/BEFORE days covering [since, until) in any server time zone."""
        return since.astimezone(UTC).date() - timedelta(days=1), until.astimezone(UTC).date() + timedelta(days=2)

    def _metadata(self, client: IMAPClient, uids: Sequence[int]) -> dict[int, dict]:
        found: dict[int, dict] = {}
        for start in range(0, len(uids), META_BATCH):
            found.update(client.fetch(list(uids[start : start + META_BATCH]), ["INTERNALDATE", "RFC822.SIZE", "FLAGS"]))
        return found

    def _is_marked(self, flags: Sequence[bytes]) -> bool:
        keyword = self.processed_keyword.lower().encode()
        return any(bytes(flag).lower() == keyword for flag in flags)

    def _list_folder(
        self, client: IMAPClient, folder: str, since: datetime, until: datetime, *, unprocessed_only: bool
    ) -> list[MessageRef]:
        in_processed_folder = folder != self.folder
        uidvalidity = self._select(client, folder, readonly=in_processed_folder)
        first, after = self._search_days(since, until)
        criteria: list[Any] = ["SINCE", first, "BEFORE", after]
        if unprocessed_only:
            criteria += ["UNKEYWORD", self.processed_keyword]
        uids = sorted(client.search(criteria))
        refs: list[MessageRef] = []
        for uid, data in self._metadata(client, uids).items():
            received = data.get(b"INTERNALDATE")
            if received is None:
                continue
            received = _aware(received)
            if not since <= received < until:
                continue
            processed = in_processed_folder or self._is_marked(data.get(b"FLAGS", ()))
            refs.append(MessageRef(self._ref_id(folder, uidvalidity, uid), received,
                                   int(data.get(b"RFC822.SIZE") or 0), processed))
        return refs

    def _folder_exists(self, client: IMAPClient, folder: str) -> bool:
        return bool(client.list_folders(pattern=folder))

    def list_refs(self, since: datetime, until: datetime, *, include_processed: bool) -> list[MessageRef]:
        def operation(client: IMAPClient) -> list[MessageRef]:
            mode = self._mode(client)
            refs = self._list_folder(
                client, self.folder, since, until, unprocessed_only=mode == "keyword" and not include_processed
            )
            if include_processed and mode == "move" and self._folder_exists(client, self.processed_folder):
                refs += self._list_folder(client, self.processed_folder, since, until, unprocessed_only=False)
            return refs

        refs = self._call("listing messages", operation)
        refs.sort(key=lambda ref: (ref.received_at, ref.source_id))
        return refs

    # -- fetching ----------------------------------------------------------------------------
    def _batches(self, refs: Sequence[MessageRef]) -> Iterator[list[MessageRef]]:
        batch: list[MessageRef] = []
        size = 0
        for ref in refs:
            weight = ref.size if not self._oversize(ref) else 0
            if batch and (len(batch) >= self.fetch_batch or size + weight > BATCH_MAX_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(ref)
            size += weight
        if batch:
            yield batch

    def _oversize(self, ref: MessageRef) -> bool:
        return self.max_message_bytes is not None and ref.size > self.max_message_bytes

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[RawMessage]:
        by_folder: dict[str, list[MessageRef]] = {}
        for ref in refs:
            by_folder.setdefault(self._parse_id(ref.source_id)[0], []).append(ref)
        for folder, group in by_folder.items():
            for batch in self._batches(group):
                # The lock is held for one FETCH command, never across a yield.
                yield from self._call("fetching messages", lambda c, f=folder, b=batch: self._fetch_batch(c, f, b))

    def _fetch_batch(self, client: IMAPClient, folder: str, batch: list[MessageRef]) -> list[RawMessage]:
        uidvalidity = self._select(client, folder, readonly=folder != self.folder)
        current: dict[int, MessageRef] = {}
        stale: list[MessageRef] = []
        for ref in batch:
            _, ref_validity, uid = self._parse_id(ref.source_id)
            if ref_validity == uidvalidity:
                current[uid] = ref
            else:
                stale.append(ref)
        if stale:
            current.update(self._relocate(client, folder, uidvalidity, stale, exclude=set(current)))
        whole = [uid for uid, ref in current.items() if not self._oversize(ref)]
        big = [uid for uid, ref in current.items() if self._oversize(ref)]
        bodies = client.fetch(whole, ["BODY.PEEK[]"]) if whole else {}
        synthetic = self._fetch_oversize(client, {uid: current[uid] for uid in big}) if big else {}
        out: list[RawMessage] = []
        for uid, ref in current.items():  # gone since listing: absent from the answer, skipped
            if uid in bodies and bodies[uid].get(b"BODY[]") is not None:
                out.append(RawMessage(ref, bytes(bodies[uid][b"BODY[]"])))
            elif uid in synthetic:
                out.append(RawMessage(ref, synthetic[uid]))
        return out

    def _relocate(
        self, client: IMAPClient, folder: str, uidvalidity: int, stale: list[MessageRef], exclude: set[int]
    ) -> dict[int, MessageRef]:
        """Find messages listed under an old UIDVALIDITY again, by INTERNALDATE and size; never by UID."""
        first, after = self._search_days(min(r.received_at for r in stale), max(r.received_at for r in stale))
        candidates: dict[tuple[float, int], list[tuple[int, dict]]] = {}
        for uid, data in self._metadata(client, sorted(client.search(["SINCE", first, "BEFORE", after]))).items():
            received = data.get(b"INTERNALDATE")
            if received is None:
                continue
            received = _aware(received)
            candidates.setdefault((received.timestamp(), int(data.get(b"RFC822.SIZE") or 0)), []).append((uid, data))
        found: dict[int, MessageRef] = {}
        for ref in stale:
            for uid, data in candidates.get((ref.received_at.timestamp(), ref.size), []):
                if uid in exclude or uid in found:
                    continue
                processed = folder != self.folder or self._is_marked(data.get(b"FLAGS", ()))
                found[uid] = MessageRef(self._ref_id(folder, uidvalidity, uid), ref.received_at, ref.size, processed)
        _logger().warning(
            "%s: %d message(s) were listed before the UIDVALIDITY of %s changed; %d found again by date and size, "
            "the rest are left for the next run", self._where(), len(stale), folder, len(found),
        )
        return found

    # -- oversize messages -------------------------------------------------------------------
    def _fetch_oversize(self, client: IMAPClient, refs: dict[int, MessageRef]) -> dict[int, bytes]:
        answer = client.fetch(list(refs), ["BODY.PEEK[HEADER]", "BODYSTRUCTURE"])
        out: dict[int, bytes] = {}
        for uid, data in answer.items():
            header = data.get(b"BODY[HEADER]")
            if header is None:
                continue
            parts = _leaves(data.get(b"BODYSTRUCTURE"))
            text = next((p for p in parts if _is_body_text(p, "text/plain")), None) or next(
                (p for p in parts if _is_body_text(p, "text/html")), None
            )
            text_bytes: tuple[bytes, bytes] | None = None
            if text is not None:
                mime_key, body_key = f"BODY[{text.section}.MIME]".encode(), f"BODY[{text.section}]".encode()
                got = client.fetch([uid], [f"BODY.PEEK[{text.section}.MIME]", f"BODY.PEEK[{text.section}]"])
                item = got.get(uid, {})
                if item.get(mime_key) is not None and item.get(body_key) is not None:
                    text_bytes = (bytes(item[mime_key]), bytes(item[body_key]))
            omitted = [p for p in parts if p is not text]
            out[uid] = self._oversize_message(bytes(header), refs[uid].size, text_bytes, omitted)
        return out

    def _oversize_message(
        self, header: bytes, size: int, text: tuple[bytes, bytes] | None, omitted: list[_Part]
    ) -> bytes:
        """The header, the first small text part and a Spanish note: a message the pipeline can process.

        Its bytes depend only on the original message (not on the configured limit), so its message key
        stays the same from run to run.
        """
        lines = [
            "Nota del servicio de correo helppeople:",
            f"Este mensaje ocupa {_human_size(size)} y supera el tamaño máximo que el servicio descarga del "
            "buzón, por eso no se descargó completo"
            + (": se leyeron su encabezado y su texto." if text else ": solo se leyó su encabezado."),
        ]
        files = [p for p in omitted if p.filename or not p.ctype.startswith("text/")]
        if files:
            lines.append("Contenido que no se descargó:")
            lines += [f"- {p.filename or p.ctype} ({_human_size(p.decoded_size)})" for p in files]
        lines.append(f"El mensaje original sigue completo en el buzón {self.username}.")
        note = ("\r\n".join(lines) + "\r\n").encode("utf-8")
        kept = _without_content_fields(header)
        extra = f"X-Helppeople-Oversize: {size}\r\nMIME-Version: 1.0\r\n".encode()
        if text is None:
            return (kept + extra + b"Content-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + note)
        boundary = "helppeople-oversize-" + hashlib.sha256(header).hexdigest()[:20]
        mime, body = text
        if not mime.endswith(b"\r\n\r\n"):
            mime = mime.rstrip(b"\r\n") + b"\r\n\r\n"
        return (
            kept + extra + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
            + f"--{boundary}\r\n".encode() + mime + body.rstrip(b"\r\n") + b"\r\n"
            + f"--{boundary}\r\n".encode()
            + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + note
            + f"--{boundary}--\r\n".encode()
        )

    # -- marking -----------------------------------------------------------------------------
    def mark_processed(self, refs: Sequence[MessageRef]) -> None:
        main = [ref for ref in refs if self._parse_id(ref.source_id)[0] == self.folder]
        if main:
            self._call("marking messages processed", lambda client: self._mark(client, main))

    def _mark(self, client: IMAPClient, refs: list[MessageRef]) -> None:
        mode = self._mode(client)
        uidvalidity = self._select(client, self.folder)
        uids = []
        for ref in refs:
            _, ref_validity, uid = self._parse_id(ref.source_id)
            if ref_validity == uidvalidity:
                uids.append(uid)
        if len(uids) < len(refs):
            _logger().warning(
                "%s: %d message(s) not marked: the folder's UIDVALIDITY changed since they were read; the next "
                "run finds them by their content key and only marks them", self._where(), len(refs) - len(uids),
            )
        if not uids:
            return
        if mode == "keyword":
            for start in range(0, len(uids), STORE_BATCH):
                client.add_flags(uids[start : start + STORE_BATCH], [self.processed_keyword], silent=True)
            return
        if not self._folder_exists(client, self.processed_folder):
            try:
                client.create_folder(self.processed_folder)
            except imaplib.IMAP4.error as exc:
                if b"ALREADYEXISTS" not in str(exc).encode().upper():
                    raise
        for start in range(0, len(uids), STORE_BATCH):
            client.move(uids[start : start + STORE_BATCH], self.processed_folder)


def _aware(value: datetime) -> datetime:
    """INTERNALDATE with a standard ``timezone`` (imapclient's own tzinfo class does not pickle everywhere)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.replace(tzinfo=timezone(value.utcoffset() or timedelta(0)))


# -- BODYSTRUCTURE ---------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is None:
        return ""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if "=?" in text:
        with contextlib.suppress(Exception):
            text = str(email.header.make_header(email.header.decode_header(text)))
    return text


def _params(value: Any) -> dict[str, str]:
    if not isinstance(value, tuple | list):
        return {}
    items = list(value)
    params: dict[str, str] = {}
    for name, raw in zip(items[::2], items[1::2], strict=False):
        key = _text(name).lower()
        text = _text(raw)
        if key.endswith("*"):  # RFC 2231: charset'language'percent-encoded
            key = key.rstrip("*")
            charset, _, rest = text.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                text = unquote(encoded or text, encoding=charset or "utf-8", errors="replace")
            except LookupError:
                text = unquote(encoded or text)
        params.setdefault(key, text)
    return params


def _leaves(structure: Any, prefix: str = "") -> list[_Part]:
    """Leaf parts of a BODYSTRUCTURE with their section numbers (attached messages are leaves)."""
    if structure is None:
        return []
    try:
        if getattr(structure, "is_multipart", False):
            parts: list[_Part] = []
            for index, child in enumerate(structure[0], start=1):
                section = f"{prefix}.{index}" if prefix else str(index)
                parts += _leaves(child, section)
            return parts
        ctype = f"{_text(structure[0])}/{_text(structure[1])}".lower()
        size = int(structure[6] or 0)
        if ctype.startswith("text/"):
            ext = 9
        elif ctype == "message/rfc822":
            ext = 11
        else:
            ext = 8
        disposition = structure[ext] if len(structure) > ext else None
        kind, disp_params = None, {}
        if isinstance(disposition, tuple | list) and disposition:
            kind = _text(disposition[0]).lower()
            disp_params = _params(disposition[1] if len(disposition) > 1 else None)
        filename = disp_params.get("filename") or _params(structure[2]).get("name") or None
        encoding = _text(structure[5]).lower()
        return [_Part(prefix or "1", ctype, size, filename, kind, encoding)]
    except (IndexError, TypeError, ValueError):
        return []


def _is_body_text(part: _Part, ctype: str) -> bool:
    return (
        part.ctype == ctype and not part.filename and part.disposition != "attachment"
        and part.size <= OVERSIZE_TEXT_MAX
    )


def _without_content_fields(header: bytes) -> bytes:
    """The header block without its MIME content fields (replaced by the synthetic message's own)."""
    kept: list[bytes] = []
    skipping = False
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skipping = name in _CONTENT_FIELDS
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + b"\r\n"


__all__ = ["PROCESSED_KEYWORD", "ImapLoginRefused", "ImapMailbox"]
