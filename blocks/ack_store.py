"""Where acknowledgements are recorded (R12): one row per (mailbox, message, template).

The row is the exactly-once guard for acknowledgements: a message that already has one is never
answered again, whatever reruns happen; a failed send keeps its built message bytes so the next run
resends exactly that message, once. Same database as the ledger (its own table), SQLite or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from blocks.ledger import metadata

SENT, FAILED, SKIPPED, SENDING = "sent", "failed", "skipped", "sending"
MAX_ATTEMPTS = 2  # the first try and one retry on the next run (issue 5 §2)

acknowledgements = Table(
    "mail_acknowledgements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mailbox", String(100), nullable=False),
    Column("message_key", String(64), nullable=False),
    Column("template", String(40), nullable=False),  # ack | unknown_sender
    Column("recipient", String(320)),
    Column("status", String(20), nullable=False),
    Column("why", String(200)),
    Column("request_number", Integer),
    Column("attempts", Integer, nullable=False, default=0),
    Column("raw", LargeBinary),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("mailbox", "message_key", "template", name="uq_mail_ack_message"),
)


@dataclass(frozen=True)
class PendingAck:
    id: int
    message_key: str
    recipient: str
    raw: bytes
    attempts: int


class AckStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        acknowledgements.create(engine, checkfirst=True)

    def known(self, mailbox: str, keys: Iterable[str]) -> set[tuple[str, str]]:
        """(message_key, template) pairs that already have a row: never decided twice."""
        keys = list(keys)
        found: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                rows = conn.execute(
                    select(acknowledgements.c.message_key, acknowledgements.c.template).where(
                        acknowledgements.c.mailbox == mailbox,
                        acknowledgements.c.message_key.in_(keys[start : start + 500]),
                    )
                )
                found.update((row.message_key, row.template) for row in rows)
        return found

    def count_sent(self, mailbox: str, recipient: str, template: str, since: datetime) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(
                    acknowledgements.c.mailbox == mailbox,
                    acknowledgements.c.recipient == recipient,
                    acknowledgements.c.template == template,
                    acknowledgements.c.status.in_((SENT, SENDING)),
                    acknowledgements.c.created_at >= since,
                )
            ).scalar_one()

    def claim(self, mailbox: str, key: str, template: str, **values) -> int | None:
        """Insert the row (status sending/skipped); None if another run already has one."""
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    acknowledgements.insert().values(
                        mailbox=mailbox, message_key=key, template=template, created_at=now, **values
                    )
                )
                return result.inserted_primary_key[0]
        except IntegrityError:
            return None

    def finish(self, row_id: int, status: str, error: str | None = None) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                update(acknowledgements)
                .where(acknowledgements.c.id == row_id)
                .values(
                    status=status,
                    error=error,
                    attempts=acknowledgements.c.attempts + 1,
                    sent_at=now if status == SENT else None,
                )
            )

    def to_retry(self, mailbox: str) -> list[PendingAck]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(acknowledgements).where(
                    acknowledgements.c.mailbox == mailbox,
                    acknowledgements.c.status == FAILED,
                    acknowledgements.c.attempts < MAX_ATTEMPTS,
                    acknowledgements.c.raw.is_not(None),
                )
            )
            return [PendingAck(r.id, r.message_key, r.recipient, r.raw, r.attempts) for r in rows]

    def rows(self, mailbox: str) -> list[dict]:
        with self.engine.connect() as conn:
            query = select(acknowledgements).where(acknowledgements.c.mailbox == mailbox)
            return [dict(r._mapping) for r in conn.execute(query.order_by(acknowledgements.c.id))]
