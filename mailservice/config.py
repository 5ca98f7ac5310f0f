"""The service's one YAML config file: the helpdesk, the ledger and any number of mailboxes.

Validated completely before anything runs, so a typo is one clear error naming the file and the
key, not a failure at 3 a.m. in the middle of a run. Relative paths are relative to the config
file's folder (like docker-compose), so a config works whatever the current directory is.
Secrets are never in this file: only the name of the environment variable or Prefect Secret
block that holds them (R20).
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mailservice.notify_config import NotifyConfig

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HelpdeskConfig(_Strict):
    url: str = Field(description="Base URL of the helpdesk API, e.g. http://127.0.0.1:8765")
    token_env: str | None = Field(None, description="Environment variable holding the bearer token")
    token_block: str | None = Field(None, description="Name of a Prefect Secret block holding the token")
    timeout_seconds: float = Field(30, gt=0, le=600)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_factor: float = Field(0.5, ge=0, le=60)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8765")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_token_source(self) -> HelpdeskConfig:
        if self.token_env and self.token_block:
            raise ValueError("give either token_env or token_block, not both")
        return self


class MicrosoftOAuthConfig(_Strict):
    """XOAUTH2 tokens for Office 365 from Microsoft identity (msal)."""

    provider: Literal["microsoft"] = "microsoft"
    tenant_id: str = Field(description="Directory (tenant) id or domain")
    client_id: str = Field(description="Application (client) id of the app registration")
    client_secret_env: str | None = Field(None, description="Env var holding the client secret")
    client_secret_block: str | None = Field(None, description="Prefect Secret block holding the client secret")
    refresh_token_env: str | None = Field(
        None, description="Delegated flow: env var holding a user refresh token (else client credentials)"
    )
    authority_host: str = Field(
        "https://login.microsoftonline.com", description="Identity host; change only for sovereign clouds or tests"
    )
    scopes: list[str] = Field(default_factory=lambda: ["https://outlook.office365.com/.default"])


class GmailUserOAuthConfig(_Strict):
    """A user's OAuth refresh token (the user consented once; no password is shared, R1)."""

    client_id: str
    client_secret_env: str
    refresh_token_env: str
    token_uri: str = "https://oauth2.googleapis.com/token"


class RoutingWhen(_Strict):
    sender_domain: list[str] = Field(default_factory=list, description="Any of these sender domains")
    subject_any: list[str] = Field(default_factory=list, description="Any of these words in the subject")
    body_any: list[str] = Field(default_factory=list, description="Any of these words in the body")
    subject_regex: str | None = None
    body_regex: str | None = None

    @field_validator("subject_regex", "body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class RoutingSet(_Strict):
    category: str | None = None
    group: str | None = None
    priority: Literal["low", "medium", "high", "urgent"] | None = None
    tags: list[str] = Field(default_factory=list)


class RoutingRuleConfig(_Strict):
    name: str = Field(description="Recorded in the ledger for every request the rule routed")
    when: RoutingWhen
    set: RoutingSet


class MailboxConfig(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Lower-case letters, digits and dashes")
    kind: Literal["maildir", "imap", "gmail"] = Field(description="Where the mail is read: maildir, imap or gmail")
    address: str = Field(description="The mailbox's own address; it must be among the recipients (R5)")
    timezone: str = Field("UTC", description="IANA time zone that defines 'today' for this mailbox (R3)")
    schedule_minutes: int = Field(5, ge=1, le=1440)
    subject_max_chars: int = Field(80, ge=10, le=1000)
    attachment_max_mb: float = Field(20, gt=0, le=1024)
    chunk_size: int = Field(100, ge=1, le=5000, description="Messages per mapped task run")
    lookback_minutes: int = Field(
        60, ge=0, le=1440, description="Scheduled runs also read unprocessed mail this long before midnight"
    )
    keep_emoji: bool = False
    language: Literal["es", "en"] = "es"
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    notify: NotifyConfig = Field(
        default_factory=NotifyConfig, description="Acknowledgements (R12): none | helpdesk | email"
    )
    assignment_bot: bool = Field(False, description="Create requests for the helpdesk's assignment bot (R13)")
    client: str | None = Field(None, description="Client name, used in deployment tags and descriptions")
    credential_expires_on: date | None = Field(
        None, description="Known expiry of the mailbox secret (client secret, key): warned about in advance"
    )
    expiry_warning_days: int = Field(14, ge=0, le=365)
    routing: list[RoutingRuleConfig] = Field(
        default_factory=list, description="Local routing rules (R13), evaluated in order, first match wins"
    )

    # kind: maildir
    path: Path | None = Field(None, description="Maildir folder (kind: maildir)")

    # kind: imap (Office 365 or any IMAP server; TLS always, certificate always verified)
    host: str | None = None
    port: int = Field(993, ge=1, le=65535)
    username: str | None = None
    folder: str = "INBOX"
    password_env: str | None = None
    password_block: str | None = None
    oauth: MicrosoftOAuthConfig | None = None
    ca_file: Path | None = Field(None, description="CA bundle for a private CA; verification is never disabled")
    processed_keyword: str = "$HelppeopleIngested"
    processed_folder: str = Field("Processed", description="Used only when the server refuses custom keywords")
    fetch_batch: int = Field(200, ge=1, le=1000)
    timeout_seconds: float = Field(30, gt=0, le=600)

    # kind: gmail (Gmail API; service account with domain-wide delegation, or a user refresh token)
    service_account_file: Path | None = None
    service_account_env: str | None = Field(None, description="Env var holding the service-account key JSON")
    delegated_user: str | None = Field(None, description="Mailbox the service account acts as (default: address)")
    user_oauth: GmailUserOAuthConfig | None = None
    api_endpoint: str = "https://gmail.googleapis.com/"
    processed_label: str = "helppeople-ingested"

    @model_validator(mode="after")
    def _kind_keys(self) -> MailboxConfig:
        def need(key: str, why: str) -> None:
            if getattr(self, key) in (None, ""):
                raise ValueError(f"kind {self.kind} needs the key {key!r} ({why})")

        if self.kind == "maildir":
            need("path", "the Maildir folder")
        elif self.kind == "imap":
            need("host", "the IMAP server, e.g. outlook.office365.com")
            need("username", "the login, usually the mailbox address")
            sources = [k for k in ("password_env", "password_block", "oauth") if getattr(self, k)]
            if len(sources) != 1:
                raise ValueError("kind imap needs exactly one of password_env, password_block or oauth")
        elif self.kind == "gmail":
            sources = [k for k in ("service_account_file", "service_account_env", "user_oauth") if getattr(self, k)]
            if len(sources) != 1:
                raise ValueError(
                    "kind gmail needs exactly one of service_account_file, service_account_env or user_oauth "
                    "(no password is ever used for Gmail, R1)"
                )
        self.notify.transport(self.kind)  # mode email needs a way to send: smtp, or the Gmail API
        return self

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value.lower()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Bogota)") from exc
        return value

    @property
    def attachment_max_bytes(self) -> int:
        return int(self.attachment_max_mb * 1024 * 1024)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def notify_requester(self) -> bool:
        """R12 helpdesk mode: the create call asks the helpdesk to send its own notification."""
        return self.notify.mode == "helpdesk"

    def routing_rules(self) -> tuple:
        from tasks.routing import RoutingRule

        return tuple(
            RoutingRule(
                name=r.name,
                sender_domains=tuple(r.when.sender_domain),
                subject_keywords=tuple(r.when.subject_any),
                body_keywords=tuple(r.when.body_any),
                subject_regex=r.when.subject_regex,
                body_regex=r.when.body_regex,
                category=r.set.category,
                group=r.set.group,
                priority=r.set.priority,
                tags=tuple(r.set.tags),
            )
            for r in self.routing
        )


class ServiceConfig(_Strict):
    helpdesk: HelpdeskConfig
    ledger: str = Field("sqlite:///var/ledger.db", description="SQLAlchemy URL of the ledger database")
    data_dir: Path = Field(Path("var"), description="Where datasets (user matrix) and reports are written")
    user_matrix_ttl_minutes: float = Field(15, gt=0, le=24 * 60)
    mailboxes: Annotated[list[MailboxConfig], Field(min_length=1)]

    @field_validator("ledger")
    @classmethod
    def _ledger_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be an SQLAlchemy URL, e.g. sqlite:///var/ledger.db or postgresql+psycopg://...")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> ServiceConfig:
        seen: set[str] = set()
        for box in self.mailboxes:
            if box.name in seen:
                raise ValueError(f"mailbox name {box.name!r} is used twice; names must be unique")
            seen.add(box.name)
        return self

    def mailbox(self, name: str) -> MailboxConfig:
        for box in self.mailboxes:
            if box.name == name:
                return box
        known = ", ".join(b.name for b in self.mailboxes)
        raise ConfigError(f"no mailbox named {name!r} in the config (mailboxes: {known})")


def _key_path(loc: tuple, data: dict) -> str:
    """Turn pydantic's ('mailboxes', 1, 'timezone') into 'mailboxes[1] (soporte).timezone'."""
    text = ""
    for position, item in enumerate(loc):
        if isinstance(item, int):
            text += f"[{item}]"
            if position == 1 and loc[0] == "mailboxes":
                try:
                    name = data["mailboxes"][item].get("name")
                except (KeyError, IndexError, TypeError, AttributeError):
                    name = None
                if name:
                    text += f" ({name})"
        else:
            text += ("." if text else "") + str(item)
    return text or "(top level)"


def _describe(exc: ValidationError, data: dict, path: Path) -> str:
    lines = [f"{path}: invalid config"]
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against examples/config.yaml)"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"  {_key_path(tuple(error['loc']), data)}: {message}")
    return "\n".join(lines)


def _resolve_paths(config: ServiceConfig, base: Path) -> ServiceConfig:
    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    ledger = config.ledger
    prefix = "sqlite:///"
    if ledger.startswith(prefix) and not ledger.startswith(prefix + "/") and ":memory:" not in ledger:
        ledger = prefix + str(absolute(Path(ledger[len(prefix) :])))
    def resolve_box(box: MailboxConfig) -> MailboxConfig:
        update = {
            key: absolute(getattr(box, key))
            for key in ("path", "ca_file", "service_account_file")
            if getattr(box, key) is not None
        }
        notify = box.notify
        if notify.template_dir is not None:
            notify = notify.model_copy(update={"template_dir": absolute(notify.template_dir)})
        if notify.smtp is not None and notify.smtp.ca_file is not None:
            notify = notify.model_copy(
                update={"smtp": notify.smtp.model_copy(update={"ca_file": absolute(notify.smtp.ca_file)})}
            )
        return box.model_copy(update={**update, "notify": notify})

    boxes = [resolve_box(box) for box in config.mailboxes]
    return config.model_copy(update={"ledger": ledger, "data_dir": absolute(config.data_dir), "mailboxes": boxes})


def parse_config(data: object, path: Path) -> ServiceConfig:
    """Validate already-loaded YAML; ``path`` is used for messages and relative paths."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must be a YAML mapping with keys helpdesk, ledger, mailboxes")
    try:
        config = ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data, path)) from None
    return _resolve_paths(config, path.parent.resolve())


def load_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """Read and validate the config file, or raise ConfigError with one clear message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (see examples/config.yaml)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_config(data, path)
