"""The parser (R19: decoding never fails and keeps what it can; only non-mail is refused)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.classify import classify
from tasks.clean import build_request_draft
from tasks.parse import (
    MAX_HEADER_BYTES,
    UNPARSEABLE_REASONS,
    UnparseableMessage,
    body_present,
    decode_bytes,
    decode_header_value,
    parse_message,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.eml"))

HEAD = b"From: Ana <ana@example.com>\nTo: soporte@cliente.com.co\nSubject: Prueba\n"


def mail(body: bytes = b"Hola\n", headers: bytes = HEAD) -> bytes:
    return headers + b"\n" + body


def reason_of(raw: bytes) -> str:
    with pytest.raises(UnparseableMessage) as caught:
        parse_message(raw)
    return caught.value.reason


# -- what is refused ----------------------------------------------------------------------------


def test_empty_bytes_are_unparseable_as_empty() -> None:
    assert reason_of(b"") == "empty"
    assert reason_of(b" \r\n\n\t") == "empty"


def test_bytes_without_header_lines_are_not_mail() -> None:
    assert reason_of(b"hola, esto no es un correo\n\ncon dos parrafos") == "not_mail"
    assert reason_of(b"\x89PNG\r\n\x1a\n\x00\x00") == "not_mail"


def test_header_block_over_512_kb_is_refused() -> None:
    raw = HEAD + b"X-Junk: " + b"a" * (MAX_HEADER_BYTES + 10) + b"\n\nbody"
    assert reason_of(raw) == "header_too_large"


def _nested(levels: int) -> bytes:
    parts = [b"From: a@b.co\nSubject: deep\nContent-Type: multipart/mixed; boundary=b0\n\n"]
    for i in range(1, levels):
        parts.append(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i))
    parts.append(b"--b%d\nContent-Type: text/plain\n\nhola\n" % (levels - 1))
    parts += [b"--b%d--\n" % i for i in reversed(range(levels))]
    return b"".join(parts)


def test_mime_nested_deeper_than_30_levels_is_refused() -> None:
    assert parse_message(_nested(30)).text_body.strip() == "hola"
    assert reason_of(_nested(31)) == "mime_too_deep"
    assert reason_of(_nested(5000)) == "mime_too_deep"


def test_more_than_500_parts_is_refused() -> None:
    def flat(n: int) -> bytes:
        body = b"".join(b"--x\nContent-Type: text/plain\n\n%d\n" % i for i in range(n)) + b"--x--\n"
        return mail(body, HEAD + b"Content-Type: multipart/mixed; boundary=x\n")

    assert parse_message(flat(400)).text_body is not None
    assert reason_of(flat(600)) == "too_many_parts"


def test_unparseable_message_carries_reason_and_detail() -> None:
    error = UnparseableMessage("not_mail", "no header lines")
    assert (error.reason, error.detail) == ("not_mail", "no header lines")
    assert "not_mail" in str(error)


# -- what parses anyway ----------------------------------------------------------------------


def test_mbox_from_line_and_leading_blank_lines_are_tolerated() -> None:
    msg = parse_message(b"\r\nFrom ana@example.com Mon Mar  4 10:00:00 2024\n" + mail())
    assert msg.subject == "Prueba"
    assert msg.sender == "ana@example.com"


def test_sender_and_recipients_are_lower_cased_addresses() -> None:
    headers = (
        b"From: =?utf-8?Q?Jos=C3=A9_P=C3=A9rez?= <Jose.Perez@Cliente.COM>\n"
        b"To: Soporte <SOPORTE@cliente.com.co>, otro@x.co\n"
        b"Cc: copia@x.co\nDelivered-To: buzon@cliente.com.co\nX-Original-To: alias@cliente.com.co\n"
        b"Subject: s\n"
    )
    msg = parse_message(mail(headers=headers))
    assert msg.sender == "jose.perez@cliente.com"
    assert msg.sender_name == "José Pérez"
    assert msg.recipients == [
        "soporte@cliente.com.co",
        "otro@x.co",
        "copia@x.co",
        "buzon@cliente.com.co",
        "alias@cliente.com.co",
    ]


def test_missing_or_unreadable_from_gives_no_sender() -> None:
    assert parse_message(b"Subject: sin remitente\n\nhola").sender is None
    msg = parse_message(b"From: <>\nSubject: x\n\nhola")
    assert msg.sender is None


def test_bad_date_is_recorded_as_a_defect_not_raised() -> None:
    msg = parse_message(mail(headers=HEAD + b"Date: Tue, 32 Foo 2024 25:61:00 +9999\n"))
    assert msg.date is None
    assert "bad-date" in msg.defects


def test_date_is_timezone_aware() -> None:
    msg = parse_message(mail(headers=HEAD + b"Date: Mon, 4 Mar 2024 10:00:00 -0500\n"))
    assert msg.date == datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


def test_rfc2047_subject_split_across_words_is_joined() -> None:
    raw = mail(
        headers=b"From: a@b.co\nSubject: =?UTF-8?B?Q2FtYmlvIGRlIGNvbnRyYXNl?=\n =?UTF-8?B?w7FhIGVuIGVsIG3Ds2R1bG8=?=\n"
    )
    assert parse_message(raw).subject == "Cambio de contraseña en el módulo"


def test_malformed_encoded_words_never_raise() -> None:
    assert decode_header_value("=?x-nada?Q?caf=E9?= ok") == "café ok"
    assert decode_header_value("=?utf-8?B?w6HDqcOt?==?utf-8?Q?_y_m=C3=A1s?=") == "áéí y más"
    assert decode_header_value("=?utf-8?B?####?= resto") == " resto"
    assert decode_header_value("=?utf-8?Q?sin_cierre") == "sin cierre"  # cut off by a gateway: decoded anyway
    msg = parse_message(b"From: a@b.co\nSubject: =?iso-8859-1?B?SW5mb3JtYWNp8w?=\n\nx")
    assert msg.subject == "Informació"


def test_raw_8bit_header_bytes_are_decoded() -> None:
    raw = b"From: G\xf3mez <g@x.co>\nSubject: Cotizaci\xc3\xb3n urgente\n\nhola"
    msg = parse_message(raw)
    assert msg.subject == "Cotización urgente"
    assert msg.sender_name == "Gómez"


def test_charset_fallback_declared_then_detected_then_cp1252() -> None:
    assert decode_bytes("Información".encode(), "utf-8") == ("Información", None)
    text, defect = decode_bytes("“Sesión” – €".encode("cp1252"), "utf-8")
    assert text == "“Sesión” – €"
    assert defect == "charset-invalid:utf-8->cp1252"
    assert decode_bytes("niño".encode(), "x-desconocido")[0] == "niño"
    assert decode_bytes(b"\x81\x8d\x8f", None)[0] == "\x81\x8d\x8f"  # latin-1 takes every byte
    assert decode_bytes("€ 5".encode("cp1252"), "iso-8859-1")[0] == "€ 5"  # latin-1 means cp1252


def test_body_in_declared_us_ascii_with_8bit_bytes_is_still_read() -> None:
    raw = mail(
        "Buen día, la facturación falla".encode("cp1252"), HEAD + b"Content-Type: text/plain; charset=us-ascii\n"
    )
    msg = parse_message(raw)
    assert msg.text_body.strip() == "Buen día, la facturación falla"
    assert any(d.startswith("charset-invalid:us-ascii") for d in msg.defects)


def test_truncated_base64_body_keeps_what_decodes() -> None:
    encoded = base64.b64encode(b"Hola, la VPN se cae cada 5 minutos.").decode()[:-3]
    raw = mail(encoded.encode(), HEAD + b"Content-Transfer-Encoding: base64\n")
    assert parse_message(raw).text_body.startswith("Hola, la VPN se cae")


def test_classifier_headers_are_kept_with_lower_cased_names() -> None:
    headers = HEAD + (
        b"In-Reply-To: <a@b>\nAuto-Submitted: auto-replied\nPrecedence: bulk\n"
        b"X-Auto-Response-Suppress: All\nReturn-Path: <>\nX-Loop: soporte\n"
    )
    msg = parse_message(mail(headers=headers))
    assert msg.headers["in-reply-to"] == "<a@b>"
    assert msg.headers["auto-submitted"] == "auto-replied"
    assert msg.headers["precedence"] == "bulk"
    assert msg.headers["x-auto-response-suppress"] == "All"
    assert msg.headers["return-path"] == "<>"
    assert msg.headers["x-loop"] == "soporte"


def test_format_flowed_plain_text_is_joined() -> None:
    raw = mail(
        b"Primera linea que sigue \nen la segunda.\n\n-- \nFirma\n",
        HEAD + b"Content-Type: text/plain; charset=utf-8; format=flowed\n",
    )
    assert parse_message(raw).text_body == "Primera linea que sigue en la segunda.\n\n-- \nFirma\n"


def _multipart(parts: list[bytes], kind: bytes = b"mixed", boundary: bytes = b"XX") -> bytes:
    body = b"".join(b"--" + boundary + b"\n" + part + b"\n" for part in parts) + b"--" + boundary + b"--\n"
    return mail(body, HEAD + b"Content-Type: multipart/" + kind + b"; boundary=" + boundary + b"\n")


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


def _image(cid: bytes | None, name: bytes | None = None) -> bytes:
    head = b"Content-Type: image/png\nContent-Transfer-Encoding: base64\n"
    if cid:
        head += b"Content-ID: <" + cid + b">\n"
    if name:
        head += b'Content-Disposition: inline; filename="' + name + b'"\n'
    return head + b"\n" + base64.b64encode(PNG)


def test_alternative_bodies_and_inline_images_are_told_apart() -> None:
    alternative = (
        b"Content-Type: multipart/alternative; boundary=ALT\n\n"
        b"--ALT\nContent-Type: text/plain; charset=utf-8\n\nTexto plano\n"
        b'--ALT\nContent-Type: text/html; charset=utf-8\n\n<p>Texto <img src="cid:shot@1"></p>\n'
        b"--ALT--\n"
    )
    raw = _multipart(
        [alternative, _image(b"shot@1"), _image(b"other@1", b"foto.png")], kind=b"related", boundary=b"REL"
    )
    msg = parse_message(raw)
    assert msg.text_body.strip() == "Texto plano"
    assert "cid:shot@1" in msg.html_body
    inline, other = msg.attachments
    assert (inline.inline, inline.content_id, inline.filename) == (True, "shot@1", "")
    assert inline.data == PNG
    assert (other.inline, other.content_id, other.filename) == (False, "other@1", "foto.png")


def test_attachment_with_rfc2231_filename_and_disposition() -> None:
    part = (
        b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n"
        b"Content-Disposition: attachment; filename*=utf-8''informe%20de%20auditor%C3%ADa.pdf\n\n"
        + base64.b64encode(b"%PDF-1.4 ...")
    )
    msg = parse_message(_multipart([b"Content-Type: text/plain\n\nAdjunto.", part]))
    assert [(a.filename, a.content_type, a.data) for a in msg.attachments] == [
        ("informe de auditoría.pdf", "application/pdf", b"%PDF-1.4 ...")
    ]
    assert msg.text_body.strip() == "Adjunto."


def test_text_part_marked_as_attachment_is_not_the_body() -> None:
    log = b"Content-Type: text/plain\nContent-Disposition: attachment\n\nERROR 42"
    msg = parse_message(_multipart([b"Content-Type: text/plain\n\nVer log.", log]))
    assert msg.text_body.strip() == "Ver log."
    assert [a.data.strip() for a in msg.attachments] == [b"ERROR 42"]


def test_attached_message_is_kept_whole_and_not_used_as_body() -> None:
    inner = b"From: banco@x.co\nSubject: Transferencia rechazada\n\nTexto del banco\n"
    raw = _multipart([b"Content-Type: text/plain\n\nMiren este correo.", b"Content-Type: message/rfc822\n\n" + inner])
    msg = parse_message(raw)
    assert msg.text_body.strip() == "Miren este correo."
    (eml,) = msg.attachments
    assert eml.filename == "Transferencia rechazada.eml"
    assert eml.content_type == "message/rfc822"
    assert b"Texto del banco" in eml.data and b"Subject: Transferencia rechazada" in eml.data


def test_multipart_without_boundary_is_read_as_text() -> None:
    raw = mail(b"Hola sin partes\n", HEAD + b"Content-Type: multipart/mixed\n")
    msg = parse_message(raw)
    assert "Hola sin partes" in msg.text_body
    assert msg.defects


def test_message_key_is_the_shared_message_key() -> None:
    from tasks.message_key import message_key

    raw = mail()
    assert parse_message(raw).key == message_key(raw)
    assert parse_message(raw).size == len(raw)


# -- R5: body present --------------------------------------------------------------------------


def test_body_present_for_plain_text() -> None:
    assert body_present(parse_message(mail(b"Hola\n")))
    assert not body_present(parse_message(mail(b" \n\t\n")))


def test_body_present_ignores_markup_styles_and_nbsp() -> None:
    html = HEAD + b"Content-Type: text/html\n"
    empty = b"<html><head><title>T</title><style>p{}</style></head><body><p>&nbsp;</p><br><!-- x --></body></html>"
    assert not body_present(parse_message(mail(empty, html)))
    assert body_present(parse_message(mail(b"<div><b>Hola</b></div>", html)))


def test_body_present_for_a_pasted_screenshot_alone() -> None:
    html = HEAD + b"Content-Type: text/html\n"
    data_uri = b'<p><img src="data:image/png;base64,' + base64.b64encode(PNG) + b'"></p>'
    assert body_present(parse_message(mail(data_uri, html)))
    related = _multipart(
        [b'Content-Type: text/html\n\n<img src="cid:s@1">', _image(b"s@1")], kind=b"related", boundary=b"R"
    )
    assert body_present(parse_message(related))


# -- properties --------------------------------------------------------------------------------

SEEDS = [path.read_bytes() for path in CORPUS[:12]] or [mail()]


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    """A corpus message with random slices replaced, inserted or deleted, or plain random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2000))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        start = draw(st.integers(0, len(data) - 1))
        end = min(len(data), start + draw(st.integers(0, 40)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        junk = draw(
            st.one_of(
                st.binary(max_size=30),
                st.sampled_from([b"=?", b"?=", b"\n\n", b"--", b"=?utf-8?B?", b"\x00", b"\r", b"<", b"cid:", b";"]),
            )
        )
        if action == "replace":
            data[start:end] = junk
        elif action == "insert":
            data[start:start] = junk
        else:
            del data[start:end]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_mail())
def test_parse_returns_a_message_or_raises_unparseable_and_later_stages_never_raise(raw: bytes) -> None:
    try:
        msg = parse_message(raw)
    except UnparseableMessage as error:
        assert error.reason in UNPARSEABLE_REASONS
        assert error.reason != "parse_error", error.detail  # the safety net must stay unused
        return
    classify(msg, ["soporte@cliente.com.co"])
    body_present(msg)
    draft = build_request_draft(msg, requester_id=None, received_at=datetime.now(UTC))
    assert len(draft.title) <= 80


# -- RFC 2231 and RFC 2047 in MIME parameters (issue 4) ---------------------------------------


def _named(disposition: bytes, ctype: bytes = b"application/pdf") -> tuple[str, list[str]]:
    part = b"Content-Type: " + ctype + b"\n" + disposition + b"\n\nDATA"
    msg = parse_message(_multipart([b"Content-Type: text/plain\n\nAdjunto.", part]))
    (attachment,) = msg.attachments
    return attachment.filename, msg.defects


@pytest.mark.parametrize(
    ("disposition", "name", "defect"),
    [
        (b"Content-Disposition: attachment; filename*=UTF-8''informe%20de%20auditor%C3%ADa.pdf",
         "informe de auditoría.pdf", None),
        (b"Content-Disposition: attachment;\n filename*0*=UTF-8''Acta%20de%20reuni%C3%B3n%20;\n"
         b" filename*1*=del%20comit%C3%A9.docx", "Acta de reunión del comité.docx", None),
        (b"Content-Disposition: attachment;\n filename*1=\"ventas.xlsx\";\n filename*0=\"Informe de \"",
         "Informe de ventas.xlsx", None),  # out of order
        (b"Content-Disposition: attachment;\n filename*0*=iso-8859-1''Cotizaci%F3n%20;\n filename*1=\"final.pdf\"",
         "Cotización final.pdf", None),
        (b"Content-Disposition: attachment; filename*=utf-8'es-co'n%C3%B3mina.pdf", "nómina.pdf", None),
        (b"Content-Disposition: attachment; filename*=\"utf-8''n%C3%B3mina.pdf\"", "nómina.pdf", None),
        (b"Content-Disposition: attachment; filename=\"viejo.pdf\"; filename*=utf-8''n%C3%B3mina.pdf",
         "nómina.pdf", None),  # the extended value wins (RFC 2231)
        (b"Content-Disposition: attachment; filename*=x-desconocido''caf%E9.pdf", "café.pdf",
         "rfc2231-charset-unknown:x-desconocido->cp1252"),
        (b"Content-Disposition: attachment; filename*=utf-8''caf%E9.pdf", "café.pdf",
         "rfc2231-charset-invalid:utf-8->cp1252"),
        (b"Content-Disposition: attachment; filename*=caf%C3%A9.pdf", "café.pdf", "rfc2231-no-charset"),
        (b"Content-Disposition: attachment; filename*=utf-8''caf%ZZ%C3%A9.pdf", "caf%ZZé.pdf", "rfc2231-bad-percent"),
        (b"Content-Disposition: attachment;\n filename*0*=utf-8''uno%20;\n filename*2*=tres.pdf", "uno tres.pdf",
         "rfc2231-continuation-gap"),
        (b"Content-Disposition: attachment; filename=\"=?utf-8?B?w7FhbmR1LnBkZg==?=\"", "ñandu.pdf", None),
        ("Content-Disposition: attachment; filename=\"señal.pdf\"".encode(), "señal.pdf", None),
        ("Content-Disposition: attachment; filename=\"señal.pdf\"".encode("latin-1"), "señal.pdf", None),
        (b"Content-Disposition: attachment; filename=\"sin cierre.pdf", "sin cierre.pdf", None),
        (b"Content-Disposition: attachment; filename=\"a;b.pdf\"", "a;b.pdf", None),
        (b"Content-Disposition: attachment; filename=\"x.pdf\" basura; ;; =\"\"", "x.pdf", None),
        (b"Content-Disposition: attachment; filename=\"C:\\Users\\ana\\informe.pdf\"", "C:\\Users\\ana\\informe.pdf",
         None),  # Outlook's unescaped Windows path: the backslashes are not escapes
        (b"Content-Disposition: attachment; filename=\"comillas \\\"dobles\\\".pdf\"", 'comillas "dobles".pdf', None),
    ],
)
def test_rfc2231_and_malformed_file_names_are_read(disposition: bytes, name: str, defect: str | None) -> None:
    got, defects = _named(disposition)
    assert got == name
    if defect:
        assert defect in defects


def test_content_type_name_is_used_when_the_disposition_has_none() -> None:
    assert _named(b"Content-Disposition: attachment", b"application/pdf; name*=utf-8''n%C3%B3mina.pdf")[0] == (
        "nómina.pdf"
    )


def test_content_type_with_junk_never_breaks_the_part() -> None:
    raw = mail(b"hola\n", HEAD + b"Content-Type: text/plain; charset=\"utf-8\" ; ;;;= ; boundary\n")
    assert parse_message(raw).text_body.strip() == "hola"
    raw = mail(b"hola\n", HEAD + b"Content-Type: text/; charset=utf-8\n")
    msg = parse_message(raw)
    assert msg.text_body.strip() == "hola" and "bad-content-type" in msg.defects


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("=?utf-8?Q?=C2=BFQu=C3=A9_pasa??=", "¿Qué pasa?"),  # a bare '?' inside a Q word
        ("=?utf-8?Q?Solicitud de acceso?=", "Solicitud de acceso"),  # unencoded blanks inside
        ("=?utf-8?B?w6FyYm9s", "árbol"),  # cut off before '?='
        ("Re: =?utf-8?Q?caf=C3=A9", "Re: café"),
        ("=?utf-8?q?abc =?utf-8?q?d=C3=A9f?=", "=?utf-8?q?abc déf"),  # a broken word does not swallow the next
        ("=?UTF-8?B?SW5mb3JtYWNp?= =?UTF-8?B?w7Nu?=", "Información"),
        ("=?UTF-8?B?ZGUgaGlzdG9yaWFzIGNsw61uaWNhcw==?=", "de historias clínicas"),  # padding before '?='
        ("a =?iso-8859-1?q?se=F1al?= b", "a señal b"),
        ("=?windows-1252?Q?=93cita=94?=", "“cita”"),
        ("=?utf-8*es?Q?ni=C3=B1o?=", "niño"),  # RFC 2231 language in an encoded word
        ("texto = normal ?= raro", "texto = normal ?= raro"),
        ("x =?utf-8?B?", "x =?utf-8?B?"),
    ],
)
def test_malformed_rfc2047_words_decode_as_well_as_they_can(raw: str, text: str) -> None:
    assert decode_header_value(raw) == text


# -- TNEF (winmail.dat) --------------------------------------------------------------------------

import struct  # noqa: E402


def _tnef_attr(level: int, attr_id: int, data: bytes) -> bytes:
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def _mapi(props: list[tuple[int, int, bytes]]) -> bytes:
    out = struct.pack("<I", len(props))
    for kind, prop_id, value in props:
        out += struct.pack("<HHII", kind, prop_id, 1, len(value)) + value + b"\x00" * (-len(value) % 4)
    return out


def _tnef(files: list[tuple[str, bytes]], html: bytes | None = None) -> bytes:
    out = struct.pack("<IH", 0x223E9F78, 1)
    out += _tnef_attr(1, 0x00089006, struct.pack("<I", 0x00010000))
    out += _tnef_attr(1, 0x00069007, struct.pack("<II", 1252, 0))
    if html is not None:
        out += _tnef_attr(1, 0x00069003, _mapi([(0x0102, 0x1013, html)]))
    for name, data in files:
        out += _tnef_attr(2, 0x00069002, b"\x00" * 14)
        out += _tnef_attr(2, 0x00018010, b"SHORT~1.BIN\x00")
        out += _tnef_attr(2, 0x0006800F, data)
        out += _tnef_attr(2, 0x00069005, _mapi([(0x001F, 0x3707, name.encode("utf-16-le") + b"\x00\x00")]))
    return out


def _with_winmail(data: bytes, body: bytes | None = b"Content-Type: text/plain\n\nVer adjuntos.") -> bytes:
    winmail = (
        b"Content-Type: application/ms-tnef; name=\"winmail.dat\"\nContent-Transfer-Encoding: base64\n"
        b"Content-Disposition: attachment; filename=\"winmail.dat\"\n\n" + base64.encodebytes(data)
    )
    return _multipart(([body] if body else []) + [winmail])


def test_winmail_dat_is_unpacked_into_its_files() -> None:
    msg = parse_message(_with_winmail(_tnef([("Cotización 2024.xlsx", b"PK\x03\x04xlsx"), ("acta.pdf", b"%PDF-1")])))
    assert [(a.filename, a.content_type, a.data) for a in msg.attachments] == [
        ("Cotización 2024.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         b"PK\x03\x04xlsx"),
        ("acta.pdf", "application/pdf", b"%PDF-1"),
    ]
    assert msg.text_body.strip() == "Ver adjuntos."
    assert "tnef-unpacked" in msg.defects


def test_winmail_dat_body_is_used_only_when_the_mail_has_none() -> None:
    html = b"<p>Cuerpo dentro de winmail.dat</p>"
    alone = parse_message(_with_winmail(_tnef([], html=html), body=None))
    assert alone.html_body == html.decode() and "body-from-tnef" in alone.defects
    assert body_present(alone)
    both = parse_message(_with_winmail(_tnef([], html=html)))
    assert both.html_body is None and both.text_body.strip() == "Ver adjuntos."


def test_unreadable_winmail_dat_is_kept_whole_with_a_defect() -> None:
    junk = b"\x78\x9f\x3e\x22" + b"\x01\x00" + b"\xff" * 30
    msg = parse_message(_with_winmail(junk))
    assert [(a.filename, a.data) for a in msg.attachments] == [("winmail.dat", junk)]
    assert any(d.startswith(("tnef-unreadable", "tnef-refused")) for d in msg.defects)
    not_tnef = parse_message(_with_winmail(b"no soy tnef"))
    assert [a.filename for a in not_tnef.attachments] == ["winmail.dat"]
    assert "tnef-unreadable:signature" in not_tnef.defects


def test_tnef_counts_that_would_loop_billions_of_times_are_refused_at_once() -> None:
    import time

    bomb = struct.pack("<IH", 0x223E9F78, 1) + _tnef_attr(1, 0x00069003, struct.pack("<I", 0xFFFFFFFF) + b"\x00" * 8)
    multi = struct.pack("<IH", 0x223E9F78, 1) + _tnef_attr(
        1, 0x00069003, struct.pack("<IHHI", 1, 0x1002, 0x0001, 0xFFFFFFF0) + b"\x00" * 8
    )
    for data in (bomb, multi):
        started = time.perf_counter()
        msg = parse_message(_with_winmail(data))
        assert time.perf_counter() - started < 1
        assert [a.filename for a in msg.attachments] == ["winmail.dat"]
        assert any(d.startswith("tnef-refused") for d in msg.defects)


def test_many_tnef_objects_stay_linear() -> None:
    import time

    many = struct.pack("<IH", 0x223E9F78, 1) + b"".join(_tnef_attr(1, 0x00078008, b"x") for _ in range(60000))
    started = time.perf_counter()
    msg = parse_message(_with_winmail(many))
    assert time.perf_counter() - started < 2
    assert "tnef-refused:too many objects" in msg.defects


def test_attached_message_is_written_back_without_refolding() -> None:
    long_subject = b"Subject: " + b"palabra " * 30 + b"\n"
    inner = b"From: banco@x.co\n" + long_subject + b"\nTexto del banco\n"
    parts = [b"Content-Type: text/plain\n\nMiren.", b"Content-Type: message/rfc822\n\n" + inner]
    msg = parse_message(_multipart(parts))
    (eml,) = msg.attachments
    assert (b"palabra " * 29 + b"palabra") in eml.data
