"""A local Microsoft-identity-like server: what msal needs, plus the introspection dovecot asks.

Two listeners share one state, both on loopback and started before the test uses them:

* HTTPS (msal accepts only ``https://`` authorities): the tenant's OpenID configuration at
  ``/{tenant}/v2.0/.well-known/openid-configuration`` and the token endpoint
  ``/{tenant}/oauth2/v2.0/token`` for the ``client_credentials`` and ``refresh_token`` grants,
  with Microsoft-shaped error JSON (``invalid_client``, ``invalid_grant``, ...);
* HTTP: ``POST /introspect`` (form ``token=...``) answering dovecot's ``oauth2`` passdb with
  ``{"active": true, "username": ...}`` or ``{"active": false}``.

An app (client id + secret) is registered for one mailbox user, like an Exchange application
access policy scoping an app to a mailbox. Access tokens stay active for introspection until
revoked; a test can revoke one token, a refresh token, or disable a whole app.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


@dataclass
class App:
    client_id: str
    secret: str | None  # None: a public client (delegated refresh token only)
    user: str
    enabled: bool = True


@dataclass
class Token:
    user: str
    client_id: str
    active: bool = True


@dataclass
class IdentityState:
    tenant: str = "contoso-tenant"
    expires_in: int = 3600
    apps: dict[str, App] = field(default_factory=dict)
    access: dict[str, Token] = field(default_factory=dict)
    refresh: dict[str, Token] = field(default_factory=dict)
    token_requests: list[dict] = field(default_factory=list)  # grant, client_id (never secrets)
    introspections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "LocalIdentity/1"

    @property
    def state(self) -> IdentityState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length).decode() if length else ""
        return {k: v[0] for k, v in parse_qs(data, keep_blank_values=True).items()}

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        tenant = self.state.tenant
        if path == f"/{tenant}/v2.0/.well-known/openid-configuration":
            base = self.server.base_url  # type: ignore[attr-defined]
            self._send(200, {
                "issuer": f"{base}/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            })
            return
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            self._send(400, {"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."})
            return
        self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        if path == "/introspect":
            self._introspect(form)
        elif path == f"/{self.state.tenant}/oauth2/v2.0/token":
            self._token(form)
        else:
            self._send(404, {"error": "not_found"})

    def _introspect(self, form: dict[str, str]) -> None:
        state = self.state
        with state.lock:
            state.introspections += 1
            token = state.access.get(form.get("token", ""))
            app = state.apps.get(token.client_id) if token else None
            if token is None or not token.active or app is None or not app.enabled:
                self._send(200, {"active": False})
                return
            self._send(200, {"active": True, "username": token.user, "client_id": token.client_id})

    def _issue(self, user: str, client_id: str, with_refresh: bool) -> dict:
        state = self.state
        access = "at-" + secrets.token_urlsafe(24)
        state.access[access] = Token(user, client_id)
        reply = {"token_type": "Bearer", "expires_in": state.expires_in, "ext_expires_in": state.expires_in,
                 "access_token": access}
        if with_refresh:
            refresh = "rt-" + secrets.token_urlsafe(24)
            state.refresh[refresh] = Token(user, client_id)
            reply["refresh_token"] = refresh
        return reply

    def _token(self, form: dict[str, str]) -> None:
        state = self.state
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        with state.lock:
            state.token_requests.append({"grant": grant, "client_id": client_id, "scope": form.get("scope", "")})
            app = state.apps.get(client_id)
            if app is None or not app.enabled:
                self._send(400, {"error": "unauthorized_client", "error_description":
                                 f"AADSTS700016: Application with identifier '{client_id}' was not found "
                                 "or is disabled in the directory."})
                return
            if app.secret is not None and form.get("client_secret") != app.secret:
                self._send(401, {"error": "invalid_client", "error_description":
                                 "AADSTS7000215: Invalid client secret provided."})
                return
            if grant == "client_credentials":
                self._send(200, self._issue(app.user, client_id, with_refresh=False))
                return
            if grant == "refresh_token":
                old = state.refresh.get(form.get("refresh_token", ""))
                if old is None or not old.active or old.client_id != client_id:
                    self._send(400, {"error": "invalid_grant", "error_description":
                                     "AADSTS70008: The refresh token has expired or been revoked."})
                    return
                old.active = False  # rotation: a refresh token is used once
                self._send(200, self._issue(old.user, client_id, with_refresh=True))
                return
            self._send(400, {"error": "unsupported_grant_type", "error_description": grant})


class LocalIdentity:
    """The running servers; ``authority_host`` is what a mailbox config's ``oauth.authority_host`` gets."""

    def __init__(self, certfile: Path, keyfile: Path) -> None:
        self.state = IdentityState()
        self.cafile = certfile
        self._https = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certfile), str(keyfile))
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.authority_host = f"https://127.0.0.1:{self._https.server_address[1]}"
        self.introspection_url = f"http://127.0.0.1:{self._http.server_address[1]}/introspect"
        for server in (self._https, self._http):
            server.daemon_threads = True
            server.state = self.state  # type: ignore[attr-defined]
            server.base_url = self.authority_host  # type: ignore[attr-defined]
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in (self._https, self._http)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def tenant(self) -> str:
        return self.state.tenant

    def register_app(self, user: str, *, client_id: str | None = None, secret: str | None = "app-secret") -> App:
        """An app allowed to open ``user``'s mailbox; ``secret=None`` makes a public client."""
        app = App(client_id or f"app-{secrets.token_hex(6)}", secret, user)
        with self.state.lock:
            self.state.apps[app.client_id] = app
        return app

    def grant_refresh_token(self, app: App) -> str:
        """A delegated refresh token for the app's user, as if the user had consented once."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.refresh[token] = Token(app.user, app.client_id)
        return token

    def revoke_access_tokens(self, client_id: str) -> int:
        """Make every access token of the app inactive for introspection; returns how many."""
        with self.state.lock:
            hits = [t for t in self.state.access.values() if t.client_id == client_id and t.active]
            for token in hits:
                token.active = False
        return len(hits)

    def revoke_refresh_tokens(self, client_id: str) -> None:
        with self.state.lock:
            for token in self.state.refresh.values():
                if token.client_id == client_id:
                    token.active = False

    def disable_app(self, client_id: str) -> None:
        """Consent withdrawn / app deleted: no new tokens, and issued ones stop working."""
        with self.state.lock:
            self.state.apps[client_id].enabled = False

    def token_requests(self, client_id: str) -> list[dict]:
        with self.state.lock:
            return [r for r in self.state.token_requests if r["client_id"] == client_id]

    def close(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()
