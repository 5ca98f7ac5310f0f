"""The data that moves between the pipeline's stages.

Plain dataclasses, no Prefect: every stage's pure logic takes and returns these, so
it can be tested without a server. Data moves one way:
mailbox → ``RawMessage`` → ``ParsedMessage`` → ``Decision`` → ``RequestDraft`` → outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class MessageRef:
    """Where a message lives in its mailbox, known before its body is read.

    ``source_id`` is the mailbox's own handle (Maildir key, IMAP UID, Gmail id): it is
    used to fetch and to mark the message, never as its identity (see ``message_key``).
    """

    source_id: str
    received_at: datetime  # timezone-aware
    size: int = 0
    processed: bool = False  # already carries the processed mark in the mailbox


@dataclass(frozen=True)
class RawMessage:
    ref: MessageRef
    raw: bytes


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    inline: bool = False  # an image shown in the body (cid: or data: URI), not a file the sender attached
    content_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class ParsedMessage:
    """What the parser read from one message; nothing is judged or cleaned yet."""

    key: str  # message key: stable across reruns, Message-ID reuse and its absence
    message_id: str | None
    date: datetime | None  # the Date header, if it could be read
    sender: str | None  # lower-cased address of From (None when absent or unreadable)
    sender_name: str
    recipients: list[str]  # lower-cased addresses from To, Cc, Delivered-To, X-Original-To
    subject: str  # decoded, not yet normalised ("" when absent)
    text_body: str | None
    html_body: str | None
    attachments: list[Attachment]
    # Selected headers, lower-cased names, used by the classifier (in-reply-to, references,
    # auto-submitted, precedence, x-autoreply, x-autorespond, x-auto-response-suppress,
    # return-path, content-type, x-loop, ...). Values are decoded strings.
    headers: dict[str, str]
    content_type: str  # top-level MIME type, e.g. "multipart/report"
    size: int  # raw size in bytes
    defects: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Classification:
    """R6: what kind of mail this is, and the signals that said so."""

    kind: str  # "new" | "reply" | "forward" | "auto_reply" | "bounce"
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class OmittedAttachment:
    filename: str
    size: int
    reason: str  # e.g. "over_size_limit"


@dataclass
class RequestDraft:
    """A request ready to be created in the helpdesk (R14), built by the clean stage."""

    key: str
    title: str  # ≤ subject_max_chars (R7)
    description: str  # plain text (R8, R9), with image markers (R10) and omission notes (R11)
    requester_email: str
    requester_id: str | None
    received_at: datetime
    attachments: list[Attachment]
    omitted: list[OmittedAttachment] = field(default_factory=list)
    # Set by a routing rule (R13); None/empty: the mailbox's defaults.
    routing_rule: str | None = None
    category: str | None = None
    group: str | None = None
    priority: str | None = None
    tags: tuple[str, ...] = ()


@dataclass
class MessageResult:
    """One message's way through validate and clean: either a draft, or a refusal.

    ``outcome`` is "accepted" (draft set), "rejected" (reason set) or "quarantined"
    (unparseable; raw kept for replay, R19).
    """

    ref: MessageRef
    key: str
    outcome: str
    reason: str | None = None
    signals: tuple[str, ...] = ()
    message_id: str | None = None
    sender: str | None = None
    subject: str = ""
    size: int = 0
    draft: RequestDraft | None = None
    raw: bytes | None = None  # kept only for quarantined messages
    kind: str | None = None  # R6 class (None when quarantined)
    sender_name: str = ""
    # The classifier's headers plus message-id: what the acknowledgement stage needs to thread a
    # reply and to refuse answering robots (R12, no mail loops).
    headers: dict[str, str] = field(default_factory=dict)
