"""R6: decide whether a message is new mail, a reply, a forward, an auto-reply or a bounce.

Only new mail becomes a request. Replies and forwards belong to conversations the helpdesk
already has; auto-replies and bounces must never create a request *nor get an answer*, or the
service and an out-of-office robot mail each other forever (anchors, complaint 7).

The decision is explicit and logged: every signal that fired is returned, not only the winner,
so an operator can see *why* a message was refused and the data team can count by signal.
When several kinds fire, the most protective wins: bounce > auto_reply > reply > forward > new
(a bounce that quotes "RE:" is still a bounce; answering it would start a loop).

Pure module: no Prefect, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from tasks.model import Classification, ParsedMessage

KINDS = ("bounce", "auto_reply", "reply", "forward", "new")  # precedence order

# Reply prefixes written by mail clients, by language (compared case-insensitively, accents kept).
REPLY_PREFIXES = frozenset(
    {
        "re",  # en, es, fr, pt, it, nl... (Latin "in re")
        "res",  # pt-BR
        "aw",  # de (Antwort)
        "antw",  # nl, de
        "sv",  # sv, da, no (svar)
        "vs",  # fi (vastaus); also Danish/Norwegian forward ("videresendt"): either way not new
        "rta",  # es-419, typed by hand ("respuesta")
        "rpta",  # es-419
        "resp",  # pt-BR, es
        "vá",  # hu (válasz)
        "rif",  # it (riferimento)
        "r",  # it
        "odp",  # pl, cs (odpověď / odpowiedź)
        "odg",  # sl, hr
        "ynt",  # tr (yanıt)
        "atb",  # lv (atbilde), cy (ateb)
        "ats",  # lt (atsakymas)
        "bls",  # id (balas)
        "απ",  # el
        "σχετ",  # el
        "отв",  # ru
        "回复",  # zh-CN
        "回覆",  # zh-TW
        "答复",  # zh-CN (Outlook)
        "返信",  # ja
        "답장",  # ko
        "השב",  # he
        "رد",  # ar
    }
)
FORWARD_PREFIXES = frozenset(
    {
        "fw",
        "fwd",  # en
        "rv",  # es (reenviado)
        "enc",  # pt (encaminhado)
        "wg",  # de (weitergeleitet)
        "tr",  # fr (transféré)
        "i",  # it (inoltrato)
        "vl",  # fi (välitetty)
        "vb",  # sv (vidarebefordrat)
        "fs",  # is (framsent)
        "doorst",  # nl (doorgestuurd)
        "pd",  # pl (przekaż dalej)
        "př",  # cs (přeposlat)
        "pr",  # cs without diacritics
        "tov",  # hu (továbbítás)
        "továbbítás",
        "ilt",  # tr (iletilen)
        "İlt".casefold(),
        "pārs",  # lv
        "pers",  # lt
        "trs",  # id (terusan)
        "prsl",  # sl
        "πρθ",  # el
        "пер",  # ru
        "转发",  # zh-CN
        "轉寄",  # zh-TW
        "転送",  # ja
        "전달",  # ko
        "הועבר",  # he
        "ilet",  # tr
    }
)
# Tags that gateways put before the real subject; skipped while looking for prefixes.
_TAG_WORDS = frozenset({"ext", "external", "externo", "externa", "caution", "spam", "suspected spam", "extern"})

_BRACKET_TAG = re.compile(r"\s*(?:\[[^\[\]]{0,40}\]|\([^()]{0,40}\)|\*\*?[A-Za-z ]{1,20}\*\*?)\s*")
# A prefix word, an optional counter ("[2]", "(3)", "^2", "2"), optional blanks, a colon
# (ASCII or full-width). Letters only: "R2-D2 falla" has no prefix, "Resolución de..." has no colon.
_PREFIX = re.compile(r"\s*([^\W\d_]{1,12})\s*(?:[\[(]\s*\d{1,3}\s*[\])]|\^\d{1,3})?\s*[:：]")

def _fold(text: str) -> str:
    """Lower-case without accents ("Respuesta automática" → "respuesta automatica")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("\u2019", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Out-of-office subjects (compared without accents, case-insensitively), at the start of the
# subject and followed by the end, a colon, a dash or a bracket — "No funciona la respuesta
# automática de Outlook" is a request, "Respuesta automática: RE: factura" is a robot.
_OUT_OF_OFFICE = (
    # es
    "respuesta automatica",
    "fuera de la oficina",
    "fuera de oficina",
    "ausencia de la oficina",
    "respuesta de ausencia",
    "respuesta automatica de ausencia",
    "mensaje de ausencia",
    "mensaje automatico",
    "ausente",
    "estoy fuera de la oficina",
    "me encuentro fuera de la oficina",
    "de vacaciones",
    # en
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "out of office",
    "out of office autoreply",  # Exchange 2003 and older
    "out of office auto reply",
    "out of the office",
    "out-of-office",
    "ooo",
    "i am out of the office",
    "i'm out of the office",
    "away from the office",
    "on vacation",
    # pt
    "resposta automatica",
    "fora do escritorio",
    "ausencia temporaria",
    "resposta automatica de ausencia",
    "ausente do escritorio",
    # fr
    "reponse automatique",
    "absence du bureau",
    "message d'absence",
    "absent du bureau",
    "reponse automatique d'absence",
    "reponse automatique d'absence du bureau",
    "absence",
    "je suis absent",
    "je suis absente",
    # de
    "abwesenheitsnotiz",
    "automatische antwort",
    "abwesenheit",
    "abwesend",
    "nicht im buro",
    "ich bin nicht im buro",
    # it
    "risposta automatica",
    "fuori sede",
    "fuori ufficio",
    "assente dall'ufficio",
    "assente",
    "sono fuori ufficio",
    # nl
    "automatisch antwoord",
    "afwezig",
    "niet aanwezig",
    "afwezigheidsbericht",
    "afwezigheidsmelding",
    "niet op kantoor",
    # sv, da, no, fi, is
    "autosvar",
    "automatiskt svar",
    "automatisk svar",
    "automatisk besvarelse",
    "fravær",  # da, no: "æ" and "ø" have no accent to fold away
    "fraværende",
    "fraværsmelding",
    "frånvaro",  # written as typed; matched after folding as "franvaro"
    "franvaro",
    "franvarande",
    "ikke til stede",
    "inte pa kontoret",
    "automaattinen vastaus",
    "poissa",
    "poissaoloviesti",
    "lomalla",
    "sjalfvirkt svar",
    # pl, cs, tr, ru
    "odpowiedz automatyczna",
    "automaticka odpoved",
    "otomatik yanit",
    "автоматический ответ",
)
_OOO_PATTERN = re.compile(
    r"^(?:"
    + "|".join(re.escape(_fold(p)) for p in sorted(_OUT_OF_OFFICE, key=len, reverse=True))
    + r")\s*(?:$|[:：\-–—(\[,.])"
)
# Lotus Notes / HCL Domino: "AUTO: Ana Pérez is out of the office (returning 02/04/2024)".
_NOTES_AUTO = re.compile(
    r"^auto\s*:.*\b(?:out of (?:the )?office|fuera de la oficina|ausente|abwesend|absent|assente|afwezig"
    r"|fora do escritorio|returning|regreso|de vuelta)\b"
)
# Delivery-failure subjects of MTAs that do not send multipart/report.
_BOUNCE_PHRASES = (
    # en: Exchange, Gmail, Postfix, Exim, qmail, Sendmail, Lotus Notes
    "undeliverable",
    "undelivered mail returned to sender",
    "delivery status notification",  # Gmail: "(Failure)" and "(Delay)"; both are machine mail
    "mail delivery failed",
    "mail delivery failure",
    "message delivery failure",
    "delivery failure",
    "delivery has failed",
    "delivery notification: delivery has failed",
    "returned mail",
    "failure notice",
    "mail system error",
    "warning: could not send message",
    "delivery delayed",
    # es
    "no se puede entregar",
    "no se pudo entregar",
    "mensaje no entregado",
    "correo no entregado",
    "error de entrega",
    "entrega fallida",
    "correo devuelto",
    "notificacion de estado de entrega",
    "notificacion del estado del envio",
    # pt
    "nao foi possivel entregar",
    "nao e possivel entregar",
    "mensagem nao entregue",
    "falha na entrega",
    # fr
    "non remis",
    "echec de la remise",
    "non distribuable",
    # de
    "unzustellbar",
    "nicht zustellbar",
    "zustellung fehlgeschlagen",
    # it
    "non recapitabile",
    "mancato recapito",
    "impossibile recapitare",
    # nl
    "onbestelbaar",
    "kan niet worden bezorgd",
)
_BOUNCE_SUBJECTS = re.compile(
    r"^(?:" + "|".join(re.escape(p) for p in sorted(_BOUNCE_PHRASES, key=len, reverse=True)) + r")(?!\w)"
)
_BOUNCE_LOCALPARTS = ("mailer-daemon", "postmaster")
_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([\w.-]+)", re.IGNORECASE)
_FALSEY = {"", "no", "false", "0", "off"}


_fold_accents = _fold


def subject_prefixes(subject: str) -> list[str]:
    """The reply/forward/tag prefixes at the start of a subject, in order, as written (upper-cased).

    Skips gateway tags ("[EXT]", "(SPAM)", "EXTERNAL:") between prefixes; stops at the first word
    that is not a known prefix.
    """
    return _scan_prefixes(subject)[0]


def _scan_prefixes(subject: str) -> tuple[list[str], int]:
    """The reply/forward prefixes at the start of ``subject`` and where the real subject begins."""
    found: list[str] = []
    pos = 0
    for _ in range(50):  # a subject with more than 50 prefixes is abuse; stop looking
        tag = _BRACKET_TAG.match(subject, pos)
        if tag and tag.end() > pos:
            pos = tag.end()
            continue
        match = _PREFIX.match(subject, pos)
        if not match:
            break
        word = match.group(1).casefold()
        if word in REPLY_PREFIXES or word in FORWARD_PREFIXES:
            found.append(match.group(1).upper())
        elif word not in _TAG_WORDS:
            break
        pos = match.end()
    return found, pos


def _subject_after_prefixes(subject: str) -> str:
    return subject[_scan_prefixes(subject)[1] :].strip()


def _header(msg: ParsedMessage, name: str) -> str:
    return (msg.headers.get(name) or "").strip()


def classify(msg: ParsedMessage, own_addresses: Iterable[str] = ()) -> Classification:
    """Classify ``msg`` (R6); ``own_addresses`` are the mailbox's own addresses (loop guard)."""
    fired: list[tuple[str, str]] = []  # (kind, signal)

    def fire(kind: str, signal: str) -> None:
        if (kind, signal) not in fired:
            fired.append((kind, signal))

    subject = " ".join(_visible(msg.subject or "").split())
    sender = (msg.sender or "").strip().lower()

    # -- bounces ---------------------------------------------------------------------------------
    content_type = (msg.content_type or "").lower()
    report_type = _REPORT_TYPE.search(_header(msg, "content-type"))
    report = report_type.group(1).lower() if report_type else ""
    if content_type == "multipart/report":
        if report in ("", "delivery-status"):
            fire("bounce", "content-type:multipart/report")
        else:  # read receipts (disposition-notification), abuse feedback: machine mail, not a bounce
            fire("auto_reply", f"content-type:multipart/report;report-type={report}")
    local_part = sender.split("@", 1)[0]
    for name in _BOUNCE_LOCALPARTS:
        if local_part == name or local_part.startswith(name + "+"):
            fire("bounce", f"sender:{name}")
    if _header(msg, "return-path").replace(" ", "") in ("<>", "<<>>"):
        fire("bounce", "return-path:null")
    if _header(msg, "x-failed-recipients"):
        fire("bounce", "header:x-failed-recipients")
    if _BOUNCE_SUBJECTS.match(_fold_accents(_subject_after_prefixes(subject))):
        fire("bounce", "subject:delivery-failure")

    # -- auto-replies ------------------------------------------------------------------------
    auto_submitted = _header(msg, "auto-submitted").split(";", 1)[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        fire("auto_reply", f"header:auto-submitted={auto_submitted}")
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if _header(msg, name).lower() not in _FALSEY:
            fire("auto_reply", f"header:{name}")
    if _header(msg, "x-autogenerated").lower() not in _FALSEY:
        fire("auto_reply", "header:x-autogenerated")
    precedence = _header(msg, "precedence").lower()
    for value in ("auto_reply", "bulk", "junk", "list"):
        if re.search(rf"\b{value}\b", precedence):
            fire("auto_reply", f"header:precedence={value}")
    if "x-auto-response-suppress" in msg.headers:
        fire("auto_reply", "header:x-auto-response-suppress")
    if _header(msg, "x-loop"):
        fire("auto_reply", "header:x-loop")
    if _header(msg, "feedback-type"):
        fire("auto_reply", "header:feedback-type")
    folded_subject = _fold_accents(_strip_leading_tags(subject))
    if _OOO_PATTERN.match(folded_subject) or _NOTES_AUTO.match(folded_subject):
        fire("auto_reply", "subject:out-of-office")
    own = {address.strip().lower() for address in own_addresses if address}
    if sender and sender in own:
        fire("auto_reply", "sender:own-address")

    # -- replies and forwards ----------------------------------------------------------------
    if _header(msg, "in-reply-to"):
        fire("reply", "header:in-reply-to")
    if _header(msg, "references"):
        fire("reply", "header:references")
    for prefix in subject_prefixes(subject):
        word = prefix.casefold()
        if word in REPLY_PREFIXES:
            fire("reply", f"subject-prefix:{prefix}")
        elif word in FORWARD_PREFIXES:
            fire("forward", f"subject-prefix:{prefix}")
    if _header(msg, "x-forwarded-message-id"):
        fire("forward", "header:x-forwarded-message-id")

    kinds = {kind for kind, _ in fired}
    kind = next((k for k in KINDS if k in kinds), "new")
    return Classification(kind=kind, signals=tuple(signal for _, signal in fired))


def _visible(text: str) -> str:
    """Drop invisible format characters (zero-width space, BOM...) that hide a prefix."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _strip_leading_tags(subject: str) -> str:
    pos = 0
    while True:
        tag = _BRACKET_TAG.match(subject, pos)
        if not tag or tag.end() == pos:
            return subject[pos:]
        pos = tag.end()
