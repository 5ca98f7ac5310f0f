"""What every mailbox kind offers the pipeline, so flows never care where mail comes from."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from tasks.model import MessageRef, RawMessage


class MailboxUnavailable(Exception):
    """The mailbox cannot be read now; the message says which mailbox, what failed, what to check."""


@runtime_checkable
class MailboxSource(Protocol):
    def list_refs(self, since: datetime, until: datetime, *, include_processed: bool) -> list[MessageRef]:
        """Messages received in [since, until), cheaply: names, dates and sizes only, no bodies."""
        ...

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[RawMessage]:
        """The raw bytes of these messages; a message gone since listing is skipped."""
        ...

    def mark_processed(self, refs: Sequence[MessageRef]) -> None:
        """Mark messages whose outcome is recorded (R15). Never deletes mail."""
        ...
