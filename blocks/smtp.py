"""The SMTP server acknowledgements are sent through (R12, issue 5 §1).

TLS always: STARTTLS on a submission port (587, the default) or implicit TLS (465), the server's
certificate always verified, against the system store or ``ca_file`` for a private CA. There is no
switch that disables verification; plain SMTP (``security: none``) is accepted only for loopback
(tests, a local relay). Login with a password, or XOAUTH2 with an access token (Office 365,
Gmail), or none (a relay that trusts this machine).

One connection per batch: ``with sender.session() as smtp: smtp.send(...)`` for many messages;
``sender.send(...)`` opens and closes one for a single message. Failures become one of:

* ``SmtpUnavailable`` — refused connection, timeout, dropped connection, 4xx: try again later
  (``retryable``). Its subclasses ``SmtpAuthError`` (credentials refused) and ``SmtpTlsError``
  (certificate not trusted, no STARTTLS) are not retryable in this run: a person must act.
* ``SmtpRejected`` — a 5xx for this message or recipient: sending it again unchanged will not help.

Messages name the server (host:port), the login name and what to check; never a password or token.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

if TYPE_CHECKING:
    from mailservice.notify_config import NotifyConfig, SmtpConfig

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SERVER_TEXT_MAX = 200  # characters of the server's reply quoted in an error message


class SmtpError(Exception):
    """Sending failed. ``retryable``: whether a later attempt may succeed without a person acting."""

    retryable = False


class SmtpUnavailable(SmtpError):
    """Connection refused, timeout, dropped connection or a temporary (4xx) answer: try again later."""

    retryable = True


class SmtpAuthError(SmtpUnavailable):
    """The server refused the login (or offers no way to log in). A person must fix the credentials."""

    retryable = False


class SmtpTlsError(SmtpUnavailable):
    """TLS could not be set up: certificate not trusted, or STARTTLS not offered. A person must act."""

    retryable = False


class SmtpRejected(SmtpError):
    """A permanent (5xx) refusal of this message or of its recipient(s).

    ``code`` is the SMTP reply code; ``recipients`` the refused addresses; ``accepted`` the
    recipients that did get the message (when only some were refused: do not send to them again).
    """

    def __init__(
        self, message: str, *, code: int, recipients: tuple[str, ...] = (), accepted: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.recipients = recipients
        self.accepted = accepted


class SmtpSender(Block):
    """
    An SMTP server the service sends acknowledgement e-mails through (TLS always, verified).

    Attributes:
        host: SMTP server host name, e.g. ``smtp.office365.com``.
        port: 587 for STARTTLS, 465 for implicit TLS.
        security: ``starttls``, ``tls`` (implicit), or ``none`` (only for 127.0.0.1/localhost).
        ca_file: CA bundle (path or PEM text) for a server with a private CA.
        username: Login name; empty for a relay that needs no login.
        password: Password for the login (AUTH PLAIN/LOGIN after TLS).
        oauth_token: XOAUTH2 access token (instead of a password).
        timeout_seconds: Seconds to wait for the server to connect and to answer each command.

    Example:
        Load a stored SMTP server and send one message:
        ```python
        from blocks.smtp import SmtpSender

        smtp = SmtpSender.load("BLOCK_NAME")
        with smtp.session() as session:
            session.send(message_bytes, "soporte@cliente.test", ["ana@cliente.test"])
        ```
    """

    _block_type_name = "SMTP Sender"
    _block_type_slug = "smtp-sender"
    _logo_url = "https://cdn.jsdelivr.net/npm/@tabler/icons@2.47.0/icons/mail-forward.svg"  # type: ignore[assignment]
    _description = (
        "SMTP server (TLS, verified certificate; password or XOAUTH2) used to send acknowledgement "
        "e-mails with the request number to the people who wrote to a support mailbox."
    )

    host: str = Field(..., description="SMTP server host name, e.g. smtp.office365.com.")
    port: int = Field(default=587, ge=1, le=65535, description="587 for STARTTLS, 465 for implicit TLS.")
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls (upgrade a plain connection), tls (implicit TLS) or none (only for 127.0.0.1/localhost).",
    )
    ca_file: str | None = Field(
        default=None,
        description="CA bundle (path or PEM text) for a server with a private CA; verification is never off.",
    )
    username: str | None = Field(default=None, description="Login name; empty for a relay that needs no login.")
    password: SecretStr | None = Field(default=None, description="Password for the login (sent only over TLS).")
    oauth_from_mailbox: bool = Field(
        default=False, description="XOAUTH2 with the IMAP mailbox's own Microsoft identity app (msal)."
    )
    _token_provider: Any = PrivateAttr(default=None)
    oauth_token: SecretStr | None = Field(
        default=None, description="XOAUTH2 access token, used instead of a password (Office 365, Gmail)."
    )
    helo_name: str | None = Field(default=None, description="Name sent in EHLO; empty: this machine's name.")
    timeout_seconds: float = Field(
        default=30, gt=0, le=600, description="Seconds to wait for the server to connect and to answer each command."
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("host is empty")
        return value

    @model_validator(mode="after")
    def _safe(self) -> SmtpSender:
        if self.security == "none" and self.host.lower() not in LOOPBACK_HOSTS:
            raise ValueError(
                f"security 'none' sends in clear text and is allowed only for {', '.join(LOOPBACK_HOSTS)}; "
                f"use 'starttls' (port 587) or 'tls' (port 465) for {self.host}"
            )
        if self.password is not None and self.oauth_token is not None:
            raise ValueError("give either a password or an oauth_token, not both")
        if (self.password is not None or self.oauth_token is not None) and not self.username:
            raise ValueError("a password or oauth_token needs a username")
        if self.username and self.password is None and self.oauth_token is None and not self.oauth_from_mailbox:
            raise ValueError("a username needs a password, an oauth_token or oauth_from_mailbox")
        return self

    @classmethod
    def from_config(cls, notify: NotifyConfig | SmtpConfig, *, key: str = "notify") -> SmtpSender:
        """The block for a ``notify:`` section (or its ``smtp:``), secrets resolved from env or Secret blocks (R20).

        ``key`` is where the section sits in the config file, for error messages
        (e.g. ``"mailboxes (soporte).notify"``).
        """
        from mailservice.notify_config import NotifyConfig
        from mailservice.secrets import secret_from

        smtp = notify.smtp if isinstance(notify, NotifyConfig) else notify
        if smtp is None:
            raise ValueError(f"{key}.smtp is missing: the SMTP server to send acknowledgements through")
        where = f"{key}.smtp"
        return cls(
            host=smtp.host,
            port=smtp.effective_port,
            security=smtp.effective_security,
            ca_file=str(smtp.ca_file) if smtp.ca_file else None,
            username=smtp.username,
            password=secret_from(smtp.password_env, smtp.password_block, key=f"{where}.password_env/password_block"),
            oauth_token=secret_from(
                smtp.oauth_token_env, smtp.oauth_token_block, key=f"{where}.oauth_token_env/oauth_token_block"
            ),
            helo_name=smtp.helo_name,
            timeout_seconds=smtp.timeout_seconds,
            oauth_from_mailbox=smtp.oauth_from_mailbox,
        )

    # ------------------------------------------------------------------ public API

    def send(self, message_bytes: bytes, from_address: str, to_addresses: Sequence[str]) -> None:
        """Send one message over its own connection (for several, use ``session()``)."""
        with self.session() as smtp:
            smtp.send(message_bytes, from_address, to_addresses)

    @contextlib.contextmanager
    def session(self) -> Iterator[SmtpSession]:
        """One connection (TLS, logged in) for a batch of messages; closed on exit."""
        client = self._connect()
        session = SmtpSession(self, client)
        try:
            yield session
        finally:
            session.close()

    # ------------------------------------------------------------------ connection

    @property
    def where(self) -> str:
        user = f", user {self.username}" if self.username else ""
        return f"SMTP server {self.host}:{self.port} ({self.security}{user})"

    def _ssl_context(self) -> ssl.SSLContext:
        if self.ca_file and self.ca_file.lstrip().startswith("-----BEGIN"):
            return ssl.create_default_context(cadata=self.ca_file)
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (FileNotFoundError, ssl.SSLError) as exc:
            raise SmtpTlsError(
                f"{self.where}: cannot read the CA file {self.ca_file} ({type(exc).__name__}). "
                "Check that ca_file is a PEM file with the server's CA certificate."
            ) from None

    def _connect(self) -> smtplib.SMTP:
        context = self._ssl_context() if self.security != "none" else None
        client: smtplib.SMTP | None = None
        try:
            if self.security == "tls":
                client = smtplib.SMTP_SSL(
                    self.host, self.port, local_hostname=self.helo_name, timeout=self.timeout_seconds, context=context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, local_hostname=self.helo_name, timeout=self.timeout_seconds)
            client.ehlo()
            if self.security == "starttls":
                if not client.has_extn("starttls"):
                    raise SmtpTlsError(
                        f"{self.where}: the server does not offer STARTTLS, and nothing is sent in clear text. "
                        "Check the port (587 for STARTTLS, 465 for security: tls) and the server's TLS settings."
                    )
                client.starttls(context=context)
                client.ehlo()
            self._login(client)
            return client
        except SmtpError:
            _close(client)
            raise
        except Exception as exc:
            _close(client)
            raise self._error(exc, "connecting and logging in") from None

    def use_token_provider(self, provider) -> SmtpSender:
        """XOAUTH2 with tokens from the mailbox's own Microsoft identity app (msal), renewed as needed:
        the same credentials as the IMAP mailbox (Office 365's scope covers IMAP and SMTP)."""
        self._token_provider = provider
        return self

    def _login(self, client: smtplib.SMTP) -> None:
        """The only place the password or token is unwrapped."""
        if not self.username:
            return
        if not client.has_extn("auth"):
            raise SmtpAuthError(
                f"{self.where}: the server offers no AUTH"
                + (" even after TLS" if self.security != "none" else "")
                + ". Check that this server accepts logins on this port (submission is usually 587)."
            )
        if self.oauth_from_mailbox and self._token_provider is None:
            raise SmtpAuthError(f"{self.where}: oauth_from_mailbox is set but the mailbox gave no token provider")
        if self.oauth_token is not None or self._token_provider is not None:
            token = self._token_provider() if self._token_provider else self.oauth_token.get_secret_value()
            user = self.username

            def xoauth2(challenge: bytes | None = None) -> str:
                # A failure comes back as a 334 challenge with a JSON error; the answer is an empty line.
                return "" if challenge is not None else f"user={user}\x01auth=Bearer {token}\x01\x01"

            client.auth("XOAUTH2", xoauth2)
        else:
            assert self.password is not None
            client.login(self.username, self.password.get_secret_value())

    # ------------------------------------------------------------------ errors

    def _scrub(self, text: str) -> str:
        """Server text with any trace of our secrets removed (a server may echo what it was sent)."""
        for secret in (self.password, self.oauth_token):
            if secret is None or not secret.get_secret_value():
                continue
            value = secret.get_secret_value()
            forms = {value, base64.b64encode(value.encode()).decode()}
            if self.username:
                forms.add(base64.b64encode(f"\0{self.username}\0{value}".encode()).decode())
                forms.add(base64.b64encode(f"user={self.username}\x01auth=Bearer {value}\x01\x01".encode()).decode())
            for form in forms:
                text = text.replace(form, "***")
        return text

    def _server_said(self, reply: Any) -> str:
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        text = " ".join(str(reply or "").split())
        return self._scrub(text)[:SERVER_TEXT_MAX]

    def _error(self, exc: BaseException, doing: str, recipients: Sequence[str] = ()) -> SmtpError:
        where = self.where
        if isinstance(exc, ssl.SSLCertVerificationError):
            return SmtpTlsError(
                f"{where}: TLS certificate not trusted while {doing} ({exc.verify_message or exc.reason}). "
                "Check that host is the right server; if it uses a private CA, set ca_file to that CA's "
                "certificate (verification is never switched off)."
            )
        if isinstance(exc, ssl.SSLError):
            return SmtpTlsError(
                f"{where}: TLS failed while {doing} ({exc.reason or type(exc).__name__}). Check that the port "
                "matches security (587: starttls, 465: tls)."
            )
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            said = self._server_said(exc.smtp_error)
            if 400 <= exc.smtp_code < 500:
                return SmtpUnavailable(f"{where}: login temporarily refused ({exc.smtp_code} {said}). Retried later.")
            how = "XOAUTH2 token" if self.oauth_token is not None else "password"
            return SmtpAuthError(
                f"{where}: the server refused the login ({exc.smtp_code} {said}). Check the username and the "
                f"{how} stored where the config points"
                + ("; the token may have expired" if self.oauth_token is not None else "")
                + " (the secret itself is never shown)."
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError | UnicodeEncodeError) or (
            isinstance(exc, smtplib.SMTPException)
            and not isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPServerDisconnected)
            and "authentication method" in str(exc)
        ):
            return SmtpAuthError(
                f"{where}: cannot log in ({type(exc).__name__}): the server offers no login method this client "
                "supports, or the login name/password has characters other than ASCII. Check the server's AUTH "
                "mechanisms (PLAIN, LOGIN, XOAUTH2)."
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            refused = exc.recipients  # {address: (code, message)}
            codes = [code for code, _ in refused.values()]
            first_code, first_msg = next(iter(refused.values()))
            said = self._server_said(first_msg)
            if all(400 <= c < 500 for c in codes):
                return SmtpUnavailable(
                    f"{where}: recipient(s) {', '.join(refused)} temporarily refused ({first_code} {said}). "
                    "Retried later."
                )
            return SmtpRejected(
                f"{where}: recipient(s) {', '.join(refused)} refused ({first_code} {said}). Check the address; "
                "sending again will not help.",
                code=next(c for c in codes if c >= 500),
                recipients=tuple(refused),
            )
        if isinstance(exc, smtplib.SMTPSenderRefused):
            said = self._server_said(exc.smtp_error)
            if 400 <= exc.smtp_code < 500:
                return SmtpUnavailable(f"{where}: sender {exc.sender} temporarily refused ({exc.smtp_code} {said}).")
            return SmtpRejected(
                f"{where}: sender {exc.sender} refused ({exc.smtp_code} {said}). Check that the login may send as "
                "the notify 'from' address (Office 365: 'Send As' permission).",
                code=exc.smtp_code,
                recipients=tuple(recipients),
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected) and "timed out" in str(exc):
            exc = TimeoutError()  # smtplib reports a read timeout as a closed connection
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return SmtpUnavailable(
                f"{where}: the server closed the connection while {doing}. Check that the server is up; "
                "it is retried later."
            )
        if isinstance(exc, smtplib.SMTPResponseException):  # SMTPDataError, SMTPConnectError, SMTPHeloError…
            said = self._server_said(exc.smtp_error)
            if exc.smtp_code >= 500:
                return SmtpRejected(
                    f"{where}: the server refused the message while {doing} ({exc.smtp_code} {said}).",
                    code=exc.smtp_code,
                    recipients=tuple(recipients),
                )
            return SmtpUnavailable(f"{where}: temporary failure while {doing} ({exc.smtp_code} {said}). Retried later.")
        if isinstance(exc, ConnectionRefusedError):
            return SmtpUnavailable(
                f"{where}: connection refused while {doing}. Check that the server is running and that host and "
                "port are right; it is retried later."
            )
        if isinstance(exc, TimeoutError | socket.timeout):
            return SmtpUnavailable(
                f"{where}: no answer within {self.timeout_seconds:g} s while {doing}. Check that the server is "
                "reachable from this machine (firewall, VPN) and that the port speaks SMTP; retried later."
            )
        if isinstance(exc, socket.gaierror):
            return SmtpUnavailable(f"{where}: host name not found while {doing}. Check the spelling of host.")
        if isinstance(exc, OSError):
            detail = exc.strerror or type(exc).__name__
            return SmtpUnavailable(f"{where}: connection failed while {doing} ({detail}). Retried later.")
        return SmtpError(f"{where}: unexpected {type(exc).__name__} while {doing}.")


class SmtpSession:
    """A logged-in connection from ``SmtpSender.session()``; ``send`` as many messages as needed.

    After a connection-level failure the session is dead: later sends raise ``SmtpUnavailable``
    at once instead of waiting for timeouts, and the batch's remaining messages wait for a later run.
    """

    def __init__(self, sender: SmtpSender, client: smtplib.SMTP) -> None:
        self._sender = sender
        self._client: smtplib.SMTP | None = client
        self._broken: SmtpError | None = None
        self.sent = 0

    def send(self, message_bytes: bytes, from_address: str, to_addresses: Sequence[str]) -> None:
        """Send ``message_bytes`` (RFC 5322, CRLF) from ``from_address`` (envelope) to ``to_addresses``."""
        if isinstance(to_addresses, str):
            to_addresses = [to_addresses]
        recipients = [a.strip() for a in to_addresses if a and a.strip()]
        if not recipients:
            raise ValueError("send needs at least one recipient")
        if not isinstance(message_bytes, bytes | bytearray):
            raise TypeError("message_bytes must be bytes (build it with tasks.acknowledge.build_reply)")
        if self._broken is not None or self._client is None:
            raise SmtpUnavailable(
                f"{self._sender.where}: not sent; the connection failed earlier in this batch. Retried later."
            )
        client = self._client
        options: list[str] = []
        if not all(a.isascii() for a in [from_address, *recipients]):
            if not client.has_extn("smtputf8"):
                raise SmtpRejected(
                    f"{self._sender.where}: an address has non-ASCII characters and the server does not offer "
                    "SMTPUTF8.",
                    code=553,
                    recipients=tuple(recipients),
                )
            options.append("SMTPUTF8")
        try:
            refused = client.sendmail(from_address, recipients, bytes(message_bytes), mail_options=options)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            # smtplib has reset the transaction (RSET) or, after a 421, closed the connection.
            error = self._sender._error(exc, "sending", recipients)
            if getattr(client, "sock", None) is None:
                self._broken = error
            raise error from None
        except Exception as exc:
            self._broken = self._sender._error(exc, "sending", recipients)
            raise self._broken from None
        if refused:
            accepted = tuple(a for a in recipients if a not in refused)
            code, message = next(iter(refused.values()))
            raise SmtpRejected(
                f"{self._sender.where}: delivered to {', '.join(accepted)} but refused for {', '.join(refused)} "
                f"({code} {self._sender._server_said(message)}). Do not resend to the accepted recipients.",
                code=code,
                recipients=tuple(refused),
                accepted=accepted,
            )
        self.sent += 1

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except Exception:
            _close(client)


def _close(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
