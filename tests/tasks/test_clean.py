"""The clean stage: characters (R9), title (R7), description (R8), screenshots (R10), size limit (R11)."""

from __future__ import annotations

import base64
import struct
import zlib
from datetime import UTC, datetime

import pytest

from tasks.clean import (
    build_request_draft,
    choose_description,
    image_dimensions,
    make_title,
    normalize_text,
    normalized_subject,
    sanitize_filename,
)
from tasks.model import Attachment, ParsedMessage

RECEIVED = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


def png(width: int, height: int, salt: int = 0) -> bytes:
    rows = b"".join(b"\x00" + bytes([salt % 256, 0, 0]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


GIF_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")


def message(
    subject: str = "Impresora no imprime",
    text: str | None = "Hola, la impresora no imprime.",
    html: str | None = None,
    attachments: list[Attachment] | None = None,
) -> ParsedMessage:
    return ParsedMessage(
        key="k1",
        message_id="<m@x>",
        date=None,
        sender="ana@cliente.com.co",
        sender_name="Ana",
        recipients=["soporte@cliente.com.co"],
        subject=subject,
        text_body=text,
        html_body=html,
        attachments=attachments or [],
        headers={},
        content_type="multipart/mixed",
        size=1000,
    )


def draft(msg: ParsedMessage, **kwargs):
    return build_request_draft(msg, requester_id="U-7", received_at=RECEIVED, **kwargs)


# -- R9 -----------------------------------------------------------------------------------------


def test_normalize_text_composes_to_nfc_and_keeps_accents() -> None:
    assert normalize_text("Informacio\u0301n de facturacio\u0301n ñ ü ç") == "Información de facturación ñ ü ç"


def test_normalize_text_removes_control_zero_width_and_format_characters() -> None:
    text = "\ufeffHo\u200bla\u00ad \u200dmundo\u2060\x07\x00\x1b fin\u202e"
    assert normalize_text(text) == "Hola mundo fin"


def test_normalize_text_turns_crlf_into_lf_and_tabs_into_spaces() -> None:
    assert normalize_text("uno\r\ndos\rtres\tcuatro\u00a0cinco") == "uno\ndos\ntres cuatro cinco"


def test_normalize_text_removes_emoji_unless_kept() -> None:
    assert normalize_text("No carga 😭 desde ayer 🙏🏽") == "No carga desde ayer "
    assert normalize_text("No carga 😭 desde ayer", keep_emoji=True) == "No carga 😭 desde ayer"
    assert normalize_text("👍🏽", keep_emoji=True) == "👍🏽"


def test_normalized_subject_is_one_clean_line_and_empty_counts_as_missing() -> None:
    assert normalized_subject("  Fallo\r\n\t en  el\u200b portal 🔥 ") == "Fallo en el portal"
    assert normalized_subject("\u200b 😀 \ufeff") == ""


# -- R7 -----------------------------------------------------------------------------------------


def test_subject_of_80_characters_or_less_is_the_title_unchanged() -> None:
    subject = "x" * 80
    assert make_title(subject) == (subject, False)


def test_long_subject_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    subject = (
        "Solicitud de revisión de encuestas: no se pueden calificar las encuestas de satisfacción "
        "enviadas a los clientes"
    )
    title, shortened = make_title(subject)
    assert shortened
    assert title == "Solicitud de revisión de encuestas: no se pueden calificar las encuestas de…"
    assert len(title) <= 80


def test_long_subject_without_a_late_word_boundary_is_cut_hard() -> None:
    subject = "Error " + "x" * 200
    title, shortened = make_title(subject)
    assert shortened and len(title) == 80 and title.endswith("…")
    assert make_title("abcdef", max_chars=4) == ("abc…", True)


def test_shortened_subject_opens_the_description() -> None:
    subject = "Falla " + "muy larga " * 12
    result = draft(message(subject=subject, text="Detalle del problema."))
    assert len(result.title) <= 80
    assert result.description == normalized_subject(subject) + "\n\nDetalle del problema."


def test_short_subject_is_not_repeated_in_the_description() -> None:
    assert draft(message()).description == "Hola, la impresora no imprime."


# -- file names ---------------------------------------------------------------------------------


def test_sanitize_filename_strips_paths_controls_and_reserved_names() -> None:
    used: set[str] = set()
    assert sanitize_filename("../../etc/passwd", used, "adjunto-1") == "passwd"
    assert sanitize_filename("C:\\Users\\ana\\foto.jpg", used, "adjunto-1") == "foto.jpg"
    assert sanitize_filename("in\x00for\x1bme?.pdf", used, "adjunto-1") == "informe_.pdf"
    assert sanitize_filename("con.txt", used, "adjunto-1") == "_con.txt"
    assert sanitize_filename("..", used, "adjunto-1.bin") == "adjunto-1.bin"
    assert sanitize_filename("", used, "adjunto-2.pdf") == "adjunto-2.pdf"


def test_sanitize_filename_bounds_length_and_keeps_the_extension() -> None:
    name = sanitize_filename("a" * 300 + ".docx", set(), "x")
    assert len(name) <= 120 and name.endswith(".docx")
    accented = sanitize_filename("ñ" * 200 + ".pdf", set(), "x")
    assert len(accented.encode()) <= 240 and accented.endswith(".pdf")


def test_sanitize_filename_makes_names_unique_within_a_request() -> None:
    used: set[str] = set()
    names = [sanitize_filename(n, used, "x") for n in ("informe.pdf", "Informe.pdf", "informe.pdf", "informe")]
    assert names == ["informe.pdf", "Informe (2).pdf", "informe (3).pdf", "informe"]


# -- R8 -----------------------------------------------------------------------------------------


def test_description_prefers_html_when_plain_part_is_empty_or_a_stub() -> None:
    html = "<p>El cierre contable terminó con errores.</p><ul><li>Cuenta 1105</li></ul>"
    expected = "El cierre contable terminó con errores.\n\n- Cuenta 1105"
    assert draft(message(text="", html=html)).description == expected
    assert draft(message(text=None, html=html)).description == expected
    stub = "This is an HTML message. Please use an HTML capable mail program to read this message."
    assert draft(message(text=stub, html=html)).description == expected
    assert draft(message(text="Este mensaje contiene HTML.", html=html)).description == expected


def test_description_prefers_html_when_plain_part_is_much_shorter() -> None:
    html = "<p>Uno dos tres cuatro cinco seis siete ocho nueve diez once doce.</p>"
    assert choose_description("Uno dos", "Uno dos tres cuatro cinco seis siete ocho nueve diez once doce.")[1] == "html"
    assert draft(message(text="Uno dos", html=html)).description.endswith("once doce.")


def test_description_keeps_the_plain_part_when_it_is_as_good() -> None:
    plain = "Hola,\nla impresora\nno imprime."
    html = "<div>Hola, la impresora no imprime.</div>"
    assert draft(message(text=plain, html=html)).description == plain


def test_description_has_no_markup_and_at_most_one_blank_line() -> None:
    result = draft(message(text=None, html="<p>uno</p><p>&nbsp;</p><p>&nbsp;</p><p>dos</p><script>x()</script>"))
    assert result.description == "uno\n\ndos"
    result = draft(message(text="uno\n\n\n\n\ndos   \n\n"))
    assert result.description == "uno\n\ndos"


def test_description_is_normalized_text() -> None:
    result = draft(message(text="Hola\u200b mundo 😀\r\nfacturacio\u0301n"))
    assert result.description == "Hola mundo \nfacturación".replace(" \n", "\n")


# -- R10 ----------------------------------------------------------------------------------------


def test_cid_screenshot_becomes_an_attachment_with_a_readable_name_and_a_marker() -> None:
    shot = png(40, 30)
    html = '<p>Sale este error:</p><p><img src="cid:image001.png@01DA"></p><p>Gracias</p>'
    part = Attachment("", "image/png", shot, inline=True, content_id="image001.png@01DA")
    result = draft(message(text=None, html=html, attachments=[part]))
    assert result.description == "Sale este error:\n\n[imagen: captura-1.png]\n\nGracias"
    assert [(a.filename, a.data, a.inline) for a in result.attachments] == [("captura-1.png", shot, True)]


def test_screenshot_keeps_the_real_file_name_when_the_part_has_one() -> None:
    part = Attachment("Captura de pantalla.png", "image/png", png(20, 20), inline=True, content_id="a@b")
    result = draft(message(text=None, html='<img src="cid:a@b">', attachments=[part]))
    assert result.description == "[imagen: Captura de pantalla.png]"
    assert result.attachments[0].filename == "Captura de pantalla.png"


def test_data_uri_screenshots_are_numbered_by_content_type() -> None:
    first, second = png(10, 10, 1), b"\xff\xd8\xff\xe0JFIF-fake-jpeg"
    html = (
        f'<p>Uno <img src="data:image/png;base64,{base64.b64encode(first).decode()}"></p>'
        f'<p>Dos <img src="data:image/jpeg;base64,{base64.b64encode(second).decode()}"></p>'
    )
    result = draft(message(text=None, html=html))
    assert result.description == "Uno [imagen: captura-1.png]\n\nDos [imagen: captura-2.jpg]"
    assert [(a.filename, a.content_type, a.data) for a in result.attachments] == [
        ("captura-1.png", "image/png", first),
        ("captura-2.jpg", "image/jpeg", second),
    ]


def test_repeated_signature_logo_is_attached_once_and_its_marker_reused() -> None:
    logo, shot = png(90, 30, 7), png(50, 50, 9)
    parts = [
        Attachment("image001.png", "image/png", shot, inline=True, content_id="s@1"),
        Attachment("image002.png", "image/png", logo, inline=True, content_id="l@1"),
        Attachment("image003.png", "image/png", logo, inline=True, content_id="l@2"),
    ]
    html = '<img src="cid:s@1"><p>Firma <img src="cid:l@1"></p><p>Otra <img src="cid:l@2"></p>'
    result = draft(message(text=None, html=html, attachments=parts))
    assert [a.filename for a in result.attachments] == ["image001.png", "image002.png"]
    assert result.description.count("[imagen: image002.png]") == 2


def test_one_pixel_images_are_dropped_by_attributes_or_by_header() -> None:
    parts = [
        Attachment("", "image/gif", GIF_PIXEL, inline=True, content_id="px@1"),
        Attachment("pixel.png", "image/png", png(1, 1), inline=False, content_id="px@2"),
    ]
    html = '<p>Hola</p><img src="cid:px@1"><img src="https://t.example/o.gif" width="1" height="1">'
    result = draft(message(text=None, html=html, attachments=parts))
    assert result.description == "Hola"
    assert result.attachments == []
    assert image_dimensions(GIF_PIXEL) == (1, 1)
    assert image_dimensions(png(3, 2)) == (3, 2)


def test_inline_image_not_referenced_in_html_stays_a_normal_attachment() -> None:
    part = Attachment("foto.png", "image/png", png(30, 30), inline=False, content_id="no-ref@1")
    result = draft(message(text="Ver foto adjunta.", html="<p>Ver foto adjunta.</p>", attachments=[part]))
    assert result.description == "Ver foto adjunta."
    assert [(a.filename, a.inline) for a in result.attachments] == [("foto.png", False)]


def test_outlook_plain_part_cid_placeholders_become_markers() -> None:
    shot = png(40, 40, 3)
    part = Attachment("image001.png", "image/png", shot, inline=True, content_id="image001.png@01DA")
    text = "Sale este error:\n[cid:image001.png@01DA]\nGracias"
    result = draft(message(text=text, html=None, attachments=[part]))
    assert result.description == "Sale este error:\n[imagen: image001.png]\nGracias"
    assert [a.filename for a in result.attachments] == ["image001.png"]


def test_english_markers_when_language_is_en() -> None:
    part = Attachment("", "image/png", png(20, 20), inline=True, content_id="a@b")
    result = draft(message(text=None, html='<img src="cid:a@b">', attachments=[part]), language="en")
    assert result.description == "[image: screenshot-1.png]"


# -- R11 ----------------------------------------------------------------------------------------


def test_attachment_over_the_limit_is_omitted_and_the_description_says_why() -> None:
    big = Attachment("video.mp4", "video/mp4", b"\0" * int(24.3 * 1024 * 1024))
    small = Attachment("informe.pdf", "application/pdf", b"%PDF-1.4")
    result = draft(message(attachments=[big, small]))
    assert [a.filename for a in result.attachments] == ["informe.pdf"]
    assert [(o.filename, o.size, o.reason) for o in result.omitted] == [("video.mp4", big.size, "over_size_limit")]
    assert result.description.endswith(
        "\n\nAdjunto omitido: video.mp4 (24,3 MB) supera el límite de 20 MB por archivo."
    )


def test_omission_note_in_english_and_with_a_custom_limit() -> None:
    big = Attachment("backup.zip", "application/zip", b"\0" * (3 * 1024 * 1024 + 512 * 1024))
    result = draft(message(attachments=[big]), attachment_max_bytes=2 * 1024 * 1024, language="en")
    assert result.description.endswith("Attachment omitted: backup.zip (3.5 MB) exceeds the 2 MB per-file limit.")


def test_attachment_names_are_sanitized_and_unique() -> None:
    parts = [
        Attachment("../informe.pdf", "application/pdf", b"1"),
        Attachment("informe.pdf", "application/pdf", b"2"),
        Attachment("", "application/pdf", b"3"),
        Attachment("Transferencia: rechazada.eml", "message/rfc822", b"4"),
    ]
    result = draft(message(attachments=parts))
    assert [a.filename for a in result.attachments] == [
        "informe.pdf",
        "informe (2).pdf",
        "adjunto-1.pdf",
        "Transferencia_ rechazada.eml",
    ]


# -- the draft itself ---------------------------------------------------------------------------


def test_draft_carries_key_requester_and_received_date() -> None:
    result = draft(message())
    assert (result.key, result.requester_email, result.requester_id, result.received_at) == (
        "k1",
        "ana@cliente.com.co",
        "U-7",
        RECEIVED,
    )
    assert result.title == "Impresora no imprime"


@pytest.mark.parametrize("keep_emoji", [False, True])
def test_keep_emoji_setting_applies_to_title_and_description(keep_emoji: bool) -> None:
    result = draft(message(subject="Portal caído 🔥", text="No carga 😭"), keep_emoji=keep_emoji)
    assert ("🔥" in result.title) is keep_emoji
    assert ("😭" in result.description) is keep_emoji
