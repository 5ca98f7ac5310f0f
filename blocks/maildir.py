"""A local Maildir as a mailbox: the embedded default for the demo, development and tests.

Python 3.11's ``mailbox.Maildir`` cannot add a flag without rewriting the message, and it reads a
whole folder's table of contents to find one file; polling must cost almost nothing when no new
mail arrived, so this block reads only file *names*: the delivery time (the number that starts
every Maildir name) decides the day window and the processed mark lives in the name's flags.
The mark is a Dovecot-style keyword letter declared in ``dovecot-keywords``, so a Dovecot server
serving the same folder shows it as the ``$HelppeopleIngested`` keyword. Mail is never deleted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr

from blocks.mailbox import MailboxUnavailable
from tasks.model import MessageRef, RawMessage

PROCESSED_KEYWORD = "$HelppeopleIngested"
_INFO = ":2,"


def _split_name(name: str) -> tuple[str, str]:
    """('1733300000.M1P2Q3.host', 'FSa') from '1733300000.M1P2Q3.host:2,FSa'."""
    unique, sep, flags = name.partition(_INFO)
    return unique, flags if sep else ""


def _delivered_at(unique: str, path: Path) -> datetime:
    head = unique.split(".", 1)[0]
    if head.isdigit():
        return datetime.fromtimestamp(int(head), tz=UTC)
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


class MaildirMailbox(Block):
    """A Maildir folder read by the ingest flow.

    Example:
        ```python
        from blocks.maildir import MaildirMailbox
        mailbox = MaildirMailbox.load("BLOCK_NAME")
        refs = mailbox.list_refs(since, until, include_processed=False)
        ```
    """

    _block_type_name = "Maildir Mailbox"
    _logo_url = "https://raw.githubusercontent.com/PrefectHQ/prefect/main/docs/images/logos/prefect-logo.png"
    _description = "A local Maildir folder read by helppeople Mail Service (the embedded default)."

    path: str = Field(description="Absolute path of the Maildir folder (the one holding cur/, new/ and tmp/).")

    _where: dict[str, Path] = PrivateAttr(default_factory=dict)

    # -- reading ---------------------------------------------------------------------------
    def _root(self) -> Path:
        root = Path(self.path)
        if not (root / "cur").is_dir() or not (root / "new").is_dir():
            raise MailboxUnavailable(
                f"Maildir mailbox at {root} is not readable: expected the folders cur/ and new/ inside it. "
                "Check the mailbox's 'path' in the config (relative paths are relative to the config file)."
            )
        return root

    def keyword_letter(self) -> str:
        """The flag letter standing for PROCESSED_KEYWORD, declared in dovecot-keywords if new."""
        root = self._root()
        keywords = root / "dovecot-keywords"
        taken: dict[int, str] = {}
        if keywords.exists():
            for line in keywords.read_text(encoding="utf-8", errors="replace").splitlines():
                index, _, word = line.partition(" ")
                if index.isdigit():
                    taken[int(index)] = word.strip()
        for index, word in taken.items():
            if word == PROCESSED_KEYWORD and index < 26:
                return chr(ord("a") + index)
        free = next((i for i in range(26) if i not in taken), None)
        if free is None:
            raise MailboxUnavailable(f"Maildir mailbox at {root}: all 26 keyword letters are in use")
        with keywords.open("a", encoding="utf-8") as handle:
            handle.write(f"{free} {PROCESSED_KEYWORD}\n")
        return chr(ord("a") + free)

    def list_refs(self, since: datetime, until: datetime, *, include_processed: bool) -> list[MessageRef]:
        root = self._root()
        letter = self.keyword_letter()
        refs: list[MessageRef] = []
        self._where.clear()
        for sub in ("new", "cur"):
            with os.scandir(root / sub) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    unique, flags = _split_name(entry.name)
                    path = Path(entry.path)
                    received = _delivered_at(unique, path)
                    if not since <= received < until:
                        continue
                    processed = letter in flags
                    if processed and not include_processed:
                        continue
                    self._where[unique] = path
                    refs.append(MessageRef(unique, received, entry.stat().st_size, processed))
        refs.sort(key=lambda ref: (ref.received_at, ref.source_id))
        return refs

    def _locate(self, unique: str) -> Path | None:
        known = self._where.get(unique)
        if known is not None and known.exists():
            return known
        root = self._root()
        for sub in ("new", "cur"):
            for candidate in (root / sub).glob(f"{unique}*"):
                if _split_name(candidate.name)[0] == unique:
                    self._where[unique] = candidate
                    return candidate
        return None

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[RawMessage]:
        for ref in refs:
            path = self._locate(ref.source_id)
            if path is None:
                continue  # gone since listing: reconciliation reports it
            try:
                yield RawMessage(ref, path.read_bytes())
            except FileNotFoundError:
                continue

    # -- marking ---------------------------------------------------------------------------
    def mark_processed(self, refs: Sequence[MessageRef]) -> None:
        letter = self.keyword_letter()
        root = self._root()
        for ref in refs:
            path = self._locate(ref.source_id)
            if path is None:
                continue
            unique, flags = _split_name(path.name)
            if letter in flags and path.parent.name == "cur":
                continue
            new_flags = "".join(sorted(set(flags + letter)))
            target = root / "cur" / f"{unique}{_INFO}{new_flags}"
            os.replace(path, target)
            self._where[unique] = target
