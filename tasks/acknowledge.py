"""R12 acknowledgements: who gets an answer, what it says, and the message that carries it.

Three pure parts, no Prefect and no network (the SMTP block sends, the flow decides when):

* ``decide_ack`` — whether a message gets an acknowledgement, and *which rule decided*. The rules
  exist to make a mail loop impossible (issue 5 §2, anchors complaint 7): nothing is ever sent to
  an auto-reply, a bounce, a mailing list, a robot address, our own addresses, anything we sent,
  a reply or a forward, or a message that did not create a request; at most N acknowledgements
  per sender per hour. The only answer to a message that created nothing is the optional polite
  notice to an unknown sender (off by default, at most once per sender per day).
* ``render`` — subject and text body from a template *file* (``mailservice/templates``), Spanish
  by default, with ``string.Template`` placeholders only: templates hold no code.
* ``build_reply`` — an RFC 5322 message threaded under the original (``In-Reply-To``,
  ``References``, ``Re:``) that announces itself as automatic (``Auto-Submitted: auto-replied``,
  ``X-Auto-Response-Suppress: All``, ``Precedence: auto_reply``) and carries our own marker
  (``X-Helppeople-Ack``) and Message-ID form, so that if it ever comes back we recognise it.
"""

from __future__ import annotations

import re
import string
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ACK_HEADER = "X-Helppeople-Ack"
MESSAGE_ID_PREFIX = "helppeople-ack."  # local part of every Message-ID we generate
DEFAULT_LANGUAGE = "es"
LANGUAGES = ("es", "en")
TEMPLATES = ("ack", "unknown_sender")
DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "mailservice" / "templates"
MAX_REFERENCES = 20  # ids kept in References: the thread's first one and the latest ones (RFC 5322 §3.6.4)

# Local parts of addresses that are robots: answering them is pointless at best, a loop at worst.
_ROBOT_LOCAL_PARTS = re.compile(
    r"^(?:mailer-daemon|postmaster|no-?reply|do-?not-?reply|donotreply|bounces?|auto-?reply|autoresponder)"
    r"(?:[+\-._].*)?$"
)
_PRECEDENCE_NO_ANSWER = ("bulk", "junk", "list", "auto_reply")
_FALSEY = {"", "no", "false", "0", "off"}
_LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post", "list-help")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:\\\[\]]+@[^@\s<>\"(),;:\\\[\]]+\.[^@\s<>\"(),;:\\\[\]]+$")
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


@dataclass(frozen=True)
class AckPolicy:
    """Per-mailbox acknowledgement settings (from the config's ``notify:`` section).

    ``own_addresses`` are every address the service sends or receives as (lower-cased; the
    mailbox address and the ``from`` address are always added).
    """

    mailbox_address: str
    own_addresses: tuple[str, ...] = ()
    max_per_sender_per_hour: int = 5
    notify_unknown_senders: bool = False

    def __post_init__(self) -> None:
        own = [self.mailbox_address, *self.own_addresses]
        normalised = tuple(dict.fromkeys(a.strip().lower() for a in own if a and a.strip()))
        object.__setattr__(self, "mailbox_address", self.mailbox_address.strip().lower())
        object.__setattr__(self, "own_addresses", normalised)


@dataclass(frozen=True)
class AckDecision:
    """``send``: whether to send; ``template``: "ack", "unknown_sender" or None; ``why``: the rule."""

    send: bool
    template: str | None
    why: str


def _no(why: str) -> AckDecision:
    return AckDecision(False, None, why)


def is_our_message_id(message_id: str | None) -> bool:
    """True for a Message-ID made by ``build_reply`` (whatever its domain)."""
    match = _MSGID.search(message_id or "")
    return bool(match) and match.group(0)[1:].lower().startswith(MESSAGE_ID_PREFIX)


def decide_ack(
    *,
    outcome: str,
    reason: str | None,
    kind: str | None,
    sender: str | None,
    headers: Mapping[str, str],
    policy: AckPolicy,
    sent_last_hour_to_sender: int,
    unknown_notices_today_to_sender: int,
) -> AckDecision:
    """Whether this message gets an acknowledgement (issue 5 §2). The first rule that applies decides.

    ``outcome``/``reason`` are the load stage's (``Decision``); ``kind`` is R6's classification
    (None when unknown); ``headers`` are the message's headers (any case; the parser's selection
    plus ``message-id``, ``x-helppeople-ack`` and ``list-*`` when available). The two counters come
    from the ledger: acknowledgements and notices already sent to this sender.

    Rules, in order (``why`` values):
      1. ``sender:missing`` / ``sender:invalid`` — no address to answer.
      2. ``sender:own-address`` — one of our own addresses (a loop with ourselves).
      3. ``ours:x-helppeople-ack`` / ``ours:message-id`` — a message we sent came back.
      4. ``sender:robot`` — mailer-daemon, postmaster, no-reply, bounces…
      5. ``kind:bounce`` / ``kind:auto_reply`` — R6 said machine mail.
      6. ``header:return-path-null``, ``header:content-type=multipart/report``,
         ``header:auto-submitted=…``, ``header:precedence=…``, ``header:x-auto-response-suppress``,
         ``header:x-autoreply``…, ``header:x-loop``, ``header:feedback-type``, ``header:list-id``… —
         machine or list mail even when the classifier was not asked (RFC 3834 §2).
      7. ``kind:reply`` / ``kind:forward`` / ``header:in-reply-to`` / ``header:references`` /
         ``header:x-forwarded-message-id`` — replies and forwards are not requests (R6).
      8. ``unknown_sender:notice`` (send the polite notice) or ``unknown_sender:notice_off`` /
         ``unknown_sender:notice_sent_today`` / ``rate_limit:…``.
      9. ``outcome:<outcome>`` — nothing was created (rejected, failed, quarantined, already_created).
     10. ``rate_limit:<n>_per_hour`` — this sender already got its N acknowledgements this hour.
     11. ``created`` — send the acknowledgement.
    """
    h = {str(k).strip().lower(): str(v or "").strip() for k, v in headers.items()}
    address = (sender or "").strip().lower()

    # 1-4: who would receive it
    if not address:
        return _no("sender:missing")
    if not _ADDRESS.match(address) or not address.isprintable():
        return _no("sender:invalid")
    if address in policy.own_addresses:
        return _no("sender:own-address")
    if ACK_HEADER.lower() in h:
        return _no("ours:x-helppeople-ack")
    if is_our_message_id(h.get("message-id")):
        return _no("ours:message-id")
    if _ROBOT_LOCAL_PARTS.match(address.split("@", 1)[0]):
        return _no("sender:robot")

    # 5-6: machine mail
    if kind in ("bounce", "auto_reply"):
        return _no(f"kind:{kind}")
    machine = _machine_mail_signal(h)
    if machine:
        return _no(machine)

    # 7: conversations, not requests
    if kind in ("reply", "forward"):
        return _no(f"kind:{kind}")
    for name in ("in-reply-to", "references", "x-forwarded-message-id"):
        if h.get(name):
            return _no(f"header:{name}")

    # 8: the polite notice to an unknown sender
    if outcome == "rejected" and reason == "unknown_sender":
        if not policy.notify_unknown_senders:
            return _no("unknown_sender:notice_off")
        if unknown_notices_today_to_sender > 0:
            return _no("unknown_sender:notice_sent_today")
        if sent_last_hour_to_sender >= policy.max_per_sender_per_hour:
            return _no(f"rate_limit:{policy.max_per_sender_per_hour}_per_hour")
        return AckDecision(True, "unknown_sender", "unknown_sender:notice")

    # 9-11: a request was created
    if outcome != "created":
        return _no(f"outcome:{outcome}" + (f":{reason}" if reason else ""))
    if sent_last_hour_to_sender >= policy.max_per_sender_per_hour:
        return _no(f"rate_limit:{policy.max_per_sender_per_hour}_per_hour")
    return AckDecision(True, "ack", "created")


def _machine_mail_signal(h: Mapping[str, str]) -> str | None:
    if h.get("return-path", "").replace(" ", "") in ("<>", "<<>>"):
        return "header:return-path-null"
    if h.get("content-type", "").lower().startswith("multipart/report"):
        return "header:content-type=multipart/report"
    auto_submitted = h.get("auto-submitted", "").split(";", 1)[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"header:auto-submitted={auto_submitted}"
    precedence = h.get("precedence", "").lower()
    for value in _PRECEDENCE_NO_ANSWER:
        if re.search(rf"\b{value}\b", precedence):
            return f"header:precedence={value}"
    if "x-auto-response-suppress" in h:
        return "header:x-auto-response-suppress"
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated"):
        if h.get(name, "").lower() not in _FALSEY:
            return f"header:{name}"
    if h.get("x-loop"):
        return "header:x-loop"
    if h.get("feedback-type"):
        return "header:feedback-type"
    if h.get("x-failed-recipients"):
        return "header:x-failed-recipients"
    for name in _LIST_HEADERS:
        if h.get(name):
            return f"header:{name}"
    return None


# ---------------------------------------------------------------------------------- templates


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file and the problem."""


_MONTHS = {
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}
# Fields a template may use. ``received`` is made from ``received_at`` (+ ``timezone``).
KNOWN_FIELDS = frozenset(
    {"number", "title", "received", "link", "sender_name", "sender_address", "original_subject", "mailbox_address"}
)


def normalise_language(language: str | None) -> str:
    """Language code to template language: "es-CO" → "es", "EN" → "en"; anything else → Spanish."""
    base = (language or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return base if base in LANGUAGES else DEFAULT_LANGUAGE


def format_received(when: datetime, language: str, timezone: str | ZoneInfo = "UTC") -> str:
    """The received date for people, in the mailbox's time zone: "12 de marzo de 2024, 9:05 a. m. (UTC-05:00)"."""
    tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
    local = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(tz)
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes > 0 else "-"
    zone = "UTC" if minutes == 0 else f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    hour12 = local.hour % 12 or 12
    language = normalise_language(language)
    month = _MONTHS[language][local.month - 1]
    if language == "en":
        meridiem = "AM" if local.hour < 12 else "PM"
        return f"{month} {local.day}, {local.year}, {hour12}:{local.minute:02d} {meridiem} ({zone})"
    meridiem = "a. m." if local.hour < 12 else "p. m."
    return f"{local.day} de {month} de {local.year}, {hour12}:{local.minute:02d} {meridiem} ({zone})"


def request_link(link_template: str | None, number: int | str | None, request_id: str | None = None) -> str | None:
    """``https://helpdesk/requests/{number}`` → the request's link; None without a template or number."""
    if not link_template or number is None:
        return None
    link = link_template.replace("{number}", str(number))
    return link.replace("{id}", str(request_id)) if "{id}" in link and request_id is not None else link


def template_path(template_dir: Path, template: str, language: str) -> Path:
    """The template file for ``language``, or its Spanish version when there is none for the language."""
    if template not in TEMPLATES and not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", template):
        raise TemplateError(f"{template!r} is not a template name (known: {', '.join(TEMPLATES)})")
    language = normalise_language(language)
    path = Path(template_dir) / f"{template}.{language}.txt"
    if not path.is_file() and language != DEFAULT_LANGUAGE:
        path = Path(template_dir) / f"{template}.{DEFAULT_LANGUAGE}.txt"
    if not path.is_file():
        raise TemplateError(f"{path}: template file not found (expected {template}.es.txt in {template_dir})")
    return path


def _clean_value(value: object) -> str:
    """A field as plain text on one line: no control or invisible characters (they would break headers)."""
    text = unicodedata.normalize("NFC", str(value))
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())


def _placeholders(text: str) -> set[str]:
    names = set()
    for match in string.Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
    return names


def render(template_dir: Path, template: str, language: str, **fields: object) -> tuple[str, str]:
    """(subject, text body) from ``<template_dir>/<template>.<language>.txt``.

    The file's first line is ``Subject: …``, then a blank line, then the body; placeholders are
    ``$name`` or ``${name}`` (``$$`` is a dollar sign). Fields: ``number``, ``title``,
    ``received_at`` (a datetime, shown as ``$received`` in ``timezone``), ``timezone``, ``link``,
    ``sender_name``, ``sender_address``, ``original_subject``, ``mailbox_address``, plus any extra
    keyword given. A body line that uses a field without a value (no link, no sender name) is left
    out; a placeholder that is not a field at all is an error, never sent to a customer as ``$typo``.
    Unknown language → Spanish.
    """
    language = normalise_language(language)
    path = template_path(template_dir, template, language)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not UTF-8 text; save the template as UTF-8") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = lines[0] if lines else ""
    if not first.lower().startswith("subject:"):
        raise TemplateError(f"{path}: the first line must be 'Subject: …', then a blank line, then the body")
    subject_template = first.split(":", 1)[1].strip()
    body_lines = lines[1:]

    timezone = fields.pop("timezone", None) or "UTC"
    received_at = fields.pop("received_at", None)
    values: dict[str, str] = {}
    for name, value in fields.items():
        values[name] = "" if value is None else _clean_value(value)
    if isinstance(received_at, datetime):
        values["received"] = format_received(received_at, language, timezone)  # type: ignore[arg-type]
    allowed = KNOWN_FIELDS | set(values)
    unknown = sorted(_placeholders(text) - allowed)
    if unknown:
        raise TemplateError(
            f"{path}: unknown placeholder(s) {', '.join('$' + u for u in unknown)}; "
            f"known fields: {', '.join(sorted(KNOWN_FIELDS))}"
        )

    subject = _clean_value(string.Template(subject_template).safe_substitute(dict.fromkeys(KNOWN_FIELDS, "") | values))
    kept: list[str] = []
    for line in body_lines:
        used = _placeholders(line)
        if any(not values.get(name) for name in used):
            continue  # a line about something we do not have (e.g. no link): left out
        kept.append(string.Template(line).safe_substitute(values).rstrip())
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n") + "\n"
    return subject, body


# ---------------------------------------------------------------------------------- the message

_POLICY = email_policy.SMTP.clone(refold_source="none")  # headers set raw below are sent exactly as folded


def reply_subject(subject: str) -> str:
    """``subject`` with one ``Re:`` in front (kept when it already starts with a reply prefix)."""
    subject = _clean_value(subject)
    return subject if re.match(r"^\s*re\s*:", subject, re.IGNORECASE) else f"Re: {subject}".rstrip()


def _message_ids(text: str | None) -> list[str]:
    return _MSGID.findall(text or "")


def _encoded_header(value: str, name: str) -> str:
    """A header value folded at 78 columns; non-ASCII as RFC 2047 encoded words (readable by every client)."""
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\n")


def new_message_id(domain: str) -> str:
    """``<helppeople-ack.<random>@domain>``: recognisable as ours if it ever comes back."""
    domain = domain.strip().strip("<>@").lower() or "localhost"
    if not re.fullmatch(r"[a-z0-9.-]+", domain):
        raise ValueError(f"{domain!r} is not a domain name for Message-IDs")
    return f"<{MESSAGE_ID_PREFIX}{uuid.uuid4().hex}@{domain}>"


def build_reply(
    *,
    original_message_id: str | None,
    original_references: str | None,
    original_subject: str,
    from_address: str,
    from_name: str | None,
    to_address: str,
    subject: str,
    body: str,
    message_id_domain: str,
    request_number: int | str | None = None,
    date: datetime | None = None,
) -> bytes:
    """The acknowledgement as RFC 5322 bytes (CRLF), threaded under the original message.

    ``subject`` is the template's (it wins, so the request number shows in the inbox); it gets a
    ``Re:`` prefix so clients that group by subject keep the thread; an empty ``subject`` means
    ``Re: <original subject>``. ``request_number`` goes into ``X-Helppeople-Ack`` ("notice" when
    None: the unknown-sender notice). The body is UTF-8, quoted-printable (7-bit safe for any relay).
    """
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = Address(display_name=_clean_value(from_name or ""), addr_spec=from_address.strip())
    msg["To"] = Address(addr_spec=to_address.strip())
    msg.set_raw("Subject", _encoded_header(reply_subject(subject or original_subject or ""), "Subject"))
    msg["Date"] = format_datetime((date or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = new_message_id(message_id_domain)

    # Threading: In-Reply-To = the original's id; References = its references + its id (RFC 5322 §3.6.4).
    original_ids = _message_ids(original_message_id)
    if original_ids:
        parent = original_ids[0]
        chain = [i for i in _message_ids(original_references) if i != parent] + [parent]
        chain = list(dict.fromkeys(chain))
        if len(chain) > MAX_REFERENCES:
            chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
        msg.set_raw("In-Reply-To", parent)
        msg.set_raw("References", "\n ".join(chain))  # one id per line: folded, never encoded

    # Never a loop (R12, RFC 3834): we are a robot, and say so in every dialect robots read.
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "auto_reply"
    msg[ACK_HEADER] = str(request_number) if request_number is not None else "notice"
    msg.set_content(unicodedata.normalize("NFC", body), subtype="plain", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()
