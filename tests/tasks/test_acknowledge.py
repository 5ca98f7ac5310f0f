"""R12 / issue 5 §1-2: who gets an acknowledgement, what it says, and how it threads — never a loop."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from tasks.acknowledge import (
    DEFAULT_TEMPLATE_DIR,
    MAX_REFERENCES,
    AckDecision,
    AckPolicy,
    TemplateError,
    build_reply,
    decide_ack,
    format_received,
    is_our_message_id,
    new_message_id,
    normalise_language,
    render,
    request_link,
)
from tasks.classify import classify
from tasks.parse import parse_message

POLICY = AckPolicy(
    mailbox_address="Soporte@Cliente.test",
    own_addresses=("Notificaciones@cliente.test",),
    max_per_sender_per_hour=5,
)
NOTICE_ON = AckPolicy(
    mailbox_address="soporte@cliente.test", own_addresses=("notificaciones@cliente.test",), notify_unknown_senders=True
)
CORPUS = Path(__file__).resolve().parent.parent / "corpus"
RECEIVED = datetime(2024, 3, 12, 14, 5, tzinfo=UTC)  # 9:05 a. m. in Bogotá


def decide(policy: AckPolicy = POLICY, **overrides) -> AckDecision:
    args = {
        "outcome": "created",
        "reason": None,
        "kind": "new",
        "sender": "ana.quinonez@cliente.test",
        "headers": {},
        "policy": policy,
        "sent_last_hour_to_sender": 0,
        "unknown_notices_today_to_sender": 0,
    }
    return decide_ack(**(args | overrides))


# ----------------------------------------------------------------------------- decide_ack


def test_a_created_request_gets_one_acknowledgement() -> None:
    assert decide() == AckDecision(True, "ack", "created")


def test_policy_normalises_own_addresses_and_always_includes_the_mailbox() -> None:
    assert POLICY.mailbox_address == "soporte@cliente.test"
    assert POLICY.own_addresses == ("soporte@cliente.test", "notificaciones@cliente.test")


# Every way a message may look like machine mail, a list, ourselves or a conversation.
EXCLUSIONS = [
    ({"sender": None}, "sender:missing"),
    ({"sender": "   "}, "sender:missing"),
    ({"sender": "not an address"}, "sender:invalid"),
    ({"sender": "ana@cliente.test\r\nBcc: x@y.test"}, "sender:invalid"),
    ({"sender": "SOPORTE@cliente.test"}, "sender:own-address"),
    ({"sender": "notificaciones@cliente.test"}, "sender:own-address"),
    ({"headers": {"X-Helppeople-Ack": "1234"}}, "ours:x-helppeople-ack"),
    ({"headers": {"Message-ID": "<helppeople-ack.0a1b2c@cliente.test>"}}, "ours:message-id"),
    ({"sender": "MAILER-DAEMON@mx.cliente.test"}, "sender:robot"),
    ({"sender": "postmaster@cliente.test"}, "sender:robot"),
    ({"sender": "no-reply@proveedor.test"}, "sender:robot"),
    ({"sender": "noreply@proveedor.test"}, "sender:robot"),
    ({"sender": "donotreply@proveedor.test"}, "sender:robot"),
    ({"sender": "bounces+srs=abc@lists.test"}, "sender:robot"),
    ({"kind": "bounce"}, "kind:bounce"),
    ({"kind": "auto_reply"}, "kind:auto_reply"),
    ({"headers": {"Return-Path": "<>"}}, "header:return-path-null"),
    ({"headers": {"Content-Type": "multipart/report; report-type=delivery-status"}},
     "header:content-type=multipart/report"),
    ({"headers": {"Auto-Submitted": "auto-replied"}}, "header:auto-submitted=auto-replied"),
    ({"headers": {"auto-submitted": "Auto-Generated; owner-email=x@y.test"}}, "header:auto-submitted=auto-generated"),
    ({"headers": {"Precedence": "bulk"}}, "header:precedence=bulk"),
    ({"headers": {"Precedence": "junk"}}, "header:precedence=junk"),
    ({"headers": {"Precedence": "list"}}, "header:precedence=list"),
    ({"headers": {"Precedence": "auto_reply"}}, "header:precedence=auto_reply"),
    ({"headers": {"X-Auto-Response-Suppress": "All"}}, "header:x-auto-response-suppress"),
    ({"headers": {"X-Autoreply": "yes"}}, "header:x-autoreply"),
    ({"headers": {"X-Autorespond": "vacation"}}, "header:x-autorespond"),
    ({"headers": {"X-Loop": "soporte@cliente.test"}}, "header:x-loop"),
    ({"headers": {"Feedback-Type": "abuse"}}, "header:feedback-type"),
    ({"headers": {"X-Failed-Recipients": "ana@cliente.test"}}, "header:x-failed-recipients"),
    ({"headers": {"List-Id": "<soporte.lists.cliente.test>"}}, "header:list-id"),
    ({"headers": {"List-Unsubscribe": "<mailto:unsub@lists.test>"}}, "header:list-unsubscribe"),
    ({"kind": "reply"}, "kind:reply"),
    ({"kind": "forward"}, "kind:forward"),
    ({"kind": None, "headers": {"In-Reply-To": "<a@b.test>"}}, "header:in-reply-to"),
    ({"kind": None, "headers": {"References": "<a@b.test>"}}, "header:references"),
    ({"kind": None, "headers": {"X-Forwarded-Message-Id": "<a@b.test>"}}, "header:x-forwarded-message-id"),
]


@pytest.mark.parametrize(("overrides", "why"), EXCLUSIONS, ids=[why for _, why in EXCLUSIONS])
def test_no_acknowledgement_for_machine_mail_lists_ourselves_and_conversations(overrides: dict, why: str) -> None:
    assert decide(**overrides) == AckDecision(False, None, why)


@pytest.mark.parametrize(("overrides", "why"), EXCLUSIONS, ids=[why for _, why in EXCLUSIONS])
def test_the_loop_guards_also_stop_the_unknown_sender_notice(overrides: dict, why: str) -> None:
    decision = decide(NOTICE_ON, **({"outcome": "rejected", "reason": "unknown_sender"} | overrides))
    assert decision == AckDecision(False, None, why)


@pytest.mark.parametrize(
    ("outcome", "reason", "why"),
    [
        ("rejected", "missing_body", "outcome:rejected:missing_body"),
        ("rejected", "not_addressed_to_mailbox", "outcome:rejected:not_addressed_to_mailbox"),
        ("rejected", "helpdesk_validation", "outcome:rejected:helpdesk_validation"),
        ("failed", "helpdesk_unavailable", "outcome:failed:helpdesk_unavailable"),
        ("quarantined", "unparseable", "outcome:quarantined:unparseable"),
        ("already_created", None, "outcome:already_created"),
        ("pending", None, "outcome:pending"),
    ],
)
def test_no_acknowledgement_when_no_request_was_created(outcome: str, reason: str | None, why: str) -> None:
    assert decide(outcome=outcome, reason=reason) == AckDecision(False, None, why)
    # The polite notice is only for unknown senders, never for other refusals.
    assert decide(NOTICE_ON, outcome=outcome, reason=reason) == AckDecision(False, None, why)


@pytest.mark.parametrize(
    "headers",
    [{"Auto-Submitted": "no"}, {"X-Autoreply": "no"}, {"Precedence": "normal"}, {"X-Loop": ""}],
)
def test_headers_that_say_not_automatic_do_not_block(headers: dict) -> None:
    assert decide(headers=headers).send


def test_rate_limit_per_sender_per_hour() -> None:
    assert decide(sent_last_hour_to_sender=4).send
    assert decide(sent_last_hour_to_sender=5) == AckDecision(False, None, "rate_limit:5_per_hour")
    assert decide(sent_last_hour_to_sender=50) == AckDecision(False, None, "rate_limit:5_per_hour")
    never = AckPolicy(mailbox_address="soporte@cliente.test", max_per_sender_per_hour=0)
    assert decide(never) == AckDecision(False, None, "rate_limit:0_per_hour")


def test_unknown_sender_gets_no_notice_by_default() -> None:
    decision = decide(outcome="rejected", reason="unknown_sender")
    assert decision == AckDecision(False, None, "unknown_sender:notice_off")


def test_unknown_sender_notice_at_most_once_per_day_and_within_the_rate_limit() -> None:
    first = decide(NOTICE_ON, outcome="rejected", reason="unknown_sender", sender="desconocido@otro.test")
    assert first == AckDecision(True, "unknown_sender", "unknown_sender:notice")
    again = decide(NOTICE_ON, outcome="rejected", reason="unknown_sender", unknown_notices_today_to_sender=1)
    assert again == AckDecision(False, None, "unknown_sender:notice_sent_today")
    busy = decide(NOTICE_ON, outcome="rejected", reason="unknown_sender", sent_last_hour_to_sender=5)
    assert busy == AckDecision(False, None, "rate_limit:5_per_hour")


def test_our_own_acknowledgement_coming_back_is_never_answered() -> None:
    """The message we send, delivered back to us (a forwarding rule, a misconfigured alias)."""
    raw = _reply()
    msg = parse_message(raw)
    kind = classify(msg, own_addresses=POLICY.own_addresses)
    assert kind.kind == "auto_reply"  # R6 already refuses it…
    headers = dict(msg.headers) | {"message-id": msg.message_id or ""}
    for sender in (msg.sender, "ana.quinonez@cliente.test"):  # …and even from a foreign From, with no kind:
        decision = decide(sender=sender, kind=None, headers=headers)
        assert not decision.send, decision
    # With only our marker headers left (a gateway stripped Auto-Submitted), it is still ours.
    assert decide(headers={"x-helppeople-ack": "1234"}).why == "ours:x-helppeople-ack"
    assert decide(headers={"message-id": msg.message_id}).why == "ours:message-id"


def _corpus_cases() -> list[Path]:
    return sorted(CORPUS.glob("*.eml"))


def test_no_corpus_message_that_is_not_new_mail_would_ever_be_acknowledged() -> None:
    """Even if the pipeline wrongly created a request for it: the ack rules re-check what they can.

    With R6's kind, every non-new message is refused. Without it (or with a wrong "new"), every
    message that R6 recognised by a header or by its sender is still refused; only the signals
    that live in the subject alone (a prefix, an out-of-office phrase) need the kind.
    """
    checked = 0
    for path in _corpus_cases():
        expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
        if expected.get("kind") in (None, "new"):
            continue
        msg = parse_message(path.read_bytes())
        own = tuple(expected.get("own_addresses", ()))
        kind = classify(msg, own_addresses=own)
        headers = dict(msg.headers) | {"message-id": msg.message_id or ""}
        policy = AckPolicy(mailbox_address="soporte@cliente.com.co", own_addresses=own)
        assert not decide(policy, kind=kind.kind, sender=msg.sender, headers=headers).send, path.name
        if any(not signal.startswith("subject") for signal in kind.signals):
            for wrong in (None, "new"):
                decision = decide(policy, kind=wrong, sender=msg.sender, headers=headers)
                assert not decision.send, f"{path.name} (kind {wrong}, signals {kind.signals}): {decision}"
        checked += 1
    assert checked >= 20


# ----------------------------------------------------------------------------- render


def test_spanish_acknowledgement_renders_with_accents_number_date_and_link() -> None:
    subject, body = render(
        DEFAULT_TEMPLATE_DIR, "ack", "es",
        number=1234, title="Impresión de facturas en el área de cartera", received_at=RECEIVED,
        timezone="America/Bogota", link="https://helpdesk.cliente.test/requests/1234",
        sender_name="José Peña", mailbox_address="soporte@cliente.test",
    )  # fmt: skip
    assert subject == "Solicitud No. 1234: Impresión de facturas en el área de cartera"
    assert body.startswith("Señor(a) José Peña:\n\nCordial saludo.\n")
    assert "Su solicitud fue creada con el número 1234." in body
    assert "Recibida: 12 de marzo de 2024, 9:05 a. m. (UTC-05:00)" in body
    assert "Puede consultar su estado en: https://helpdesk.cliente.test/requests/1234" in body
    assert "automático" in body and "$" not in body
    assert body.endswith("soporte@cliente.test\n")


def test_without_link_or_name_those_lines_are_left_out_cleanly() -> None:
    _, body = render(DEFAULT_TEMPLATE_DIR, "ack", "es", number=7, title="Clave bloqueada", received_at=RECEIVED)
    assert "Puede consultar" not in body and "Señor(a)" not in body
    assert body.startswith("Cordial saludo.\n")
    assert "\n\n\n" not in body
    assert "mailbox_address" not in body and "$" not in body


def test_english_acknowledgement() -> None:
    subject, body = render(
        DEFAULT_TEMPLATE_DIR, "ack", "en", number=88, title="Printer", received_at=RECEIVED,
        timezone="America/Bogota", sender_name="Zoë", link=None,
    )  # fmt: skip
    assert subject == "Request No. 88: Printer"
    assert body.startswith("Dear Zoë,\n")
    assert "Your request has been created with number 88." in body
    assert "Received: March 12, 2024, 9:05 AM (UTC-05:00)" in body
    assert "follow it at" not in body


@pytest.mark.parametrize(("language", "expected"), [("fr", "es"), ("", "es"), (None, "es"), ("es-CO", "es"),
                                                    ("EN-us", "en"), ("en_GB", "en")])  # fmt: skip
def test_language_falls_back_to_spanish(language, expected) -> None:
    assert normalise_language(language) == expected
    subject, _ = render(DEFAULT_TEMPLATE_DIR, "ack", language, number=1, title="T", received_at=RECEIVED)
    assert subject.startswith("Solicitud" if expected == "es" else "Request")


@pytest.mark.parametrize("language", ["es", "en"])
def test_unknown_sender_notice_renders(language: str) -> None:
    subject, body = render(
        DEFAULT_TEMPLATE_DIR, "unknown_sender", language, received_at=RECEIVED, timezone="America/Bogota",
        sender_address="desconocido@otro.test", original_subject="Ayuda con la contraseña",
        sender_name=None, mailbox_address="soporte@cliente.test",
    )  # fmt: skip
    assert subject
    assert "desconocido@otro.test" in body and "Ayuda con la contraseña" in body
    assert "$" not in body
    assert ("registrada como usuario" in body) if language == "es" else ("not registered as a user" in body)


def test_shipped_templates_are_utf8_with_subject_line_and_known_fields_only() -> None:
    for path in sorted(DEFAULT_TEMPLATE_DIR.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("Subject: "), path.name
        assert text.split("\n")[1] == "", f"{path.name}: a blank line must follow the subject"
    names = {p.name for p in DEFAULT_TEMPLATE_DIR.glob("*.txt")}
    assert {"ack.es.txt", "ack.en.txt", "unknown_sender.es.txt", "unknown_sender.en.txt"} <= names


def test_received_date_is_in_the_mailbox_time_zone_across_midnight() -> None:
    late = datetime(2024, 3, 13, 3, 30, tzinfo=UTC)  # still 12 March in Bogotá
    assert format_received(late, "es", "America/Bogota") == "12 de marzo de 2024, 10:30 p. m. (UTC-05:00)"
    assert format_received(late, "en", "UTC") == "March 13, 2024, 3:30 AM (UTC)"
    assert format_received(datetime(2024, 1, 5, 12, 0), "es") == "5 de enero de 2024, 12:00 p. m. (UTC)"


def test_custom_templates_values_are_text_not_template(tmp_path: Path) -> None:
    (tmp_path / "ack.es.txt").write_text(
        "Subject: [$number] $title\n\nCosto: $$10\nTítulo: ${title}\nEnlace: $link\nFin\n", encoding="utf-8"
    )
    subject, body = render(tmp_path, "ack", "en", number=5, title="Pago de $number\r\nBcc: x@y ${link}", link=None)
    assert subject == "[5] Pago de $number Bcc: x@y ${link}"  # a field is never substituted again, nor multi-line
    assert body == "Costo: $10\nTítulo: Pago de $number Bcc: x@y ${link}\nFin\n"  # en → missing → es file


def test_template_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "ack.es.txt").write_text("Subject: $numbr\n\nHola\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"ack\.es\.txt.*\$numbr"):
        render(tmp_path, "ack", "es", number=1)
    (tmp_path / "ack.es.txt").write_text("Hola $number\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="first line must be 'Subject"):
        render(tmp_path, "ack", "es", number=1)
    (tmp_path / "ack.es.txt").write_bytes("Subject: Señal\n\ná\n".encode("latin-1"))
    with pytest.raises(TemplateError, match="not UTF-8"):
        render(tmp_path, "ack", "es", number=1)
    with pytest.raises(TemplateError, match="not found"):
        render(tmp_path, "unknown_sender", "es")
    with pytest.raises(TemplateError, match="not a template name"):
        render(tmp_path, "../../etc/passwd", "es")


def test_request_link() -> None:
    assert request_link("https://hd/requests/{number}", 12) == "https://hd/requests/12"
    assert request_link("https://hd/r/{id}?n={number}", 12, "abc") == "https://hd/r/abc?n=12"
    assert request_link(None, 12) is None
    assert request_link("https://hd/requests/{number}", None) is None


# ----------------------------------------------------------------------------- build_reply


def _reply(**overrides) -> bytes:
    args = {
        "original_message_id": "<CAF=orig-1@mail.gmail.com>",
        "original_references": "<root-0@cliente.test> <CAF=orig-1@mail.gmail.com>",
        "original_subject": "No puedo imprimir",
        "from_address": "soporte@cliente.test",
        "from_name": "Mesa de Servicio — Cliente",
        "to_address": "ana.quinonez@cliente.test",
        "subject": "Solicitud No. 1234: No puedo imprimir",
        "body": "Cordial saludo, José.\n\nSu solicitud fue creada con el número 1234.\nÁrea: facturación ñ\n",
        "message_id_domain": "cliente.test",
        "request_number": 1234,
    }
    return build_reply(**(args | overrides))


def _parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def test_reply_threads_under_the_original_and_says_it_is_automatic() -> None:
    raw = _reply()
    msg = _parse(raw)
    assert msg["In-Reply-To"] == "<CAF=orig-1@mail.gmail.com>"
    assert msg["References"] == "<root-0@cliente.test> <CAF=orig-1@mail.gmail.com>"  # the parent once, last
    assert msg["Subject"] == "Re: Solicitud No. 1234: No puedo imprimir"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Precedence"] == "auto_reply"
    assert msg["X-Helppeople-Ack"] == "1234"
    assert msg["To"] == "ana.quinonez@cliente.test"
    assert msg["From"].addresses[0].display_name == "Mesa de Servicio — Cliente"
    assert msg["From"].addresses[0].addr_spec == "soporte@cliente.test"
    assert msg["Date"].datetime.tzinfo is not None
    assert msg["Message-ID"].endswith("@cliente.test>") and is_our_message_id(msg["Message-ID"])
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    text = msg.get_content().replace("\r\n", "\n")
    assert text == "Cordial saludo, José.\n\nSu solicitud fue creada con el número 1234.\nÁrea: facturación ñ\n"
    assert raw.isascii(), "7-bit on the wire: quoted-printable body, RFC 2047 headers"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_subject_gets_one_re_prefix_and_defaults_to_the_original() -> None:
    assert _parse(_reply(subject=""))["Subject"] == "Re: No puedo imprimir"
    assert _parse(_reply(subject="RE: Solicitud 5"))["Subject"] == "RE: Solicitud 5"
    assert _parse(_reply(subject="Línea\r\nBcc: x@y.test"))["Subject"] == "Re: Línea Bcc: x@y.test"
    assert _parse(_reply(subject="", original_subject=""))["Subject"] == "Re:"


def test_a_message_without_message_id_gets_no_threading_headers() -> None:
    msg = _parse(_reply(original_message_id=None, original_references=None))
    assert msg["In-Reply-To"] is None and msg["References"] is None
    msg = _parse(_reply(original_message_id="garbage without brackets", original_references=None))
    assert msg["In-Reply-To"] is None


def test_long_message_ids_are_folded_never_encoded() -> None:
    long_id = "<" + "A" * 120 + "@namprd02.prod.outlook.com>"
    refs = " ".join(f"<r{i}@x.test>" for i in range(40))
    raw = _reply(original_message_id=long_id, original_references=refs)
    assert long_id.encode() in raw and b"=?utf-8?" not in raw.split(b"\r\n\r\n")[0].split(b"References")[1][:500]
    ids = _parse(raw)["References"].split()
    assert len(ids) == MAX_REFERENCES
    assert ids[0] == "<r0@x.test>" and ids[-1] == long_id  # the thread's root and the latest ones are kept


def test_notice_marker_and_fresh_message_ids() -> None:
    assert _parse(_reply(request_number=None))["X-Helppeople-Ack"] == "notice"
    assert _parse(_reply())["Message-ID"] != _parse(_reply())["Message-ID"]
    assert is_our_message_id(new_message_id("Cliente.Test"))
    assert not is_our_message_id("<helppeople@cliente.test>") and not is_our_message_id(None)
    with pytest.raises(ValueError, match="domain"):
        new_message_id("bad domain>")


def test_acknowledge_is_pure() -> None:
    code = (
        "import sys, tasks.acknowledge\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))[:5]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
