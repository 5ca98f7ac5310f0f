"""The ``notify:`` section of a mailbox (R12, issue 5 §1): how the sender hears back.

```yaml
    notify:
      mode: email                 # none | helpdesk | email
      from: soporte@cliente.test
      from_name: Mesa de Servicio
      language: es
      smtp: {host: smtp.office365.com, port: 587, starttls: true, username: soporte@cliente.test,
             password_env: SMTP_PASSWORD}
      max_per_sender_per_hour: 5
      notify_unknown_senders: false
      link_template: https://helpdesk.cliente.test/requests/{number}
```

``none``: nobody is answered. ``helpdesk``: the create call carries the helpdesk's notify flag and
the helpdesk sends its own notification. ``email``: the service sends the acknowledgement itself,
over SMTP (``smtp:``) or, for a Gmail mailbox without ``smtp:``, through the Gmail API.

Separate from ``mailservice/config.py`` so that module can import it without a cycle; the same
strictness (``extra="forbid"``): a misspelt key is an error, not a silently ignored setting.
Secrets are never here, only the name of the environment variable or Prefect Secret block (R20).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LINK_FIELDS = re.compile(r"\{([^{}]*)\}")
_CREDENTIAL_KEYS = ("password_env", "password_block", "oauth_token_env", "oauth_token_block")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SmtpConfig(_Strict):
    """The SMTP server the acknowledgements go through. TLS always, certificate always verified."""

    host: str = Field(description="SMTP server, e.g. smtp.office365.com")
    port: int | None = Field(
        None, ge=1, le=65535, description="Default 587 for starttls, 465 for tls, 25 for none (loopback only)"
    )
    starttls: bool | None = Field(
        None, description="true: STARTTLS on a plain port (587); false: implicit TLS (465). Same as security"
    )
    security: Literal["starttls", "tls", "none"] | None = Field(
        None, description="starttls (default) | tls (implicit, port 465) | none (only for 127.0.0.1/localhost)"
    )
    ca_file: Path | None = Field(None, description="CA bundle for a private CA; verification is never disabled")
    username: str | None = Field(None, description="Login; empty: no AUTH (a relay that trusts this machine)")
    password_env: str | None = None
    password_block: str | None = None
    oauth_token_env: str | None = Field(None, description="Env var holding an XOAUTH2 access token")
    oauth_token_block: str | None = Field(None, description="Prefect Secret block holding an XOAUTH2 access token")
    oauth_from_mailbox: bool = Field(
        False, description="XOAUTH2 with the imap mailbox's own oauth (msal) app: the same credentials as reading"
    )
    helo_name: str | None = Field(None, description="Name sent in EHLO (default: this machine's name)")
    timeout_seconds: float = Field(30, gt=0, le=600)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or (any(c in value for c in " /:@") and value != "::1"):
            raise ValueError("must be a host name or IP address, without scheme, port or user")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpConfig:
        if self.security is not None and self.starttls is not None:
            implied = "starttls" if self.starttls else "tls"
            if implied != self.security:
                raise ValueError(f"starttls: {str(self.starttls).lower()} contradicts security: {self.security}")
        if self.effective_security == "none" and self.host.lower() not in LOOPBACK_HOSTS:
            raise ValueError("security: none (no TLS) is allowed only for 127.0.0.1/localhost; use starttls or tls")
        sources = [k for k in (*_CREDENTIAL_KEYS, "oauth_from_mailbox") if getattr(self, k)]
        if len(sources) > 1:
            raise ValueError(f"give at most one of {', '.join(_CREDENTIAL_KEYS)} (got {', '.join(sources)})")
        if sources and not self.username:
            raise ValueError(f"{sources[0]} needs username (the login, usually the from address)")
        if self.username and not sources:
            raise ValueError(f"username needs one of {', '.join(_CREDENTIAL_KEYS)}")
        return self

    @property
    def effective_security(self) -> Literal["starttls", "tls", "none"]:
        if self.security is not None:
            return self.security
        if self.starttls is False:
            return "tls"
        return "starttls"

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.effective_security]


class NotifyConfig(_Strict):
    """How the sender of a message hears back (R12); ``mode: none`` by default."""

    mode: Literal["none", "helpdesk", "email"] = Field(
        "none", description="none | helpdesk (the helpdesk notifies) | email (the service sends it)"
    )
    from_address: str | None = Field(
        None, alias="from", description="Address the acknowledgement is sent from (default: the mailbox address)"
    )
    from_name: str | None = Field(None, description="Display name of the sender, e.g. 'Mesa de Servicio'")
    language: Literal["es", "en"] | None = Field(None, description="Template language (default: the mailbox's)")
    template_dir: Path | None = Field(
        None, description="Folder with the client's own ack.<lang>.txt / unknown_sender.<lang>.txt (default: built-in)"
    )
    smtp: SmtpConfig | None = Field(None, description="SMTP server; omit for a Gmail mailbox (sent via the Gmail API)")
    max_per_sender_per_hour: int = Field(5, ge=0, le=1000, description="At most this many acknowledgements per sender")
    notify_unknown_senders: bool = Field(
        False, description="Send unknown senders a polite notice (at most once per sender per day)"
    )
    link_template: str | None = Field(
        None, description="Link to the request, with {number} and/or {id}, e.g. https://helpdesk/requests/{number}"
    )
    message_id_domain: str | None = Field(None, description="Domain of our Message-IDs (default: the from domain)")

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _EMAIL.match(value.strip()):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value.strip().lower()

    @field_validator("link_template")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL, e.g. https://helpdesk/requests/{number}")
        bad = [f for f in _LINK_FIELDS.findall(value) if f not in ("number", "id")]
        if bad:
            names = ", ".join("{" + b + "}" for b in bad)
            raise ValueError(f"unknown placeholder(s) {names}; use {{number}} or {{id}}")
        return value

    @field_validator("message_id_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z0-9-]+", value.strip()):
            raise ValueError(f"{value!r} is not a domain name")
        return value.strip().lower() if value else None

    def transport(self, mailbox_kind: str) -> Literal["smtp", "gmail"] | None:
        """How ``mode: email`` sends for a mailbox of ``mailbox_kind``; None for other modes.

        Raises ValueError (for the config validator) when ``email`` has no way to send.
        """
        if self.mode != "email":
            return None
        if self.smtp is not None:
            return "smtp"
        if mailbox_kind == "gmail":
            return "gmail"
        raise ValueError("notify.mode email needs notify.smtp (only a gmail mailbox can send without it)")

    def sender_address(self, mailbox_address: str) -> str:
        return self.from_address or mailbox_address.strip().lower()

    def id_domain(self, mailbox_address: str) -> str:
        return self.message_id_domain or self.sender_address(mailbox_address).rsplit("@", 1)[-1]
