"""The message key: one identity per message, whatever the mailbox or the sender did.

Message-ID alone is not an identity: some senders omit it and some reuse it (anchors, complaint 3).
The raw bytes alone are not either: IMAP returns CRLF where Maildir stores LF, and servers add
trace headers (Received, X-...) on delivery. The key therefore hashes the headers that identify
a message as its author wrote it plus the body with line endings and trailing blanks normalised.
It works on any bytes, even ones no parser accepts, so unparseable mail gets a key too (R19).
"""

from __future__ import annotations

import hashlib
import re

# Headers set by the author's client, not by servers on the way.
IDENTITY_HEADERS = (b"message-id", b"date", b"from", b"to", b"cc", b"subject")

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n[ \t]+")
_SPACES = re.compile(rb"[ \t]+")


def split_head_body(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw mail at the first empty line; no empty line means all header."""
    match = _HEADER_END.search(raw)
    if match is None:
        return raw, b""
    return raw[: match.start()], raw[match.end() :]


def _identity_headers(head: bytes) -> list[bytes]:
    unfolded = _FOLD.sub(b" ", head)
    found: dict[bytes, bytes] = {}
    for line in unfolded.splitlines():
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name in IDENTITY_HEADERS and name not in found:
            found[name] = _SPACES.sub(b" ", value.strip())
    return [name + b":" + found.get(name, b"") for name in IDENTITY_HEADERS]


def _normalised_body(body: bytes) -> bytes:
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    return b"\n".join(line.rstrip() for line in lines).rstrip(b"\n")


def message_key(raw: bytes) -> str:
    """A 32-hex-character key, equal for the same message fetched from any mailbox kind."""
    head, body = split_head_body(raw)
    identity = _identity_headers(head)
    digest = hashlib.sha256()
    for item in identity:
        digest.update(item)
        digest.update(b"\n")
    digest.update(b"\x00")
    if all(item.endswith(b":") for item in identity) and not body:
        # Not mail at all (no identity header, no body): the bytes themselves are the identity,
        # so two different unparseable blobs never share a ledger row.
        digest.update(_normalised_body(head))
    digest.update(_normalised_body(body))
    return digest.hexdigest()[:32]


def external_id(mailbox: str, key: str) -> str:
    """The id the helpdesk stores with the request (R14): a repeated create returns that request."""
    return f"mail:{mailbox}:{key}"
