"""Building test mail and delivering it into a real Maildir the way an MTA does."""

from __future__ import annotations

import itertools
import os
import socket
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

_counter = itertools.count()


def message(
    sender: str = "ana.quinonez@cliente.test",
    to: str = "soporte@helppeople.test",
    subject: str = "No puedo calificar las encuestas",
    body: str = "Cordial saludo,\n\nAl calificar la encuesta aparece un error.\n\nQuedo atenta.",
    **headers: str,
) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    if subject is not None:
        msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="cliente.test")
    for name, value in headers.items():
        name = name.replace("_", "-")
        del msg[name]  # a given Message-ID/Date replaces the generated one
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def deliver(maildir: Path, raw: bytes, received_at: datetime | None = None) -> str:
    """Write ``raw`` into new/ with a Maildir name starting with the delivery time; returns the name."""
    when = received_at or datetime.now(UTC)
    seconds = int(when.timestamp())
    name = f"{seconds}.M{next(_counter)}P{os.getpid()}Q{next(_counter)}.{socket.gethostname()}"
    tmp = maildir / "tmp" / name
    tmp.write_bytes(raw)
    os.utime(tmp, (seconds, seconds))
    os.replace(tmp, maildir / "new" / name)
    return name
