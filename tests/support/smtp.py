"""A real SMTP server (aiosmtpd) on loopback for tests: STARTTLS with a test CA, AUTH, a mail sink.

Follows the measured notes (``../shared/notes/test-servers.md`` §3): ``hostname="127.0.0.1"``
(the default is ``::1``), a port chosen here (``port=0`` does not work), an authenticator that
answers failures with ``AuthResult(handled=False)`` (else the client hangs), AUTH only after TLS.

```python
with smtp_server(tmp_path, users={"soporte@cliente.test": "s3cret"}) as server:
    ...  # connect to server.port, trust server.cafile
    server.messages()        # what arrived, parsed (policy.default)
    server.stop()            # "SMTP is down": connections are refused from now on
    server.start()           # back up, same port, same sink
```

XOAUTH2 is served too (``tokens={"user": "token"}``): a bad token gets Gmail's answer, a 334
challenge with a JSON error, then 535 once the client sends the empty line. Recipients in
``reject_recipients`` get ``550``, those in ``tempfail_recipients`` get ``450``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from tests.support.dovecot import free_port, make_certificate

START_ATTEMPTS = 3


@dataclass
class _Sink:
    """The aiosmtpd handler: keeps envelopes, applies injected refusals, serves XOAUTH2."""

    tokens: dict[str, str]
    reject_recipients: set[str]
    tempfail_recipients: set[str]
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, user) that succeeded
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.lower() in self.tempfail_recipients:
            return f"450 4.2.1 <{address}>: Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.envelopes.append(envelope)
        return "250 2.0.0 OK queued"

    async def auth_XOAUTH2(self, server, args):
        """SASL XOAUTH2 as Gmail and Office 365 speak it (initial response required)."""
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        try:
            fields = base64.b64decode(args[1], validate=True).decode("utf-8").split("\x01")
        except (ValueError, UnicodeDecodeError):
            return AuthResult(success=False, handled=False)
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        user, auth = values.get("user", ""), values.get("auth", "")
        if user in self.tokens and auth == f"Bearer {self.tokens[user]}":
            self.logins.append(("XOAUTH2", user))
            return AuthResult(success=True, auth_data=user)
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.example/"})
        await server.challenge_auth(error)  # the client answers with an empty line
        return AuthResult(success=False, handled=False)


@dataclass
class SmtpTestServer:
    host: str
    port: int
    cafile: Path  # the test CA (the server's self-signed certificate): give it as ca_file to trust the server
    keyfile: Path
    security: Literal["starttls", "tls", "none"]
    users: dict[str, str]
    handler: _Sink
    auth_required: bool
    _controller: Controller | None = None

    @property
    def envelopes(self) -> list[Envelope]:
        return self.handler.envelopes

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, parsed with ``policy.default``."""
        parse = BytesParser(policy=policy.default).parsebytes
        return [parse(envelope.content) for envelope in self.envelopes]  # type: ignore[misc]

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cafile, self.keyfile)
        options: dict[str, Any] = {
            "authenticator": self._authenticate,
            "auth_required": self.auth_required,
            # aiosmtpd only knows about STARTTLS: with implicit TLS the whole connection is already TLS.
            "auth_require_tls": self.security == "starttls",
        }
        if self.security == "starttls":
            options |= {"tls_context": context, "require_starttls": True}
        elif self.security == "tls":
            options["ssl_context"] = context
        controller = Controller(self.handler, hostname=self.host, port=self.port, ready_timeout=5, **options)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening (idempotent): from now on a connection is refused, as when SMTP is down."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if user in self.users and self.users[user] == password:
                self.handler.logins.append((mechanism, user))
                return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd answers 535 itself (handled=True would leave the client hanging).
        return AuthResult(success=False, handled=False)


@contextlib.contextmanager
def smtp_server(
    directory: Path,
    *,
    users: dict[str, str] | None = None,
    tokens: dict[str, str] | None = None,
    security: Literal["starttls", "tls", "none"] = "starttls",
    auth_required: bool = True,
    reject_recipients: Iterable[str] = (),
    tempfail_recipients: Iterable[str] = (),
    cert: tuple[Path, Path] | None = None,
) -> Iterator[SmtpTestServer]:
    """An aiosmtpd server on 127.0.0.1 with its own test CA in ``directory``; stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    cafile, keyfile = cert or make_certificate(directory, "smtp-test-ca")
    handler = _Sink(
        tokens=dict(tokens or {}),
        reject_recipients={a.lower() for a in reject_recipients},
        tempfail_recipients={a.lower() for a in tempfail_recipients},
    )
    last_error: Exception | None = None
    for _ in range(START_ATTEMPTS):  # the free port may be taken between choosing and binding it
        server = SmtpTestServer(
            host="127.0.0.1",
            port=free_port(),
            cafile=cafile,
            keyfile=keyfile,
            security=security,
            users=dict(users or {}),
            handler=handler,
            auth_required=auth_required,
        )
        try:
            server.start()
            break
        except (OSError, RuntimeError, TimeoutError) as exc:
            last_error = exc
    else:
        raise RuntimeError(f"aiosmtpd did not start on 127.0.0.1 after {START_ATTEMPTS} attempts: {last_error}")
    try:
        yield server
    finally:
        server.stop()
