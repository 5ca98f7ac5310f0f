"""Seed the demo mailbox: deliver ``demo/messages/*.eml`` into a local Maildir, once.

The Maildir block reads a message's received time from the number that starts its file name
(see ``blocks/maildir.py``), so every delivered name starts with ``int(now.timestamp())`` and
every file's mtime is ``now``: the demo's mail always arrives "today" (R3) whenever it is run.

Besides the committed messages, one message is generated here rather than committed: a known
sender's request with a ``respaldo-base-datos.zip`` attachment over the 20 MB limit (R11). Its
bytes are pseudo-random but fixed, and it is streamed to disk in chunks, never held whole.

Seeding is idempotent: a Maildir that already holds messages is left untouched, so a second
``make demo`` delivers nothing and the ingest finds nothing new.

    python -m mailservice.demo_seed demo/messages var/demo/mailbox
"""

from __future__ import annotations

import argparse
import base64
import mailbox
import os
import random
import socket
from collections.abc import Callable, Iterable
from datetime import datetime
from email import policy
from email.header import Header
from email.message import MIMEPart
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO

# The generated oversize message; demo/expected.json lists it under OVERSIZE_FILE_NAME.
OVERSIZE_FILE_NAME = "99-adjunto-grande.eml"
OVERSIZE_MESSAGE_ID = "<demo-adjunto-grande.0001@acme.test>"
OVERSIZE_SENDER = "carlos.rodriguez@acme.test"
OVERSIZE_SENDER_NAME = "Carlos Andrés Rodríguez"
OVERSIZE_SUBJECT = "Respaldo de la base de datos de nómina para restauración"
OVERSIZE_ATTACHMENT = "respaldo-base-datos.zip"
DEMO_MAILBOX = "soporte@helppeople.test"

_CRLF = b"\r\n"
_BOUNDARY = "----=_Part_4471_1187251290.1764690000000"
_RAW_CHUNK = 57 * 4096  # a multiple of 57 bytes, so every base64 chunk ends on a whole 76-char line
_SEED = 20251202


class MaildirDelivery:
    """Deliver raw messages into a Maildir's ``new/`` as if they had arrived at ``received_at``.

    ``mailbox.Maildir.add`` names files with the current time and cannot be told another one,
    so delivery follows the Maildir protocol by hand: write into ``tmp/``, then rename into
    ``new/`` under ``"{secs}.M{micros}P{pid}Q{n}.{host}"`` with ``secs = int(received_at)``.
    """

    def __init__(self, maildir: Path, received_at: datetime) -> None:
        self.root = Path(maildir)
        mailbox.Maildir(self.root, create=True)  # creates cur/, new/ and tmp/ as needed
        self._stamp = received_at.timestamp()
        self._secs = int(self._stamp)
        host = socket.gethostname() or "localhost"
        self._host = host.replace("/", r"\057").replace(":", r"\072")
        self._pid = os.getpid()
        self.count = 0
        self._serial = 0
        # Names already in the folder (a second batch at the same time must not overwrite the first).
        self._taken = {
            name.partition(":")[0] for sub in ("new", "cur") for name in os.listdir(self.root / sub)
        }

    def _next_name(self) -> str:
        while True:
            n = self._serial
            self._serial += 1
            # The micro-seconds field carries the delivery order, so names sort the way mail arrived.
            name = f"{self._secs}.M{n:06d}P{self._pid}Q{n}.{self._host}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def add_stream(self, write: Callable[[BinaryIO], None]) -> Path:
        """Deliver what ``write`` writes to the open file; the message is never held in memory."""
        name = self._next_name()
        tmp = self.root / "tmp" / name
        try:
            with tmp.open("xb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.utime(tmp, (self._stamp, self._stamp))
            final = self.root / "new" / name
            os.rename(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.count += 1
        return final

    def add(self, raw: bytes) -> Path:
        return self.add_stream(lambda handle: handle.write(raw))

    def add_all(self, messages: Iterable[bytes]) -> int:
        before = self.count
        for raw in messages:
            self.add(raw)
        return self.count - before


def maildir_has_messages(maildir: Path) -> bool:
    """True when ``new/`` or ``cur/`` of ``maildir`` holds any message (dot-files do not count)."""
    for sub in ("new", "cur"):
        folder = Path(maildir) / sub
        if folder.is_dir() and any(not name.startswith(".") for name in os.listdir(folder)):
            return True
    return False


def write_oversize_message(handle: BinaryIO, *, oversize_mb: float, now: datetime) -> None:
    """A known sender's request whose one attachment is ``oversize_mb`` MiB of fixed bytes (R11)."""
    name = Header(OVERSIZE_SENDER_NAME, "utf-8").encode(linesep="\r\n")
    head = [
        f"From: {name}\r\n <{OVERSIZE_SENDER}>",
        f"To: {DEMO_MAILBOX}",
        "Subject: " + Header(OVERSIZE_SUBJECT, "utf-8", header_name="Subject").encode(linesep="\r\n"),
        f"Date: {format_datetime(now.astimezone())}",
        f"Message-ID: {OVERSIZE_MESSAGE_ID}",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed;\r\n boundary="{_BOUNDARY}"',
        "",
        "",
    ]
    handle.write("\r\n".join(head).encode("ascii"))
    handle.write(b"This is a multi-part message in MIME format." + _CRLF)

    text = MIMEPart(policy=policy.SMTP)
    text.set_content(
        "Cordial saludo,\n\n"
        "Adjunto el respaldo de la base de datos de nómina del cierre de noviembre, para restaurarlo "
        "en el ambiente de pruebas antes de la liquidación de primas.\n\n"
        "Quedo atento.\n\n"
        "Carlos Andrés Rodríguez\nCoordinador de Compras | Acme S.A.\n",
        cte="quoted-printable",
    )
    handle.write(_CRLF + f"--{_BOUNDARY}".encode() + _CRLF)
    handle.write(text.as_bytes(policy=policy.SMTP))

    handle.write(_CRLF + f"--{_BOUNDARY}".encode() + _CRLF)
    handle.write(
        _CRLF.join(
            [
                f'Content-Type: application/zip; name="{OVERSIZE_ATTACHMENT}"'.encode(),
                f'Content-Disposition: attachment; filename="{OVERSIZE_ATTACHMENT}"'.encode(),
                b"Content-Transfer-Encoding: base64",
                b"",
                b"",
            ]
        )
    )
    remaining = int(oversize_mb * 1024 * 1024)
    rng = random.Random(_SEED)
    while remaining > 0:
        size = min(_RAW_CHUNK, remaining)
        handle.write(base64.encodebytes(rng.randbytes(size)).replace(b"\n", _CRLF))
        remaining -= size
    handle.write(_CRLF + f"--{_BOUNDARY}--".encode() + _CRLF)


def seed_maildir(
    messages_dir: Path, maildir: Path, *, oversize_mb: float = 21, now: datetime | None = None
) -> int:
    """Deliver every ``*.eml`` of ``messages_dir`` plus the generated oversize message into ``maildir``.

    Returns how many messages were delivered: 0, touching nothing, when ``maildir`` already holds
    messages. The files' names start with ``int(now.timestamp())`` and their mtime is ``now``.
    """
    messages_dir = Path(messages_dir)
    maildir = Path(maildir)
    sources = sorted(messages_dir.glob("*.eml"))
    if not sources:
        raise FileNotFoundError(f"no .eml messages in {messages_dir}: pass the folder holding the demo messages")
    if maildir_has_messages(maildir):
        return 0
    moment = now if now is not None else datetime.now().astimezone()
    delivery = MaildirDelivery(maildir, moment)
    for path in sources:
        delivery.add(path.read_bytes())
    delivery.add_stream(lambda handle: write_oversize_message(handle, oversize_mb=oversize_mb, now=moment))
    return delivery.count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mailservice.demo_seed",
        description="Deliver the demo messages (and a generated oversize one) into a Maildir, once.",
    )
    parser.add_argument("messages_dir", type=Path, help="folder of .eml files, e.g. demo/messages")
    parser.add_argument("maildir", type=Path, help="Maildir to create and fill, e.g. var/demo/mailbox")
    parser.add_argument("--oversize-mb", type=float, default=21,
                        help="size of the generated attachment in MiB (default 21, over the 20 MB limit)")
    args = parser.parse_args(argv)
    delivered = seed_maildir(args.messages_dir, args.maildir, oversize_mb=args.oversize_mb)
    if delivered:
        print(f"delivered {delivered} messages to {args.maildir}")
    else:
        print(f"{args.maildir} already holds messages; delivered 0 (remove it to seed again)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
