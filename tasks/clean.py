"""The clean stage: from a parsed message to a request draft the helpdesk can store (R7–R11).

* R9  ``normalize_text``: NFC, no control or invisible characters, accents always kept, and no
  characters outside the Basic Multilingual Plane unless the mailbox keeps emoji (many helpdesk
  databases store only 3-byte UTF-8 and fail on the fourth byte).
* R7  ``make_title``: at most 80 characters, cut at a word boundary with "…"; the full subject
  then opens the description so nothing the user wrote is lost.
* R8  the description is the better of the plain part and the HTML part converted to text.
* R10 screenshots pasted in the body (``cid:`` parts, ``data:`` URIs) become attachments with
  readable names, and ``[imagen: captura-1.png]`` marks where each one was.
* R11 an attachment over the size limit is left out, and the description says which and why:
  nothing is silently dropped (anchors, complaint 8).

Pure module: no Prefect, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote, unquote_to_bytes

from tasks.html_text import html_to_text
from tasks.model import Attachment, OmittedAttachment, ParsedMessage, RequestDraft

DEFAULT_SUBJECT_MAX_CHARS = 80
DEFAULT_ATTACHMENT_MAX_BYTES = 20 * 1024 * 1024
FILENAME_MAX_CHARS = 120
FILENAME_MAX_BYTES = 240  # UTF-8 bytes; most file systems and helpdesks stop at 255
OMITTED_OVER_SIZE = "over_size_limit"


# --------------------------------------------------------------------------------------------
# R9: characters
# --------------------------------------------------------------------------------------------


def _build_translation() -> dict[int, str | None]:
    """Map every BMP code point R9 removes (or turns into a plain space/newline) once, at import.

    ``str.translate`` with this table runs in C, so cleaning megabytes of text stays cheap.
    """
    table: dict[int, str | None] = {}
    for code in range(0x10000):
        if code in (0x0A,):
            continue
        category = unicodedata.category(chr(code))
        if code == 0x09:
            table[code] = " "
        elif code in (0x2028, 0x2029, 0x0B, 0x0C, 0x85):
            table[code] = "\n"
        elif category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            table[code] = None
        elif category == "Zs" and code != 0x20:
            table[code] = " "  # no-break and typographic spaces read as a space in plain text
    # Invisible although not in a "C" category: Hangul fillers, combining grapheme joiner,
    # variation selectors, object replacement character, Mongolian vowel separator.
    for code in (0x115F, 0x1160, 0x3164, 0xFFA0, 0x034F, 0xFFFC, 0x180E, *range(0xFE00, 0xFE10)):
        table[code] = None
    return table


_TRANSLATION = _build_translation()
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# An emoji between two blanks takes one blank with it, so "no carga 😭 desde" reads "no carga desde".
_ASTRAL_WORD = re.compile("(?:^|(?<= ))[\U00010000-\U0010ffff]+ ", re.MULTILINE)
# Invisible characters outside the BMP are removed even when emoji are kept.
_ASTRAL_INVISIBLE = re.compile("[\U000e0000-\U000e007f\U000e0100-\U000e01ef\U000f0000-\U0010ffff]")


def normalize_text(text: str, keep_emoji: bool = False) -> str:
    """R9: NFC; remove control, zero-width and other invisible characters; accents always kept.

    CRLF and lone CR become LF, tabs become a space, exotic spaces become a plain space.
    Characters outside the Basic Multilingual Plane (emoji, rare scripts) are removed unless
    ``keep_emoji``, because 3-byte-UTF-8 databases cannot store them.
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_TRANSLATION)
    text = _ASTRAL_INVISIBLE.sub("", text) if keep_emoji else _ASTRAL.sub("", _ASTRAL_WORD.sub("", text))
    if not unicodedata.is_normalized("NFC", text):  # removing a joiner can leave a composable pair
        text = unicodedata.normalize("NFC", text)
    return text


def normalized_subject(subject: str, keep_emoji: bool = False) -> str:
    """The subject as one clean line; an empty result counts as a missing subject (R5, R7)."""
    return " ".join(normalize_text(subject or "", keep_emoji).split())


_MULTI_BLANK = re.compile(r"\n{3,}")


_BULLET = re.compile(r"^([ \t]*)[·•▪◦‣∙][ \t]+", re.MULTILINE)


def tidy_lines(text: str) -> str:
    """Trailing blanks off every line, at most one blank line in a row, no blank edges.

    Bullets that Outlook writes as "·" plus a run of spaces become "- ", like HTML list items.
    """
    text = _BULLET.sub(r"\1- ", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return _MULTI_BLANK.sub("\n\n", "\n".join(lines)).strip("\n")


# --------------------------------------------------------------------------------------------
# R7: title
# --------------------------------------------------------------------------------------------

ELLIPSIS = "…"


def make_title(subject: str, max_chars: int = DEFAULT_SUBJECT_MAX_CHARS) -> tuple[str, bool]:
    """R7: the subject within ``max_chars``, shortened at a word boundary with "…".

    Returns ``(title, shortened)``. The cut is at the last blank that keeps the title within the
    limit, if that blank lies in the last ~30 % of the room; otherwise (one very long word, a
    URL) the subject is cut hard, since a title of two words would say less than a hard cut.
    """
    subject = subject.strip()
    if len(subject) <= max_chars:
        return subject, False
    if max_chars <= 1:
        return subject[:max_chars], True
    room = max_chars - len(ELLIPSIS)
    boundary = subject.rfind(" ", 0, room + 1)
    head = subject[:boundary] if boundary >= int(room * 0.7) else subject[:room]
    head = head.rstrip(" ,;:-–—")
    if not head:
        head = subject[:room]
    return head + ELLIPSIS, True


# --------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------

_UNSAFE_FILENAME_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def _bounded(stem: str, ext: str) -> str:
    """Cut ``stem`` (never the extension) until the name fits the character and byte limits."""
    original = stem
    stem = stem[:FILENAME_MAX_CHARS]
    while stem and (len(stem) + len(ext) > FILENAME_MAX_CHARS or len((stem + ext).encode()) > FILENAME_MAX_BYTES):
        stem = stem[:-1]
    if stem != original:
        stem = stem.rstrip(" .")
    return stem + ext


def _split_ext(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    ext = name[dot:]
    if len(ext) > 16 or " " in ext or len(ext) == 1:
        return name, ""
    return name[:dot], ext


def _clean_filename(name: str) -> str:
    name = normalize_text(name or "")
    name = re.split(r"[/\\]", name)[-1]  # no path parts: "../../etc/passwd" → "passwd"
    name = _UNSAFE_FILENAME_CHARS.sub("_", name)
    name = " ".join(name.split()).strip(" .")
    if not name or set(name) <= {".", "_", " "}:
        return ""
    if _WINDOWS_RESERVED.match(name):
        name = "_" + name
    stem, ext = _split_ext(name)
    return _bounded(stem, ext)


def sanitize_filename(name: str, used: set[str], fallback: str) -> str:
    """A safe, bounded, unique file name for one attachment of a request.

    No directories, no control or reserved characters, at most 120 characters keeping the
    extension; ``fallback`` when nothing usable is left. ``used`` holds the case-folded names
    already taken in this request ("informe.pdf" then "informe (2).pdf"); the result is added.
    """
    clean = _clean_filename(name) or _clean_filename(fallback) or "adjunto"
    stem, ext = _split_ext(clean)
    candidate, number = clean, 1
    while candidate.casefold() in used:
        number += 1
        candidate = _bounded(stem, f" ({number}){ext}")
    used.add(candidate.casefold())
    return candidate


# --------------------------------------------------------------------------------------------
# R10: images in the body
# --------------------------------------------------------------------------------------------

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/webp": ".webp",
    "image/tiff": ".tif",
    "image/svg+xml": ".svg",
    "image/heic": ".heic",
    "image/x-emf": ".emf",
    "image/x-wmf": ".wmf",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
}
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[^,;]*)*?)(;base64)?,(.*)$", re.IGNORECASE | re.DOTALL)
_PLAIN_CID = re.compile(r"\[cid:([^\]\s]+)\]", re.IGNORECASE)
_PLAIN_IMAGE = re.compile(r"\[(?:image|imagen|imagem|bild|immagine|afbeelding)\s*:\s*([^\]\n]{1,200})\]", re.IGNORECASE)

MARKERS = {
    "es": {
        "image": "[imagen: {name}]",
        "omitted": "Adjunto omitido: {name} ({size}) supera el límite de {limit} por archivo.",
        "screenshot": "captura",
        "attachment": "adjunto",
        "message": "mensaje",
    },
    "en": {
        "image": "[image: {name}]",
        "omitted": "Attachment omitted: {name} ({size}) exceeds the {limit} per-file limit.",
        "screenshot": "screenshot",
        "attachment": "attachment",
        "message": "message",
    },
}


def _texts(language: str) -> dict[str, str]:
    return MARKERS.get((language or "es").lower()[:2], MARKERS["es"])


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG or GIF header (no image library needed), or None."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
    except struct.error:
        return None
    return None


def _is_pixel(data: bytes) -> bool:
    size = image_dimensions(data)
    return size is not None and size[0] <= 1 and size[1] <= 1


def _decode_data_uri(uri: str) -> tuple[str, bytes] | None:
    match = _DATA_URI.match(uri.strip())
    if not match:
        return None
    ctype = (match.group(1) or "text/plain").lower()
    payload = match.group(4)
    try:
        if match.group(3):
            clean = re.sub(r"[^A-Za-z0-9+/_-]", "", unquote_to_bytes(payload).decode("ascii", "ignore"))
            clean = clean.replace("-", "+").replace("_", "/")
            if len(clean) % 4 == 1:
                clean = clean[:-1]
            data = base64.b64decode(clean + "=" * (-len(clean) % 4))
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        return None
    return ctype, data


def _size_text(size: int, language: str) -> str:
    """Human size for the omission note: "24,3 MB" in Spanish, "24.3 MB" in English."""
    if size >= 1024 * 1024:
        value, unit = size / (1024 * 1024), "MB"
    elif size >= 1024:
        value, unit = size / 1024, "KB"
    else:
        return f"{size} bytes"
    text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    if not language.lower().startswith("en"):
        text = text.replace(".", ",")
    return f"{text} {unit}"


@dataclass
class _Builder:
    """State of one draft's attachments while the body is converted."""

    max_bytes: int
    language: str
    attachments: list[Attachment] = field(default_factory=list)
    omitted: list[OmittedAttachment] = field(default_factory=list)
    used_names: set[str] = field(default_factory=set)
    by_hash: dict[str, str | None] = field(default_factory=dict)  # image bytes → marker (None: dropped)
    by_cid: dict[str, Attachment] = field(default_factory=dict)
    handled: set[int] = field(default_factory=set)  # id() of source attachments already taken
    screenshots: int = 0
    others: int = 0

    def _name(self, original: str, ctype: str, kind: str) -> str:
        """The part's own name when it has a usable one, else "captura-N.png" / "adjunto-N.pdf"."""
        if _clean_filename(original):
            return sanitize_filename(original, self.used_names, "")
        texts = _texts(self.language)
        ext = _EXTENSIONS.get(ctype.lower(), ".bin")
        if kind == "image":
            self.screenshots += 1
            fallback = f"{texts['screenshot']}-{self.screenshots}{ext}"
        else:
            self.others += 1
            base = texts["message"] if ctype.lower().startswith("message/") else texts["attachment"]
            fallback = f"{base}-{self.others}{ext}"
        return sanitize_filename("", self.used_names, fallback)

    def _keep(self, attachment: Attachment, name: str) -> None:
        if attachment.size > self.max_bytes:
            self.omitted.append(OmittedAttachment(name, attachment.size, OMITTED_OVER_SIZE))
            return
        self.attachments.append(
            Attachment(name, attachment.content_type, attachment.data, attachment.inline, attachment.content_id)
        )

    def body_image(self, source: Attachment | None, ctype: str, data: bytes) -> str | None:
        """A screenshot in the body: attach it once, return its marker (None: nothing to show)."""
        digest = hashlib.sha256(data).hexdigest()
        if source is not None:
            self.handled.add(id(source))
        if digest in self.by_hash:
            return self.by_hash[digest]
        if not data or _is_pixel(data):
            self.by_hash[digest] = None
            return None
        name = self._name(source.filename if source else "", ctype, "image")
        attachment = Attachment(name, ctype, data, True, source.content_id if source else None)
        self._keep(attachment, name)
        marker = _texts(self.language)["image"].format(name=name)
        self.by_hash[digest] = marker
        return marker

    def marker_for(self, src: str, attrs: dict) -> str | None:
        """``image_marker`` for ``html_to_text``: cid: parts and data: URIs become screenshots."""
        del attrs  # tracking pixels by attribute are dropped by html_to_text before this call
        lowered = src.strip().lower()
        if lowered.startswith("cid:"):
            source = self.by_cid.get(_cid_key(src.strip()[4:]))
            if source is None:
                return None
            return self.body_image(source, source.content_type, source.data)
        if lowered.startswith("data:"):
            decoded = _decode_data_uri(src)
            if decoded is None or not decoded[0].startswith("image/"):
                return None
            return self.body_image(None, decoded[0], decoded[1])
        return None

    def rest(self, attachments: list[Attachment]) -> None:
        """Attachments the body did not show: the files the sender attached (R11 applies)."""
        for source in attachments:
            if id(source) in self.handled:
                continue
            is_image = source.content_type.lower().startswith("image/")
            if is_image and (source.inline or source.content_id):
                digest = hashlib.sha256(source.data).hexdigest()
                if digest in self.by_hash or _is_pixel(source.data):
                    continue  # the same logo again, or a tracking pixel
                self.by_hash[digest] = None
            name = self._name(source.filename, source.content_type, "image" if is_image and source.inline else "file")
            self._keep(
                Attachment(name, source.content_type, source.data, inline=False, content_id=source.content_id), name
            )


def _cid_key(value: str) -> str:
    return unquote(value).strip().strip("<>").strip().lower()


# --------------------------------------------------------------------------------------------
# R8: plain or HTML
# --------------------------------------------------------------------------------------------

# What clients put in the plain part when the real message is the HTML one.
_PLAIN_STUBS = re.compile(
    r"this (?:is an? )?(?:e-?mail |message )?(?:message )?(?:is |contains |is in )?(?:html|multi-?part)"
    r"|(?:your|this) (?:e-?mail )?(?:client|program|reader) does not support html"
    r"|to view this (?:message|email)"
    r"|view (?:this|the) (?:message|email) in (?:your|a) (?:web )?browser"
    r"|este (?:mensaje|correo)(?: electr[oó]nico)? (?:contiene|est[aá] en(?: formato)?) html"
    r"|su (?:cliente|programa) de correo no (?:admite|soporta) html"
    r"|para ver este (?:mensaje|correo)"
    r"|esta mensagem (?:cont[eé]m|est[aá] em) html",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")
_MARKER_RE = re.compile(r"\[(?:imagen|image): [^\]]+\]")


def choose_description(plain: str | None, html_text: str | None) -> tuple[str, str]:
    """R8: pick the better text of the two parts; returns (text, "plain" | "html").

    HTML wins when the plain part is missing, empty or a "this message is HTML" stub, when it
    is much shorter (under 60 % of the HTML's words: clients that truncate or drop tables), or
    when only the HTML shows where the screenshots were. Otherwise the plain part wins: it is
    what the author's client wrote as text, with its own line breaks.
    """
    plain = (plain or "").strip()
    html_text = (html_text or "").strip()
    if not html_text:
        return plain, "plain"
    plain_words = len(_WORD.findall(_MARKER_RE.sub("", plain)))
    html_words = len(_WORD.findall(_MARKER_RE.sub("", html_text)))
    if not plain or (plain_words < 40 and _PLAIN_STUBS.search(plain)):
        return html_text, "html"
    if plain_words < 0.6 * html_words:
        return html_text, "html"
    if len(_MARKER_RE.findall(html_text)) > len(_MARKER_RE.findall(plain)):
        return html_text, "html"
    return plain, "plain"


def _plain_with_markers(plain: str, builder: _Builder, attachments: list[Attachment]) -> str:
    """Turn Outlook's "[cid:image001.png@01D…]" and Gmail's "[image: x.png]" into our markers."""

    def cid(match: re.Match[str]) -> str:
        source = builder.by_cid.get(_cid_key(match.group(1)))
        if source is None or not source.content_type.lower().startswith("image/"):
            return match.group(0)
        return builder.body_image(source, source.content_type, source.data) or ""

    by_name = {a.filename.casefold(): a for a in attachments if a.inline and a.filename}

    def named(match: re.Match[str]) -> str:
        source = by_name.get(match.group(1).strip().casefold())
        if source is None:
            return match.group(0)
        return builder.body_image(source, source.content_type, source.data) or ""

    return _PLAIN_IMAGE.sub(named, _PLAIN_CID.sub(cid, plain))


def build_request_draft(
    msg: ParsedMessage,
    *,
    requester_id: str | None,
    received_at: datetime,
    subject_max_chars: int = DEFAULT_SUBJECT_MAX_CHARS,
    attachment_max_bytes: int = DEFAULT_ATTACHMENT_MAX_BYTES,
    keep_emoji: bool = False,
    language: str = "es",
) -> RequestDraft:
    """Build the request for ``msg`` (R7–R11): title, plain-text description, attachments."""
    builder = _Builder(max_bytes=attachment_max_bytes, language=language)
    for attachment in msg.attachments:
        if attachment.content_id:
            builder.by_cid.setdefault(_cid_key(attachment.content_id), attachment)

    html_text = html_to_text(msg.html_body, builder.marker_for) if msg.html_body else ""
    plain = _plain_with_markers(msg.text_body, builder, msg.attachments) if msg.text_body else ""
    body, _source = choose_description(normalize_text(plain, keep_emoji), normalize_text(html_text, keep_emoji))
    builder.rest(msg.attachments)

    subject = normalized_subject(msg.subject, keep_emoji)
    title, shortened = make_title(subject, subject_max_chars)
    parts = []
    if shortened:
        parts.append(subject)
    if body.strip():
        parts.append(body)
    texts = _texts(language)
    limit = _size_text(attachment_max_bytes, language)
    notes = [
        texts["omitted"].format(name=o.filename, size=_size_text(o.size, language), limit=limit)
        for o in builder.omitted
    ]
    if notes:
        parts.append("\n".join(notes))
    description = tidy_lines("\n\n".join(parts))
    return RequestDraft(
        key=msg.key,
        title=title,
        description=description,
        requester_email=msg.sender or "",
        requester_id=requester_id,
        received_at=received_at,
        attachments=builder.attachments,
        omitted=builder.omitted,
    )
