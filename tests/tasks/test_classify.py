"""R6: only new mail becomes a request; replies, forwards, auto-replies and bounces never do."""

from __future__ import annotations

import pytest

from tasks.classify import classify, subject_prefixes
from tasks.model import ParsedMessage


def message(
    subject: str = "Impresora no imprime",
    *,
    sender: str | None = "ana@cliente.com.co",
    headers: dict[str, str] | None = None,
    content_type: str = "text/plain",
) -> ParsedMessage:
    return ParsedMessage(
        key="k",
        message_id="<m@x>",
        date=None,
        sender=sender,
        sender_name="",
        recipients=["soporte@cliente.com.co"],
        subject=subject,
        text_body="Hola",
        html_body=None,
        attachments=[],
        headers=headers or {},
        content_type=content_type,
        size=100,
    )


def test_plain_new_message_is_new_with_no_signals() -> None:
    assert classify(message()).kind == "new"
    assert classify(message()).signals == ()


# -- replies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "prefix"),
    [
        ("RE: Impresora", "RE"),
        ("Re: impresora", "RE"),
        ("AW: Drucker", "AW"),
        ("SV: Skrivare", "SV"),
        ("ANTW: Printer", "ANTW"),
        ("Antw: printer", "ANTW"),
        ("RIF: Stampante", "RIF"),
        ("R: Stampante", "R"),
        ("RES: Impressora", "RES"),
        ("Odp: Drukarka", "ODP"),
        ("VS: Tulostin", "VS"),
        ("YNT: Yazıcı", "YNT"),
        ("Rta: impresora", "RTA"),
        ("回复: 打印机", "回复"),
        ("ΑΠ: Εκτυπωτής", "ΑΠ"),
    ],
)
def test_reply_prefixes_in_many_languages_are_replies(subject: str, prefix: str) -> None:
    result = classify(message(subject))
    assert result.kind == "reply"
    assert f"subject-prefix:{prefix}" in result.signals


@pytest.mark.parametrize(
    "subject",
    [
        "Re[2]: Error VPN",
        "RE: RE: Error VPN",
        "[EXT] RE: Error VPN",
        "Re : Error VPN",
        "RE：Error VPN",
        "Re(3): x",
        "Re^2: x",
    ],
)
def test_counted_repeated_bracketed_and_spaced_reply_prefixes_are_replies(subject: str) -> None:
    assert classify(message(subject)).kind == "reply"


def test_reply_with_in_reply_to_header_is_a_reply_even_without_prefix() -> None:
    result = classify(message("Impresora", headers={"in-reply-to": "<a@b>"}))
    assert (result.kind, result.signals) == ("reply", ("header:in-reply-to",))


def test_reply_with_references_header_is_a_reply() -> None:
    assert classify(message(headers={"references": "<a@b> <c@d>"})).signals == ("header:references",)


# -- forwards ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "prefix"),
    [
        ("RV: Factura", "RV"),
        ("FW: Invoice", "FW"),
        ("Fwd: Invoice", "FWD"),
        ("ENC: Fatura", "ENC"),
        ("WG: Rechnung", "WG"),
        ("TR: Facture", "TR"),
        ("TR : Facture", "TR"),
        ("I: Fattura", "I"),
        ("VL: Lasku", "VL"),
        ("Doorst: Factuur", "DOORST"),
        ("[EXTERNAL] Fw: Invoice", "FW"),
    ],
)
def test_forward_prefixes_in_many_languages_are_forwards(subject: str, prefix: str) -> None:
    result = classify(message(subject))
    assert result.kind == "forward"
    assert result.signals == (f"subject-prefix:{prefix}",)


def test_reply_with_rv_prefix_is_a_forward() -> None:
    assert classify(message("RV: Solicitud de acceso")).kind == "forward"


def test_forwarded_reply_counts_as_reply_by_precedence() -> None:
    result = classify(message("Fwd: RE: Contrato"))
    assert result.kind == "reply"
    assert result.signals == ("subject-prefix:FWD", "subject-prefix:RE")


# -- look-alikes that are new mail -----------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "Resolución de incidencias en el portal",
        "R2-D2 falla",
        "Reinstalar Office",
        "Revisión: equipo lento",
        "Fwdaccess al portal",
        "Reenvío de facturas no funciona",
        "RE-instalación del antivirus",
        "No funciona la respuesta automática de Outlook",
        "Configurar mensaje de fuera de la oficina",
        "Solicitud de vacaciones",
        "Iván necesita acceso",
        "[Ticket#123] Pantalla azul",
        "Re",
        "",
    ],
)
def test_words_that_look_like_prefixes_are_new_mail(subject: str) -> None:
    assert classify(message(subject)).kind == "new", classify(message(subject)).signals


def test_prefix_hidden_behind_a_zero_width_space_is_still_found() -> None:
    assert classify(message("\u200bRE: Impresora")).kind == "reply"


def test_subject_prefixes_lists_every_prefix_in_order() -> None:
    assert subject_prefixes("[EXT] RE: FW: Re[2]: Hola") == ["RE", "FW", "RE"]
    assert subject_prefixes("Hola RE: no") == []


# -- auto-replies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "signal"),
    [
        ({"auto-submitted": "auto-replied"}, "header:auto-submitted=auto-replied"),
        ({"auto-submitted": "auto-generated; type=vacation"}, "header:auto-submitted=auto-generated"),
        ({"x-autoreply": "yes"}, "header:x-autoreply"),
        ({"x-autorespond": "Vacation"}, "header:x-autorespond"),
        ({"precedence": "auto_reply"}, "header:precedence=auto_reply"),
        ({"precedence": "bulk"}, "header:precedence=bulk"),
        ({"precedence": "junk"}, "header:precedence=junk"),
        ({"precedence": "list"}, "header:precedence=list"),
        ({"x-auto-response-suppress": "All"}, "header:x-auto-response-suppress"),
        ({"x-auto-response-suppress": ""}, "header:x-auto-response-suppress"),
        ({"x-loop": "soporte@cliente.com.co"}, "header:x-loop"),
    ],
)
def test_auto_reply_headers_make_an_auto_reply(headers: dict[str, str], signal: str) -> None:
    result = classify(message(headers=headers))
    assert result.kind == "auto_reply"
    assert signal in result.signals


def test_auto_submitted_no_is_a_person() -> None:
    assert classify(message(headers={"auto-submitted": "no"})).kind == "new"


@pytest.mark.parametrize(
    "subject",
    [
        "Respuesta automática: Impresora no imprime",
        "Respuesta automatica: Impresora",
        "Fuera de la oficina",
        "Fuera de la oficina: RE: Impresora",
        "Automatic reply: Printer",
        "Out of Office: Printer",
        "Out of office",
        "Resposta automática: Impressora",
        "Réponse automatique : Imprimante",
        "Abwesenheitsnotiz: Drucker",
        "Risposta automatica: Stampante",
        "Automatisch antwoord: Printer",
        "Autosvar: Skrivare",
        "[EXT] Out of Office - hasta el lunes",
    ],
)
def test_out_of_office_subjects_in_several_languages_are_auto_replies(subject: str) -> None:
    result = classify(message(subject))
    assert result.kind == "auto_reply"
    assert "subject:out-of-office" in result.signals


def test_mail_from_our_own_mailbox_is_an_auto_reply_loop_guard() -> None:
    result = classify(message(sender="soporte@cliente.com.co"), own_addresses=["Soporte@Cliente.com.co"])
    assert (result.kind, result.signals) == ("auto_reply", ("sender:own-address",))


def test_read_receipt_report_is_an_auto_reply_not_a_bounce() -> None:
    msg = message(
        "Leído: Impresora",
        content_type="multipart/report",
        headers={"content-type": "multipart/report; report-type=disposition-notification; boundary=x"},
    )
    assert classify(msg).kind == "auto_reply"


# -- bounces ----------------------------------------------------------------------------------


def test_delivery_status_report_is_a_bounce() -> None:
    msg = message(
        "Undeliverable: Impresora",
        content_type="multipart/report",
        headers={"content-type": "multipart/report; report-type=delivery-status; boundary=x"},
    )
    result = classify(msg)
    assert result.kind == "bounce"
    assert "content-type:multipart/report" in result.signals
    assert "subject:delivery-failure" in result.signals


@pytest.mark.parametrize(
    ("sender", "signal"),
    [("MAILER-DAEMON@mx.cliente.com.co", "sender:mailer-daemon"), ("postmaster@cliente.com.co", "sender:postmaster")],
)
def test_mailer_daemon_and_postmaster_senders_are_bounces(sender: str, signal: str) -> None:
    result = classify(message(sender=sender.lower()))
    assert (result.kind, result.signals) == ("bounce", (signal,))


def test_null_return_path_is_a_bounce() -> None:
    assert classify(message(headers={"return-path": "<>"})).signals == ("return-path:null",)


def test_bounce_wins_over_auto_reply_and_reply() -> None:
    msg = message(
        "RE: Respuesta automática",
        sender="mailer-daemon@x.co",
        headers={"auto-submitted": "auto-replied", "in-reply-to": "<a@b>"},
    )
    result = classify(msg)
    assert result.kind == "bounce"
    assert {"sender:mailer-daemon", "header:auto-submitted=auto-replied", "header:in-reply-to"} <= set(result.signals)


def test_auto_reply_wins_over_reply() -> None:
    result = classify(message("RE: Impresora", headers={"auto-submitted": "auto-replied"}))
    assert result.kind == "auto_reply"
    assert "subject-prefix:RE" in result.signals


def test_missing_sender_and_subject_do_not_break_classification() -> None:
    assert classify(message("", sender=None)).kind == "new"


# -- the issue's list, language by language (issue 4) ---------------------------------------


@pytest.mark.parametrize(
    ("subject", "kind", "prefix"),
    [
        # Spanish
        ("RE: Falla en nómina", "reply", "RE"),
        ("RV: Falla en nómina", "forward", "RV"),
        ("Rta: Falla en nómina", "reply", "RTA"),
        ("RPTA: Falla en nómina", "reply", "RPTA"),
        ("Resp: Falla en nómina", "reply", "RESP"),
        ("ENC: Falla en nómina", "forward", "ENC"),
        # English
        ("Re: Payroll", "reply", "RE"),
        ("FW: Payroll", "forward", "FW"),
        ("Fwd: Payroll", "forward", "FWD"),
        # Portuguese
        ("RES: Folha de pagamento", "reply", "RES"),
        ("ENC: Folha de pagamento", "forward", "ENC"),
        # French
        ("RE : Paie", "reply", "RE"),
        ("TR : Paie", "forward", "TR"),
        # German
        ("AW: Gehaltsabrechnung", "reply", "AW"),
        ("WG: Gehaltsabrechnung", "forward", "WG"),
        ("Antw: Gehaltsabrechnung", "reply", "ANTW"),
        # Italian
        ("R: Busta paga", "reply", "R"),
        ("RIF: Busta paga", "reply", "RIF"),
        ("I: Busta paga", "forward", "I"),
        # Dutch
        ("Antw: Salaris", "reply", "ANTW"),
        ("Doorst: Salaris", "forward", "DOORST"),
        # Nordic: Swedish, Danish, Norwegian, Finnish, Icelandic
        ("SV: Lön", "reply", "SV"),
        ("VB: Lön", "forward", "VB"),
        ("Vs: Løn", "reply", "VS"),
        ("VL: Palkka", "forward", "VL"),
        ("FS: Laun", "forward", "FS"),
    ],
)
def test_each_language_of_the_issue_has_its_reply_and_forward_prefixes(subject: str, kind: str, prefix: str) -> None:
    result = classify(message(subject))
    assert result.kind == kind
    assert f"subject-prefix:{prefix}" in result.signals


@pytest.mark.parametrize(
    ("subject", "prefixes"),
    [
        ("Re[2]: Error VPN", ["RE"]),
        ("RE[3]: RV: Error VPN", ["RE", "RV"]),
        ("[EXT] RE: Error VPN", ["RE"]),
        ("[EXTERNAL] [SPAM] Fwd: Error VPN", ["FWD"]),
        ("[Externo] RV: RE: Error VPN", ["RV", "RE"]),
        ("EXTERNAL: RE: Error VPN", ["RE"]),
        ("*EXTERNAL* RE: Error VPN", ["RE"]),
        ("(EXT) AW: WG: Fehler", ["AW", "WG"]),
        ("RE:RE:RE: Error VPN", ["RE", "RE", "RE"]),
        ("Re(2): Error VPN", ["RE"]),
        ("Ｒｅ： Error VPN", []),  # full-width letters are not a prefix any client writes
    ],
)
def test_counted_bracketed_and_repeated_prefixes_are_all_read(subject: str, prefixes: list[str]) -> None:
    assert subject_prefixes(subject) == prefixes


@pytest.mark.parametrize(
    "subject",
    [
        # Spanish
        "Respuesta automática: Falla en nómina",
        "Respuesta automática de ausencia: Falla en nómina",
        "Fuera de la oficina: Falla en nómina",
        "Fuera de oficina",
        "Ausente: Falla en nómina",
        "Estoy fuera de la oficina",
        # English
        "Automatic reply: Payroll",
        "Auto-Reply: Payroll",
        "AutoReply: Payroll",
        "Out of Office AutoReply: Payroll",
        "Out of Office: Payroll",
        "I am out of the office",
        "On vacation - back on Monday",
        # Portuguese
        "Resposta automática: Folha",
        "Ausente do escritório",
        # French
        "Réponse automatique : Paie",
        "Réponse automatique d'absence du bureau",
        "Absent du bureau",
        # German
        "Abwesenheitsnotiz: Gehalt",
        "Automatische Antwort: Gehalt",
        "Abwesend: Gehalt",
        # Italian
        "Risposta automatica: Busta paga",
        "Fuori ufficio: Busta paga",
        # Dutch
        "Automatisch antwoord: Salaris",
        "Afwezig: Salaris",
        "Niet op kantoor",
        # Nordic
        "Autosvar: Lön",
        "Automatiskt svar: Lön",
        "Fravær: Løn",
        "Frånvaro: Lön",
        "Automaattinen vastaus: Palkka",
        "Sjálfvirkt svar: Laun",
        # Lotus Notes / Domino
        "AUTO: Ana Pérez is out of the office (returning 02/04/2024)",
        "AUTO: Ana Pérez está fuera de la oficina (regreso el 02/04/2024)",
        # behind a gateway tag
        "[EXT] Respuesta automática: Falla en nómina",
    ],
)
def test_out_of_office_subjects_of_the_issue_are_auto_replies(subject: str) -> None:
    result = classify(message(subject))
    assert result.kind == "auto_reply", result.signals
    assert "subject:out-of-office" in result.signals


@pytest.mark.parametrize(
    "subject",
    [
        "Auto: el carro de la empresa no enciende",
        "Ausentismo del personal: reporte",
        "Absences report for March",
        "Respuesta automática de Outlook no funciona",
        "Vacaciones de Juan: aprobar",
        "Ref: contrato 4432 mal facturado",
    ],
)
def test_requests_about_these_topics_are_still_new(subject: str) -> None:
    assert classify(message(subject)).kind == "new", classify(message(subject)).signals


@pytest.mark.parametrize(
    "subject",
    [
        "Undeliverable: Falla en nómina",
        "No se puede entregar: Falla en nómina",
        "Delivery Status Notification (Failure)",
        "Delivery Status Notification (Delay)",
        "Undelivered Mail Returned to Sender",
        "failure notice",
        "Mail delivery failed: returning message to sender",
        "Returned mail: see transcript for details",
        "Notificación de estado de entrega (error)",
        "Mensaje no entregado: Falla",
        "Não é possível entregar: Folha",
        "Non remis : Paie",
        "Unzustellbar: Gehalt",
        "Non recapitabile: Busta paga",
        "Onbestelbaar: Salaris",
    ],
)
def test_delivery_failure_subjects_are_bounces_even_without_dsn_headers(subject: str) -> None:
    result = classify(message(subject))
    assert result.kind == "bounce", result.signals
    assert "subject:delivery-failure" in result.signals
