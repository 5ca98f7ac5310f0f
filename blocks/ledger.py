"""The ledger: the source of truth for what happened to every message (R15, R18, R19).

One row per (mailbox, message key) with its outcome, one row per run with its totals, and the raw
bytes of every message kept for replay. SQLAlchemy Core, so the same code runs on the SQLite
default and on PostgreSQL. Exactly-once hinges on the order of writes here: a message is recorded
``pending`` before the helpdesk is called, ``created`` when the helpdesk confirms, and only then
marked in the mailbox. A crash anywhere leaves a state from which a rerun does the right thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

metadata = MetaData()

# Outcomes. "pending" is the write-ahead state: the helpdesk may or may not have the request.
PENDING, CREATED, REJECTED, FAILED, QUARANTINED = "pending", "created", "rejected", "failed", "quarantined"
FINAL_OUTCOMES = (CREATED, REJECTED, QUARANTINED)

messages = Table(
    "mail_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mailbox", String(100), nullable=False),
    Column("message_key", String(64), nullable=False),
    Column("source_id", String(512), nullable=False),
    Column("message_id", String(998)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False, index=True),
    Column("sender", String(320)),
    Column("subject", String(1000)),
    Column("outcome", String(20), nullable=False),
    Column("reason", String(100)),
    Column("detail", Text),
    Column("signals", JSON),
    Column("request_id", String(100)),
    Column("request_number", Integer),
    Column("size_bytes", Integer, nullable=False, default=0),
    Column("attachments", Integer, nullable=False, default=0),
    Column("attachments_omitted", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("marked_processed", Boolean, nullable=False, default=False),
    Column("first_run_id", String(64)),
    Column("last_run_id", String(64)),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("request_created_at", DateTime(timezone=True)),
    UniqueConstraint("mailbox", "message_key", name="uq_mail_messages_mailbox_key"),
)

runs = Table(
    "mail_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("mailbox", String(100), nullable=False, index=True),
    Column("day", Date, nullable=False),
    Column("mode", String(20), nullable=False),  # "scheduled" (today, new mail) or "rerun" (a whole day)
    Column("status", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("seen", Integer, nullable=False, default=0),
    Column("created", Integer, nullable=False, default=0),
    Column("already_created", Integer, nullable=False, default=0),
    Column("rejected", JSON),
    Column("failed", Integer, nullable=False, default=0),
    Column("quarantined", Integer, nullable=False, default=0),
    Column("summary", JSON),
    Column("error", Text),
)

raw_messages = Table(
    "mail_raw_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mailbox", String(100), nullable=False),
    Column("message_key", String(64), nullable=False),
    Column("reason", String(100), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("kept_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("mailbox", "message_key", name="uq_mail_raw_mailbox_key"),
)

# Every replay of a kept raw message (``mailservice quarantine replay``): the raw stays kept, and this
# says it was replayed, when, and what came of it. A separate table, so existing ledgers need no migration.
replays = Table(
    "mail_replays",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("raw_id", Integer, nullable=False, index=True),
    Column("mailbox", String(100), nullable=False),
    Column("message_key", String(64), nullable=False),
    Column("replayed_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("outcome", String(20), nullable=False),  # created | already_created | rejected | failed | quarantined
    Column("reason", String(100)),
    Column("request_number", Integer),
)

# One row per reconciliation of a mailbox's day (flow reconcile-day): what the mailbox holds against
# what the ledger knows and what the helpdesk still has. Part of the audit data (R18).
reconciliations = Table(
    "mail_reconciliations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("mailbox", String(100), nullable=False),
    Column("day", Date, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),  # ok | discrepancies | failed
    Column("in_mailbox", Integer, nullable=False, default=0),
    Column("in_ledger", Integer, nullable=False, default=0),
    Column("missing", Integer, nullable=False, default=0),
    Column("unfinished", Integer, nullable=False, default=0),
    Column("processed", Integer, nullable=False, default=0),
    Column("gone", Integer, nullable=False, default=0),
    Column("requests_checked", Integer, nullable=False, default=0),
    Column("unknown_requests", Integer, nullable=False, default=0),
    Column("details", JSON),
    Column("error", Text),
)


def _now() -> datetime:
    return datetime.now(UTC)


def safe_url(url: str) -> str:
    """The URL with any password masked, for logs and errors (R20)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


@dataclass(frozen=True)
class LedgerEntry:
    message_key: str
    outcome: str
    reason: str | None
    request_id: str | None
    request_number: int | None
    marked_processed: bool


@dataclass(frozen=True)
class MessageFacts:
    """What the ledger stores about a message, whatever its outcome."""

    mailbox: str
    message_key: str
    source_id: str
    received_at: datetime
    day: date
    message_id: str | None = None
    sender: str | None = None
    subject: str | None = None
    size_bytes: int = 0
    attachments: int = 0
    attachments_omitted: int = 0
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """One outcome to record for a message."""

    facts: MessageFacts
    outcome: str
    reason: str | None = None
    detail: str | None = None
    request_id: str | None = None
    request_number: int | None = None
    count_attempt: bool = False


class Ledger:
    """Access to the ledger database. Create one per process; it holds a connection pool."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)
        if create:
            metadata.create_all(self.engine)

    def __repr__(self) -> str:
        return f"Ledger({safe_url(self.url)!r})"

    def dispose(self) -> None:
        self.engine.dispose()

    # -- reads -----------------------------------------------------------------------------
    def entries(self, mailbox: str, keys: Iterable[str]) -> dict[str, LedgerEntry]:
        keys = list(keys)
        found: dict[str, LedgerEntry] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                batch = keys[start : start + 500]
                rows = conn.execute(
                    select(
                        messages.c.message_key,
                        messages.c.outcome,
                        messages.c.reason,
                        messages.c.request_id,
                        messages.c.request_number,
                        messages.c.marked_processed,
                    ).where(messages.c.mailbox == mailbox, messages.c.message_key.in_(batch))
                )
                for row in rows:
                    found[row.message_key] = LedgerEntry(*row)
        return found

    def message_rows(self, mailbox: str | None = None, day: date | None = None) -> list[dict]:
        query = select(messages).order_by(messages.c.received_at, messages.c.id)
        if mailbox:
            query = query.where(messages.c.mailbox == mailbox)
        if day:
            query = query.where(messages.c.day == day)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def run_rows(self, mailbox: str | None = None) -> list[dict]:
        query = select(runs).order_by(runs.c.started_at)
        if mailbox:
            query = query.where(runs.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def run(self, run_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
        return dict(row._mapping) if row else None

    def kept_raw(self, mailbox: str, key: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(raw_messages.c.raw).where(
                    raw_messages.c.mailbox == mailbox, raw_messages.c.message_key == key
                )
            ).scalar()

    def message_rows_between(
        self, mailbox: str | None = None, since: date | None = None, until: date | None = None
    ) -> list[dict]:
        """Message rows whose (local) day is in [since, until], both inclusive, for the audit."""
        query = select(messages).order_by(messages.c.mailbox, messages.c.day, messages.c.received_at, messages.c.id)
        if mailbox:
            query = query.where(messages.c.mailbox == mailbox)
        if since:
            query = query.where(messages.c.day >= since)
        if until:
            query = query.where(messages.c.day <= until)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def message_rows_for_keys(self, mailbox: str, keys: Iterable[str]) -> list[dict]:
        """Full message rows for these message keys (any day)."""
        keys = list(keys)
        found: list[dict] = []
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                query = select(messages).where(
                    messages.c.mailbox == mailbox, messages.c.message_key.in_(keys[start : start + 500])
                )
                found += [dict(row._mapping) for row in conn.execute(query)]
        return found

    def kept_raw_index(self, mailbox: str | None = None, ids: Iterable[int] | None = None) -> list[dict]:
        """Kept raw messages without their bytes: id, mailbox, message_key, reason, kept_at, size_bytes."""
        query = select(
            raw_messages.c.id,
            raw_messages.c.mailbox,
            raw_messages.c.message_key,
            raw_messages.c.reason,
            raw_messages.c.kept_at,
            func.length(raw_messages.c.raw).label("size_bytes"),
        ).order_by(raw_messages.c.id)
        if mailbox:
            query = query.where(raw_messages.c.mailbox == mailbox)
        if ids is not None:
            query = query.where(raw_messages.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def kept_raw_by_id(self, raw_id: int) -> dict | None:
        """One kept raw message with its bytes (``raw``), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(raw_messages).where(raw_messages.c.id == raw_id)).first()
        return dict(row._mapping) if row else None

    def replay_rows(self, mailbox: str | None = None) -> list[dict]:
        query = select(replays).order_by(replays.c.id)
        if mailbox:
            query = query.where(replays.c.mailbox == mailbox)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def reconciliation_rows(
        self, mailbox: str | None = None, since: date | None = None, until: date | None = None
    ) -> list[dict]:
        query = select(reconciliations).order_by(reconciliations.c.finished_at, reconciliations.c.id)
        if mailbox:
            query = query.where(reconciliations.c.mailbox == mailbox)
        if since:
            query = query.where(reconciliations.c.day >= since)
        if until:
            query = query.where(reconciliations.c.day <= until)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # -- writes ----------------------------------------------------------------------------
    def record_replay(
        self,
        raw_id: int,
        mailbox: str,
        key: str,
        *,
        run_id: str,
        outcome: str,
        reason: str | None = None,
        request_number: int | None = None,
    ) -> None:
        """Flag a kept raw message as replayed, with what came of it. The raw itself stays kept (R19)."""
        with self.engine.begin() as conn:
            conn.execute(
                replays.insert().values(
                    raw_id=raw_id, mailbox=mailbox, message_key=key, replayed_at=_now(), run_id=run_id,
                    outcome=outcome, reason=reason, request_number=request_number,
                )
            )

    def record_reconciliation(self, row: dict) -> None:
        """Store one reconciliation's result (columns of ``mail_reconciliations``)."""
        known = set(reconciliations.c.keys()) - {"id"}
        with self.engine.begin() as conn:
            conn.execute(reconciliations.insert().values(**{k: v for k, v in row.items() if k in known}))

    def record(self, facts: MessageFacts, outcome: str, *, run_id: str, **details) -> None:
        """Upsert one message's outcome (see ``record_many``)."""
        self.record_many([Outcome(facts, outcome, **details)], run_id=run_id)

    def record_many(self, outcomes: Sequence[Outcome], *, run_id: str) -> None:
        """Upsert outcomes in one transaction. A ``created`` row is never downgraded to anything else.

        One transaction per chunk rather than per message: the write-ahead guarantee does not need
        more, because a create repeated after a crash returns the request the helpdesk already has.
        """
        if not outcomes:
            return
        try:
            with self.engine.begin() as conn:
                for item in outcomes:
                    self._upsert(conn, item, run_id)
        except IntegrityError:
            # Another run inserted one of these rows meanwhile: redo them one by one.
            for item in outcomes:
                try:
                    with self.engine.begin() as conn:
                        self._upsert(conn, item, run_id)
                except IntegrityError:
                    with self.engine.begin() as conn:
                        self._upsert(conn, item, run_id)

    @staticmethod
    def _upsert(conn, item: Outcome, run_id: str) -> None:
        facts, now = item.facts, _now()
        values = {
            "source_id": facts.source_id,
            "message_id": (facts.message_id or None) and facts.message_id[:998],
            "received_at": facts.received_at,
            "day": facts.day,
            "sender": facts.sender and facts.sender[:320],
            "subject": facts.subject and facts.subject[:1000],
            "signals": list(facts.signals),
            "size_bytes": facts.size_bytes,
            "attachments": facts.attachments,
            "attachments_omitted": facts.attachments_omitted,
            "outcome": item.outcome,
            "reason": item.reason,
            "detail": item.detail,
            "last_run_id": run_id,
            "updated_at": now,
        }
        if item.outcome == CREATED:
            values.update(request_id=item.request_id, request_number=item.request_number, request_created_at=now)
        where = (messages.c.mailbox == facts.mailbox) & (messages.c.message_key == facts.message_key)
        changed = update(messages).where(where, messages.c.outcome != CREATED).values(**values)
        if item.count_attempt:
            changed = changed.values(attempts=messages.c.attempts + 1)
        if conn.execute(changed).rowcount:
            return
        if conn.execute(select(messages.c.outcome).where(where)).scalar() is not None:
            return  # already created: keep the request it has
        conn.execute(
            messages.insert().values(
                mailbox=facts.mailbox,
                message_key=facts.message_key,
                first_run_id=run_id,
                first_seen_at=now,
                attempts=1 if item.count_attempt else 0,
                marked_processed=False,
                **values,
            )
        )

    def set_marked(self, mailbox: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        with self.engine.begin() as conn:
            for start in range(0, len(keys), 500):
                conn.execute(
                    update(messages)
                    .where(messages.c.mailbox == mailbox, messages.c.message_key.in_(keys[start : start + 500]))
                    .values(marked_processed=True, updated_at=_now())
                )

    def keep_raw(self, mailbox: str, key: str, reason: str, raw: bytes) -> None:
        """Keep a message's bytes whole so it can be replayed later (R19). Never expires."""
        with self.engine.begin() as conn:
            where = (raw_messages.c.mailbox == mailbox) & (raw_messages.c.message_key == key)
            if conn.execute(select(func.count()).select_from(raw_messages).where(where)).scalar():
                conn.execute(update(raw_messages).where(where).values(reason=reason))
                return
            conn.execute(
                raw_messages.insert().values(mailbox=mailbox, message_key=key, reason=reason, raw=raw, kept_at=_now())
            )

    def start_run(self, run_id: str, mailbox: str, day: date, mode: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                runs.insert().values(
                    run_id=run_id, mailbox=mailbox, day=day, mode=mode, status="running", started_at=_now(),
                    rejected={},
                )
            )

    def finish_run(self, run_id: str, summary: dict, status: str, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(
                    status=status,
                    finished_at=_now(),
                    seen=summary.get("seen", 0),
                    created=summary.get("created", 0),
                    already_created=summary.get("already_created", 0),
                    rejected=summary.get("rejected", {}),
                    failed=summary.get("failed", 0),
                    quarantined=summary.get("quarantined", 0),
                    summary=summary,
                    error=error,
                )
            )


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)

