"""A real Dovecot IMAPS server on loopback for tests and benchmarks (Debian's ``dovecot-imapd``).

Follows the measured recipe in ``../shared/notes/test-servers.md``: one temp dir per instance
(``mkdtemp`` + 0711, because uid ``dovecot`` must enter it and pytest's ``tmp_path`` is 0700 as
root), a self-signed certificate that is its own CA, a static passdb (``password=secret``: any
user name logs in and gets a fresh, empty Maildir, so tests are isolated without a restart), an
optional ``oauth2`` passdb for XOAUTH2/OAUTHBEARER against a local introspection endpoint, the
auth penalty and failure delay switched off, readiness = a greeting received over *verified* TLS,
a retry with a new port when the chosen one is taken, and a stop with ``killpg``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
INSTALL_HINT = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd"
)
PASSWORD = "secret"  # the static passdb's password: every user name logs in with it
START_TIMEOUT_SECONDS = 10


class DovecotMissing(RuntimeError):
    """Dovecot is not installed; the message carries the apt command."""


def dovecot_installed() -> bool:
    return Path(DOVECOT).is_file() or shutil.which("dovecot") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_certificate(directory: Path, name: str = "cert") -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for 127.0.0.1 and localhost; returns (cert, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True,
    )
    return cert, key


def _config(root: Path, port: int, cert: Path, key: Path, introspection_url: str | None, uid: int, gid: int,
            internal_user: str, login_user: str, rootless: bool, keywords: bool) -> str:
    acl = ""
    if not keywords:
        # The owner has every right but "w" (write flags other than \Seen and \Deleted): the server then
        # leaves \* out of PERMANENTFLAGS, like a shared mailbox without keyword rights.
        (root / "global-acl").write_text("* owner lrstipekxa\n", encoding="utf-8")
        acl = f"mail_plugins = acl\nplugin {{\n  acl = vfile:{root}/global-acl\n}}\n"
    mechanisms = "plain login xoauth2 oauthbearer" if introspection_url else "plain login"
    chroot = "  chroot =\n" if rootless else ""
    oauth = ""
    if introspection_url:
        (root / "oauth2.conf.ext").write_text(
            "introspection_mode = post\n"
            f"introspection_url = {introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n",
            encoding="utf-8",
        )
        oauth = f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}"""
    return f"""
instance_name = test{port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
default_internal_user = {internal_user}
default_internal_group = {internal_user}
default_login_user = {login_user}
first_valid_uid = 0
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = {mechanisms}
auth_cache_size = 0
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
mail_fsync = never
{acl}namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = static
  mechanisms = plain login
  args = password={PASSWORD}
}}{oauth}
userdb {{
  driver = static
  args = home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
{chroot}}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{chroot}}}
"""


@dataclass
class Dovecot:
    """A running (or stopped) Dovecot instance; ``restart()`` keeps its port, mail and certificate."""

    root: Path
    port: int
    cafile: Path
    conf: Path
    proc: subprocess.Popen | None = None
    starts: int = field(default=0)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))

    def client(self, user: str, password: str = PASSWORD, timeout: float = 10):
        """A logged-in imapclient connection for seeding and inspecting a user's mailbox."""
        import imapclient

        client = imapclient.IMAPClient(self.host, port=self.port, ssl=True, ssl_context=self.ssl_context(),
                                       timeout=timeout)
        client.normalise_times = False
        client.login(user, password)
        return client

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [DOVECOT if Path(DOVECOT).is_file() else "dovecot", "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        self.starts += 1

    def _wait_ready(self) -> str | None:
        """None once a greeting arrived over verified TLS; else why dovecot did not start."""
        context = self.ssl_context()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                return err + self.log()[-2000:]
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as raw, \
                        context.wrap_socket(raw, server_hostname=self.host) as tls:
                    tls.settimeout(2)
                    if tls.recv(64).startswith(b"* OK"):
                        return None
            except OSError:
                time.sleep(0.02)
        return f"no TLS greeting within {START_TIMEOUT_SECONDS} s\n" + self.log()[-2000:]

    def restart(self) -> None:
        """Start again on the same port after ``stop()`` (a test that simulates an outage)."""
        if self.running():
            return
        deadline = time.monotonic() + 5
        while True:  # the killed children may hold the port for a few milliseconds
            self._spawn()
            problem = self._wait_ready()
            if problem is None:
                return
            self.stop()
            if "in use" not in problem or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not restart on port {self.port}: {problem}")
            time.sleep(0.05)

    def stop(self, fast: bool = True) -> None:
        """``fast``: SIGKILL to the whole process group (~3 ms); else SIGTERM to the master (~1 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                if fast:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.terminate()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()
        # The master's children (imap, auth, login) were in its process group; make sure none is left
        # listening so a restart on the same port works.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._wait_port_closed()

    def _wait_port_closed(self, seconds: float = 5) -> None:
        """Until connections are refused: a dying imap-login may still accept (and reset) for a moment."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
            except ConnectionRefusedError:
                return
            except OSError:
                pass
            time.sleep(0.02)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def new_root(prefix: str = "dovecot-") -> Path:
    """A temp dir uid ``dovecot`` can enter (``tmp_path`` cannot be used as root: it is 0700)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o711)
    parent = root.parent
    if os.geteuid() == 0 and not (parent.stat().st_mode & 0o001):
        raise RuntimeError(f"{parent} is not searchable by other users; uid dovecot cannot reach {root}")
    return root


def start_dovecot(
    root: Path | None = None, *, introspection_url: str | None = None, keywords: bool = True, attempts: int = 5
) -> Dovecot:
    """Start Dovecot IMAPS on a free loopback port; raises DovecotMissing with the apt command if absent.

    ``introspection_url`` enables XOAUTH2/OAUTHBEARER through dovecot's ``oauth2`` passdb (POST mode).
    ``keywords=False`` denies custom keywords (no ``\\*`` in PERMANENTFLAGS) through a global ACL.
    """
    if not dovecot_installed():
        raise DovecotMissing(f"dovecot is not installed ({DOVECOT} is missing); install it with: {INSTALL_HINT}")
    root = root or new_root()
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir(exist_ok=True)
    cert, key = make_certificate(root)
    if os.geteuid() == 0:
        account = pwd.getpwnam("dovecot")
        uid, gid, internal, login, rootless = account.pw_uid, account.pw_gid, "dovecot", "dovenull", False
        os.chown(root / "mail", uid, gid)
    else:
        me = pwd.getpwuid(os.geteuid())
        uid, gid, internal, login, rootless = me.pw_uid, me.pw_gid, me.pw_name, me.pw_name, True
    conf = root / "dovecot.conf"
    problem = ""
    for _ in range(attempts):
        port = free_port()
        text = _config(root, port, cert, key, introspection_url, uid, gid, internal, login, rootless, keywords)
        conf.write_text(text, encoding="utf-8")
        server = Dovecot(root=root, port=port, cafile=cert, conf=conf)
        server._spawn()
        problem = server._wait_ready()
        if problem is None:
            return server
        server.stop()
        if "in use" not in problem:
            break
    raise RuntimeError(f"dovecot did not start: {problem}")
