"""Write corpus cases 31 and up: ``NN-name.eml`` plus ``NN-name.expected.json`` beside this file.

The files are committed; this script is how they were made, and ``--check`` proves they still are
(the corpus test runs it). Every byte is deterministic: fixed dates, boundaries, ids and images.
Messages are shaped like what Outlook / Exchange Online, Gmail, Apple Mail and Thunderbird send
(their header sets, boundaries, encodings and HTML), mostly in Spanish, plus the MTAs' bounces.
Hand-made cases 01–30 are not touched.

    python tests/corpus/build_extra.py           # (re)write the files
    python tests/corpus/build_extra.py --check   # exit 1 if any committed file differs
"""

from __future__ import annotations

import argparse
import base64
import json
import quopri
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
MAILBOX = "soporte@cliente.com.co"
CASES: list[tuple[str, Callable[[], tuple[bytes, dict]]]] = []


def case(name: str) -> Callable:
    def register(fn: Callable[[], tuple[bytes, dict]]) -> Callable:
        CASES.append((name, fn))
        return fn

    return register


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def png(width: int, height: int, seed: int) -> bytes:
    """A real, deterministic RGB PNG (a gradient picked by ``seed``)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            row += bytes([(x * 7 + seed * 31) % 256, (y * 5 + seed * 17) % 256, (x + y + seed * 13) % 256])
        rows.append(bytes(row))
    raw = b"".join(rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


GIF_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + b"% relleno de prueba\n" * 60 + b"%%EOF\n"
XLSX = b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 6
DOCX = b"PK\x03\x04\x14\x00\x08\x00" + bytes(reversed(range(256))) * 5


def b64(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def qp(text: str, charset: str = "utf-8") -> str:
    return quopri.encodestring(text.encode(charset)).decode("ascii")


def mime(headers: str, body: str) -> str:
    return headers.strip("\n") + "\n\n" + body


def multipart(boundary: str, parts: list[str], preamble: str = "") -> str:
    out = [preamble] if preamble else []
    for part in parts:
        out.append(f"--{boundary}\n{part.rstrip(chr(10))}\n")
    out.append(f"--{boundary}--\n")
    return "\n".join(out)


def message(headers: str, body: str, *, crlf: bool = False, charset: str = "utf-8") -> bytes:
    text = headers.strip("\n") + "\n\n" + body
    if crlf:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return text.encode(charset, "surrogateescape")


def attachment_part(ctype: str, filename_params: str, data: bytes, extra: str = "") -> str:
    head = f"Content-Type: {ctype}\nContent-Transfer-Encoding: base64\n{filename_params}"
    if extra:
        head += "\n" + extra
    return mime(head, b64(data))


def outlook_html(body: str) -> str:
    """The HTML Outlook for Windows writes: MSO conditionals, Word styles, o:p, WordSection1."""
    return f"""<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" \
xmlns:w="urn:schemas-microsoft-com:office:word" xmlns:m="http://schemas.microsoft.com/office/2004/12/omml" \
xmlns="http://www.w3.org/TR/REC-html40">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="Generator" content="Microsoft Word 15 (filtered medium)">
<!--[if !mso]><style>v\\:* {{behavior:url(#default#VML);}}
o\\:* {{behavior:url(#default#VML);}}
</style><![endif]--><style><!--
/* Font Definitions */
@font-face
\t{{font-family:"Cambria Math";
\tpanose-1:2 4 5 3 5 4 6 3 2 4;}}
p.MsoNormal, li.MsoNormal, div.MsoNormal
\t{{margin:0cm;
\tfont-size:11.0pt;
\tfont-family:"Calibri",sans-serif;}}
span.EstiloCorreo17
\t{{mso-style-type:personal-compose;}}
@page WordSection1
\t{{size:612.0pt 792.0pt;}}
div.WordSection1
\t{{page:WordSection1;}}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--><!--[if gte mso 9]><xml>
<o:shapelayout v:ext="edit">
<o:idmap v:ext="edit" data="1" />
</o:shapelayout></xml><![endif]-->
</head>
<body lang="ES-CO" link="#0563C1" vlink="#954F72" style="word-wrap:break-word">
<div class="WordSection1">
{body}
</div>
</body>
</html>
"""


def mso(text: str) -> str:
    return f'<p class="MsoNormal">{text}<o:p></o:p></p>'


MSO_BLANK = '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>'


def outlook_headers(
    sender: str, subject: str, msgid: str, date: str, content_type: str, extra: str = "", to: str = ""
) -> str:
    thread = subject.split(": ", 1)[-1] if subject.isascii() else ""
    lines = [
        f"From: {sender}",
        f"To: {to or 'Soporte <soporte@cliente.com.co>'}",
        f"Subject: {subject}",
    ]
    if thread:
        lines.append(f"Thread-Topic: {thread}")
    lines += [
        "Thread-Index: AdqFc0l1b3Jtb2xhYnJpbA==",
        f"Date: {date}",
        f"Message-ID: <{msgid}@SJ0PR12MB5678.namprd12.prod.outlook.com>",
        "Accept-Language: es-CO, en-US",
        "Content-Language: es-CO",
        "X-MS-Has-Attach:",
        "X-MS-TNEF-Correlator:",
    ]
    if extra:
        lines.append(extra.strip("\n"))
    lines += [f"Content-Type: {content_type}", "MIME-Version: 1.0"]
    return "\n".join(lines)


def gmail_headers(sender: str, subject: str, msgid: str, date: str, content_type: str, extra: str = "") -> str:
    lines = ["MIME-Version: 1.0"]
    if extra:
        lines.append(extra.strip("\n"))
    lines += [
        f"From: {sender}",
        f"Date: {date}",
        f"Message-ID: <CAE{msgid}@mail.gmail.com>",
        f"Subject: {subject}",
        f"To: {MAILBOX}",
        f"Content-Type: {content_type}",
    ]
    return "\n".join(lines)


def apple_headers(sender: str, subject: str, msgid: str, date: str, content_type: str, extra: str = "") -> str:
    lines = [f"From: {sender}", f"Content-Type: {content_type}"]
    if extra:
        lines.append(extra.strip("\n"))
    lines += [
        "Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.500.171.1.1\\))",
        f"Subject: {subject}",
        f"Message-Id: <{msgid}@cliente.test>",
        f"Date: {date}",
        f"To: {MAILBOX}",
        "X-Mailer: Apple Mail (2.3774.500.171.1.1)",
    ]
    return "\n".join(lines)


def thunderbird_headers(sender: str, subject: str, msgid: str, date: str, content_type: str, extra: str = "") -> str:
    lines = [
        f"Message-ID: <{msgid}@acme.test>",
        f"Date: {date}",
        "MIME-Version: 1.0",
        "User-Agent: Mozilla Thunderbird",
        "Content-Language: es-ES",
        f"To: {MAILBOX}",
        f"From: {sender}",
        f"Subject: {subject}",
    ]
    if extra:
        lines.append(extra.strip("\n"))
    lines.append(f"Content-Type: {content_type}")
    return "\n".join(lines)


ANA = "=?utf-8?Q?Ana_Cristina_Qui=C3=B1=C3=B3nez?= <ana.quinonez@cliente.test>"
CARLOS = "=?UTF-8?Q?Carlos_Andr=C3=A9s_Rodr=C3=ADguez?= <carlos.rodriguez@acme.test>"
MARIA = "=?utf-8?Q?Mar=C3=ADa_Jos=C3=A9_Pe=C3=B1a?= <maria.pena@cliente.test>"
JOSE = "=?UTF-8?Q?Jos=C3=A9_Luis_Mu=C3=B1oz?= <jose.munoz@acme.test>"


def expected(kind: str = "new", decision: str | None = None, **fields) -> dict:
    data = {"about": fields.pop("about"), "kind": kind}
    data["decision"] = decision or ("created" if kind == "new" else "rejected")
    if data["decision"] == "rejected" and kind != "new":
        data.setdefault("reason", kind)
    data.update(fields)
    data.setdefault("attachments", [])
    return data


def att(filename: str, size: int | None, inline: bool | None = False) -> dict:
    item: dict = {"filename": filename, "size": size}
    if inline is not None:
        item["inline"] = inline
    return item


# --------------------------------------------------------------------------------------------
# TNEF (winmail.dat), written the way Outlook writes it (MS-OXTNEF)
# --------------------------------------------------------------------------------------------


def _tnef_attr(level: int, attr_id: int, data: bytes) -> bytes:
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def _mapi_props(props: list[tuple[int, int, bytes | int]]) -> bytes:
    out = struct.pack("<I", len(props))
    for kind, prop_id, value in props:
        out += struct.pack("<HH", kind, prop_id)
        if kind == 0x0003:
            out += struct.pack("<i", value)
        else:
            assert isinstance(value, bytes)
            out += struct.pack("<II", 1, len(value)) + value + b"\x00" * (-len(value) % 4)
    return out


def tnef(
    attachments: list[tuple[str, str, bytes]], html: str | None = None, rtf: bytes | None = None, key: int = 0x5A3C
) -> bytes:
    """A TNEF stream with a message class, an optional HTML or compressed-RTF body, and files."""
    out = struct.pack("<IH", 0x223E9F78, key)
    out += _tnef_attr(1, 0x00089006, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += _tnef_attr(1, 0x00069007, struct.pack("<II", 1252, 0))  # attOemCodepage
    out += _tnef_attr(1, 0x00078008, b"IPM.Microsoft Mail.Note\x00")  # attMessageClass
    props: list[tuple[int, int, bytes | int]] = [(0x0003, 0x3FDE, 65001)]  # PR_INTERNET_CPID: UTF-8
    if html is not None:
        props.append((0x0102, 0x1013, html.encode("utf-8")))  # PR_BODY_HTML
    if rtf is not None:
        from compressed_rtf import compress

        props.append((0x0102, 0x1009, compress(rtf)))  # PR_RTF_COMPRESSED
    out += _tnef_attr(1, 0x00069003, _mapi_props(props))  # attMsgProps
    for long_name, short_name, data in attachments:
        out += _tnef_attr(2, 0x00069002, struct.pack("<IIIH", 1, 0xFFFFFFFF, 0, 0))  # attAttachRendData
        out += _tnef_attr(2, 0x00018010, short_name.encode("ascii") + b"\x00")  # attAttachTitle
        out += _tnef_attr(2, 0x0006800F, data)  # attAttachData
        attach_props: list[tuple[int, int, bytes | int]] = [
            (0x001F, 0x3707, long_name.encode("utf-16-le") + b"\x00\x00"),  # PR_ATTACH_LONG_FILENAME
            (0x0003, 0x3705, 1),  # PR_ATTACH_METHOD: by value
        ]
        out += _tnef_attr(2, 0x00069005, _mapi_props(attach_props))  # attAttachment
    return out


# --------------------------------------------------------------------------------------------
# Charsets and encodings
# --------------------------------------------------------------------------------------------


@case("31-thunderbird-declared-utf8-really-cp1252")
def _() -> tuple[bytes, dict]:
    body = (
        "Buenas tardes:\n\nEl módulo de cartera muestra “Error 500” al generar el extracto de cuenta.\n"
        "El cliente necesita el documento antes del viernes – es urgente.\n\nGracias,\nJosé Luis Muñoz\n"
    )
    headers = thunderbird_headers(
        JOSE, "Error 500 en cartera", "b1a2c3d4-0031-4e5f-8a9b-31", "Tue, 2 Apr 2024 08:10:00 -0500",
        "text/plain; charset=UTF-8; format=flowed", "Content-Transfer-Encoding: 8bit",
    )
    raw = headers.encode("ascii") + b"\n\n" + body.encode("cp1252")
    return raw, expected(
        about="Declared UTF-8 but written in cp1252 (a relay re-labelled it): the fallback chain reads it",
        title="Error 500 en cartera",
        sender="jose.munoz@acme.test",
        description_contains=["El módulo de cartera muestra “Error 500” al generar", "antes del viernes – es urgente."],
        defects_include=["charset-invalid:utf-8->cp1252"],
    )


@case("32-apple-8bit-utf8-without-charset")
def _() -> tuple[bytes, dict]:
    body = "Hola,\n\nNo puedo iniciar sesión en la intranet desde el iPad. Aparece «contraseña inválida».\n\nMaría\n"
    headers = apple_headers(
        MARIA, "No puedo iniciar sesión en la intranet", "7C1A2B3C-0032", "Tue, 2 Apr 2024 08:20:00 -0500",
        "text/plain", "Content-Transfer-Encoding: 8bit",
    )
    headers = headers.replace("Subject: No puedo iniciar sesión en la intranet",
                              "Subject: =?utf-8?Q?No_puedo_iniciar_sesi=C3=B3n_en_la_intranet?=")
    return message(headers, body), expected(
        about="8-bit UTF-8 body with no charset parameter at all (us-ascii by the RFC): read as UTF-8",
        title="No puedo iniciar sesión en la intranet",
        description_contains=["Aparece «contraseña inválida»."],
    )


@case("33-outlook-unknown-charset-name")
def _() -> tuple[bytes, dict]:
    html = outlook_html(
        mso("Buenos días,") + MSO_BLANK + mso("La impresora de recepción imprime símbolos extraños: ñ, á, €.")
        + MSO_BLANK + mso("Gracias,") + mso("Ángela Castaño")
    )
    headers = outlook_headers(
        "=?iso-8859-1?Q?=C1ngela_Casta=F1o?= <angela.castano@cliente.test>",
        "Impresora imprime simbolos", "SJ0PR12MB5678A033", "Tue, 2 Apr 2024 13:30:00 +0000",
        'text/html; charset="x-mac-latin-iberico"', "Content-Transfer-Encoding: quoted-printable",
    )
    return message(headers, qp(html, "cp1252")), expected(
        about="HTML part in a charset nobody knows, bytes really cp1252: detected, defect recorded",
        title="Impresora imprime simbolos",
        sender_name="Ángela Castaño",
        description_contains=["La impresora de recepción imprime símbolos extraños: ñ, á, €.", "Ángela Castaño"],
        description_excludes=["<", "mso", "Cambria"],
        defects_include=["charset-unknown:x-mac-latin-iberico->cp1252"],
    )


@case("34-gmail-truncated-base64-body")
def _() -> tuple[bytes, dict]:
    plain = ("Hola equipo,\n\nEl lector de código de barras de la bodega de Funza dejó de leer las etiquetas "
             "nuevas desde el cambio de proveedor.\n\nSaludos,\nCarlos\n")
    html = ("<div dir=\"ltr\"><div>Hola equipo,</div><div><br></div><div>El lector de código de barras de la "
            "bodega de Funza dejó de leer las etiquetas nuevas desde el cambio de proveedor.</div><div><br></div>"
            "<div>Saludos,</div><div>Carlos</div></div>\n")
    plain_b64 = b64(plain.encode())[:-6]  # the relay cut the last characters
    body = multipart("000000000000d4e5f6a7b8c9d034", [
        mime('Content-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: base64', plain_b64),
        mime('Content-Type: text/html; charset="UTF-8"\nContent-Transfer-Encoding: base64',
             b64(html.encode())[:-10] + "!!##"),
    ])
    headers = gmail_headers(CARLOS, "Lector de barras no lee etiquetas", "x34a1b2c3d4e5f6g7h8", "Tue, 2 Apr 2024 "
                            "09:01:12 -0500", 'multipart/alternative; boundary="000000000000d4e5f6a7b8c9d034"')
    return message(headers, body), expected(
        about="Both base64 parts truncated and one with junk: what decodes is kept, never an error",
        title="Lector de barras no lee etiquetas",
        description_contains=["El lector de código de barras de la bodega de Funza dejó de leer las etiquetas"],
    )


@case("35-outlook-broken-quoted-printable")
def _() -> tuple[bytes, dict]:
    body = (
        "Buenas tardes,\n\nEl certificado digital vence ma=F1ana y la renovaci=F3n falla con =\n"
        "el c=F3digo =ZZ-17.\nL=EDnea sin salto suave muy larga que el cliente no parti=F3 a 76 caracteres como "
        "pide el "
        "RFC y sigue y sigue hasta el final del p=E1rrafo.\n=\n\nGracias=2C\nViviana\n"
    )
    headers = outlook_headers(
        "Viviana Ospina <viviana.ospina@cliente.test>", "Falla renovacion certificado digital",
        "SJ0PR12MB5678A035", "Tue, 2 Apr 2024 19:02:00 +0000",
        'text/plain; charset="iso-8859-1"', "Content-Transfer-Encoding: quoted-printable",
    )
    return message(headers, body, crlf=True), expected(
        about="Quoted-printable with a bad escape (=ZZ), overlong lines and a stray soft break, CRLF",
        title="Falla renovacion certificado digital",
        description_contains=["El certificado digital vence mañana y la renovación falla con el código =ZZ-17.",
                              "hasta el final del párrafo.", "Gracias,\nViviana"],
    )


@case("36-exchange-raw-8bit-latin1-headers")
def _() -> tuple[bytes, dict]:
    headers = (
        "From: Hern\xe1n Ib\xe1\xf1ez <hernan.ibanez@cliente.test>\n"
        f"To: Soporte T\xe9cnico <{MAILBOX}>\n"
        "Subject: Migraci\xf3n del correo: buz\xf3n lleno\n"
        "Date: Tue, 2 Apr 2024 10:00:00 -0500\n"
        "Message-ID: <0036.legacy@exchange2010.cliente.test>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: 8bit\n"
    )
    body = "Buen día,\n\nMi buzón aparece lleno después de la migración y no recibo correos.\n\nHernán\n"
    raw = headers.encode("latin-1") + b"\n" + body.encode("latin-1")
    return raw, expected(
        about="An old Exchange relay: raw latin-1 bytes in From, To and Subject (no RFC 2047)",
        title="Migración del correo: buzón lleno",
        sender="hernan.ibanez@cliente.test",
        sender_name="Hernán Ibáñez",
        description_contains=["Mi buzón aparece lleno después de la migración"],
    )


@case("37-malformed-encoded-words-subject")
def _() -> tuple[bytes, dict]:
    headers = thunderbird_headers(
        "=?utf-8?q?Sebasti=C3=A1n_Mej=C3=ADa?= <sebastian.mejia@acme.test>",
        "=?utf-8?Q?=C2=BFPor_qu=C3=A9 no abre el portal??= =?UTF-8?B?"
        + base64.b64encode(b" de proveedores").decode() + "?=",
        "e5f6a7b8-0037", "Tue, 2 Apr 2024 11:00:00 -0500", "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: 7bit",
    )
    body = "Desde el lunes el portal de proveedores no abre en Chrome ni en Edge.\n"
    return message(headers, body), expected(
        about="RFC 2047 words written wrong: blanks and a bare '?' inside a Q word, then a B word",
        title="¿Por qué no abre el portal? de proveedores",
        sender_name="Sebastián Mejía",
        description_contains=["el portal de proveedores no abre"],
    )


@case("38-truncated-encoded-word-and-unicode-alias")
def _() -> tuple[bytes, dict]:
    headers = outlook_headers(
        "Gloria Patiño <gloria.patino@cliente.test>",
        "=?utf-8?B?U29saWNpdHVkIGRlIGFjY2VzbyBhbCBtw7NkdWxvIGRlIGludmVudGFyaW9z",
        "SJ0PR12MB5678A038", "Tue, 2 Apr 2024 15:00:00 +0000",
        'text/plain; charset="unicode-1-1-utf-8"', "Content-Transfer-Encoding: 8bit",
    )
    body = "Necesito acceso de consulta al módulo de inventarios para la auditoría.\n"
    return message(headers, body), expected(
        about="Subject cut off inside its encoded word (no '?='), body in an old UTF-8 alias name",
        title="Solicitud de acceso al módulo de inventarios",
        description_contains=["Necesito acceso de consulta al módulo de inventarios para la auditoría."],
        defects_include=["header-unterminated-encoded-word"],
    )


# --------------------------------------------------------------------------------------------
# File names: RFC 2231 and RFC 2047
# --------------------------------------------------------------------------------------------


@case("39-thunderbird-rfc2231-utf8-filename")
def _() -> tuple[bytes, dict]:
    name = "Informe de auditoría 2024 – nómina.pdf"
    body = multipart("------------Xk5ZqY7bN2c0031", [
        mime("Content-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: 8bit",
             "Buenos días,\n\nAdjunto el informe de auditoría con los errores de la nómina de marzo.\n\nJosé Luis\n"),
        attachment_part(f"application/pdf; name*=UTF-8''{quote(name)}",
                        f"Content-Disposition: attachment; filename*=UTF-8''{quote(name)}", PDF),
    ], preamble="This is a multi-part message in MIME format.")
    headers = thunderbird_headers(JOSE, "Errores en la nómina de marzo".replace("ó", "=?UTF-8?Q?=C3=B3?="),
                                  "c3d4e5f6-0039", "Tue, 2 Apr 2024 11:30:00 -0500",
                                  'multipart/mixed; boundary="------------Xk5ZqY7bN2c0031"')
    headers = headers.replace("Subject: Errores en la n=?UTF-8?Q?=C3=B3?=mina de marzo",
                              "Subject: Errores en la =?UTF-8?Q?n=C3=B3mina?= de marzo")
    return message(headers, body), expected(
        about="Thunderbird's RFC 2231 file name (filename*=UTF-8''...) with accents and an en dash",
        title="Errores en la nómina de marzo",
        description_contains=["Adjunto el informe de auditoría con los errores de la nómina de marzo."],
        attachments=[att(name, len(PDF))],
    )


@case("40-thunderbird-rfc2231-continuations")
def _() -> tuple[bytes, dict]:
    disposition = (
        "Content-Disposition: attachment;\n"
        " filename*0*=UTF-8''%43%6F%74%69%7A%61%63%69%C3%B3%6E%20%72%65%6E%6F%76%61;\n"
        " filename*1*=%63%69%C3%B3%6E%20%6C%69%63%65%6E%63%69%61%73%20;\n"
        " filename*2*=%4D%69%63%72%6F%73%6F%66%74%20%32%30%32%34%2E%78%6C%73%78"
    )
    ctype = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet;\n"
        " name*0*=UTF-8''%43%6F%74%69%7A%61%63%69%C3%B3%6E%20%72%65%6E%6F%76%61;\n"
        " name*1*=%63%69%C3%B3%6E%20%6C%69%63%65%6E%63%69%61%73%20;\n"
        " name*2*=%4D%69%63%72%6F%73%6F%66%74%20%32%30%32%34%2E%78%6C%73%78"
    )
    body = multipart("------------Zq0040bN2c0040", [
        mime("Content-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: 8bit",
             "Adjunto la cotización de la renovación para que la carguen al portal de compras.\n"),
        attachment_part(ctype, disposition, XLSX),
    ], preamble="This is a multi-part message in MIME format.")
    headers = thunderbird_headers(JOSE, "Cargar cotizacion al portal de compras", "c3d4e5f6-0040",
                                  "Tue, 2 Apr 2024 11:40:00 -0500",
                                  'multipart/mixed; boundary="------------Zq0040bN2c0040"')
    return message(headers, body), expected(
        about="A long non-ASCII name split into RFC 2231 continuations (filename*0*=, *1*, *2*)",
        title="Cargar cotizacion al portal de compras",
        attachments=[att("Cotización renovación licencias Microsoft 2024.xlsx", len(XLSX))],
    )


@case("41-malformed-rfc2231-parameters")
def _() -> tuple[bytes, dict]:
    parts = [
        mime("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit",
             "Van tres archivos del cierre contable.\n"),
        # declared UTF-8, percent bytes are latin-1
        attachment_part("application/pdf", "Content-Disposition: attachment; filename*=utf-8''Balance%20a%F1o.pdf",
                        PDF),
        # no charset'' part, and an unknown charset on the Content-Type name
        attachment_part("application/pdf; name*=x-rara''Estado%20de%20resultados.pdf",
                        "Content-Disposition: attachment; filename*=Estado%20de%20resultados.pdf", PDF[:500]),
        # a continuation gap (*0*, *2*) and a bad escape
        attachment_part("application/pdf", "Content-Disposition: attachment;\n filename*0*=utf-8''Notas%20;\n"
                        " filename*2*=al%ZZcierre.pdf", PDF[:300]),
    ]
    body = multipart("b0041mixed", parts)
    headers = (
        "From: Contabilidad <contabilidad@cliente.test>\n"
        f"To: {MAILBOX}\n"
        "Subject: Archivos del cierre contable\n"
        "Date: Tue, 2 Apr 2024 12:00:00 -0500\n"
        "Message-ID: <0041.cierre@cliente.test>\n"
        "MIME-Version: 1.0\n"
        "X-Mailer: PHPMailer 6.8.0 (https://github.com/PHPMailer/PHPMailer)\n"
        'Content-Type: multipart/mixed; boundary="b0041mixed"'
    )
    return message(headers, body), expected(
        about="RFC 2231 written wrong: latin-1 bytes under utf-8, no charset part, unknown charset, gap, %ZZ",
        title="Archivos del cierre contable",
        attachments=[att("Balance año.pdf", len(PDF)), att("Estado de resultados.pdf", 500),
                     att("Notas al%ZZcierre.pdf", 300)],
        defects_include=["rfc2231-charset-invalid:utf-8->cp1252", "rfc2231-no-charset", "rfc2231-continuation-gap",
                         "rfc2231-bad-percent"],
    )


@case("42-rfc2047-and-raw-utf8-filenames")
def _() -> tuple[bytes, dict]:
    parts = [
        mime('Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable',
             qp("Adjunto el acta firmada y la foto del daño.\n")),
        attachment_part('application/pdf; name="=?utf-8?B?QWN0YSBkZSBlbnRyZWdhIGZpcm1hZGEucGRm?="',
                        'Content-Disposition: attachment; filename="=?utf-8?B?QWN0YSBkZSBlbnRyZWdhIGZpcm1hZGEucGRm?="',
                        PDF),
        attachment_part('image/jpeg; name="daño pantalla.jpg"',
                        'Content-Disposition: attachment; filename="daño pantalla.jpg"',
                        b"\xff\xd8\xff\xe0" + PDF[:800]),
    ]
    body = multipart("Apple-Mail=_42A1B2C3-0042-4D5E-9F00-0042", parts)
    headers = apple_headers(MARIA, "Acta de entrega del equipo", "42A1B2C3-0042", "Tue, 2 Apr 2024 12:10:00 -0500",
                            'multipart/mixed;\n\tboundary="Apple-Mail=_42A1B2C3-0042-4D5E-9F00-0042"')
    return message(headers, body), expected(
        about="File names as RFC 2047 words inside quotes (Outlook/Gmail) and as raw UTF-8 (Apple Mail)",
        title="Acta de entrega del equipo",
        attachments=[att("Acta de entrega firmada.pdf", len(PDF)), att("daño pantalla.jpg", 804)],
    )


# --------------------------------------------------------------------------------------------
# Outlook HTML
# --------------------------------------------------------------------------------------------

LIST_ITEM = (
    "<p class=\"MsoListParagraphCxSp{pos}\" style=\"margin-left:36.0pt;text-indent:-18.0pt;mso-list:l0 level1 lfo1\">"
    "<![if !supportLists]><span style=\"font-family:Symbol\"><span style=\"mso-list:Ignore\">{bullet}"
    "<span style=\"font:7.0pt &quot;Times New Roman&quot;\">&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp; </span></span></span>"
    "<![endif]>{text}<o:p></o:p></p>"
)


@case("43-outlook-vml-image-and-lists")
def _() -> tuple[bytes, dict]:
    shot = png(64, 40, 43)
    html = outlook_html(
        mso("Buenos días,") + MSO_BLANK
        + mso("Al exportar el reporte de ventas aparece esta ventana:")
        + '<p class="MsoNormal"><!--[if gte vml 1]><v:shape id="Imagen_x0020_1" o:spid="_x0000_i1025" '
        'type="#_x0000_t75" style="width:480pt;height:300pt"><v:imagedata src="cid:image001.png@01DA84F1.2C3D4E50" '
        'o:title=""/></v:shape><![endif]--><![if !vml]><img width="640" height="400" style="width:6.666in" '
        'src="cid:image001.png@01DA84F1.2C3D4E50" v:shapes="Imagen_x0020_1"><![endif]><o:p></o:p></p>'
        + MSO_BLANK + mso("Ya intenté:")
        + LIST_ITEM.format(pos="First", bullet="·", text="Cerrar sesión y volver a entrar")
        + LIST_ITEM.format(pos="Middle", bullet="·", text="Borrar la caché del navegador")
        + LIST_ITEM.format(pos="Last", bullet="·", text="Usar otro equipo")
        + MSO_BLANK + mso("Gracias,") + mso("Diego Salazar")
    )
    plain = ("Buenos días,\n\nAl exportar el reporte de ventas aparece esta ventana:\n"
             "[cid:image001.png@01DA84F1.2C3D4E50]\n\nYa intenté:\n\n  *   Cerrar sesión y volver a entrar\n"
             "  *   Borrar la caché del navegador\n  *   Usar otro equipo\n\nGracias,\nDiego Salazar\n")
    related = multipart("_004_SJ0PR12MB5678A043_", [
        mime('Content-Type: multipart/alternative;\n\tboundary="_000_SJ0PR12MB5678A043_"',
             multipart("_000_SJ0PR12MB5678A043_", [
                 mime('Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable',
                      qp(plain)),
                 mime('Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable',
                      qp(html)),
             ])),
        attachment_part('image/png; name="image001.png"',
                        'Content-Description: image001.png\nContent-Disposition: inline; filename="image001.png"; '
                        f'size={len(shot)};\n\tcreation-date="Tue, 02 Apr 2024 14:00:00 GMT"',
                        shot, "Content-ID: <image001.png@01DA84F1.2C3D4E50>"),
    ])
    headers = outlook_headers(
        "Diego Salazar <diego.salazar@cliente.test>", "Error al exportar reporte de ventas", "SJ0PR12MB5678A043",
        "Tue, 2 Apr 2024 14:00:00 +0000",
        'multipart/related;\n\tboundary="_004_SJ0PR12MB5678A043_";\n\ttype="multipart/alternative"',
    )
    return message(headers, related, crlf=True), expected(
        about="Outlook HTML: VML image in an MSO conditional plus its <![if !vml]> twin, Word list paragraphs",
        title="Error al exportar reporte de ventas",
        description_contains=["Al exportar el reporte de ventas aparece esta ventana:\n[imagen: image001.png]",
                              "Cerrar sesión y volver a entrar", "Borrar la caché del navegador", "Usar otro equipo"],
        description_excludes=["cid:", "v:shape", "supportLists", "<", "mso-"],
        attachments=[att("image001.png", len(shot), True)],
    )


@case("44-outlook-hidden-preheader-and-table")
def _() -> tuple[bytes, dict]:
    html = outlook_html(
        '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">Vista previa oculta que no se ve</div>'
        + mso("Hola,") + MSO_BLANK
        + mso("Estos usuarios no pueden entrar al CRM desde el lunes:")
        + '<table class="MsoTableGrid" border="1" cellspacing="0" cellpadding="0" style="border-collapse:collapse">'
        '<tr><td width="200" valign="top"><p class="MsoNormal"><b>Usuario<o:p></o:p></b></p></td>'
        '<td width="200"><p class="MsoNormal"><b>Sede<o:p></o:p></b></p></td>'
        '<td width="200"><p class="MsoNormal"><b>Error<o:p></o:p></b></p></td></tr>'
        '<tr><td><p class="MsoNormal">lmoreno<o:p></o:p></p></td><td><p class="MsoNormal">Cali<o:p></o:p></p></td>'
        '<td><p class="MsoNormal">Cuenta bloqueada<o:p></o:p></p></td></tr>'
        '<tr><td><p class="MsoNormal">pvargas<o:p></o:p></p></td><td><p class="MsoNormal">Medellín<o:p></o:p></p></td>'
        '<td><p class="MsoNormal">Contraseña vencida<o:p></o:p></p></td></tr></table>'
        + MSO_BLANK
        + '<p class="MsoNormal" style="mso-hide:all"><span style="font-size:1.0pt;color:white">'
        'Texto blanco escondido<o:p></o:p></span></p>'
        + '<p class="MsoNormal">Más detalles en <a href="https://nam12.safelinks.protection.outlook.com/?url=https%3A'
        '%2F%2Fintranet.cliente.test%2Fcrm%2Fincidentes&amp;data=05%7C02%7C&amp;reserved=0">la intranet</a>.'
        '<o:p></o:p></p>'
        + MSO_BLANK + mso("Paula Vargas")
    )
    headers = outlook_headers(
        "Paula Vargas <paula.vargas@cliente.test>", "Usuarios sin acceso al CRM", "SJ0PR12MB5678A044",
        "Tue, 2 Apr 2024 14:30:00 +0000", 'text/html; charset="utf-8"', "Content-Transfer-Encoding: quoted-printable",
    )
    return message(headers, qp(html), crlf=True), expected(
        about="Outlook HTML only: hidden preheader (display:none, mso-hide:all), a Word table, a Safe Link",
        title="Usuarios sin acceso al CRM",
        description_contains=["Usuario | Sede | Error\nlmoreno | Cali | Cuenta bloqueada\n"
                              "pvargas | Medellín | Contraseña vencida",
                              "Más detalles en la intranet (https://intranet.cliente.test/crm/incidentes)."],
        description_excludes=["Vista previa oculta", "Texto blanco escondido", "safelinks"],
    )


@case("45-outlook-mac-html-blockquote-reply-history")
def _() -> tuple[bytes, dict]:
    html = (
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head>"
        "<body><div dir=\"ltr\"><div>Hola soporte,</div><div><br></div>"
        "<div>Les escribo de nuevo (caso nuevo) porque el escáner de recepción no envía al correo.</div>"
        "<div><br></div><div>Pasos:</div><ol><li>Escanear</li><li>Elegir &quot;Enviar a correo&quot;</li>"
        "<li>Sale <i>Error SMTP 535</i></li></ol><div>Esto nos dijo el proveedor:</div>"
        "<blockquote style=\"margin:0 0 0 .8ex;border-left:1px #ccc solid;padding-left:1ex\">"
        "Deben habilitar la autenticación SMTP en el servidor.<br>Saludos</blockquote>"
        "<div>Gracias</div><div>Esteban</div></div></body></html>"
    )
    plain = ("Hola soporte,\n\nLes escribo de nuevo (caso nuevo) porque el escáner de recepción no envía al correo.\n\n"
             "Pasos:\n\n1. Escanear\n2. Elegir \"Enviar a correo\"\n3. Sale Error SMTP 535\n\n"
             "Esto nos dijo el proveedor:\n\n> Deben habilitar la autenticación SMTP en el servidor.\n> Saludos\n\n"
             "Gracias\nEsteban\n")
    body = multipart("B_3794567890_0045", [
        mime('Content-type: text/plain;\n\tcharset="UTF-8"\nContent-transfer-encoding: quoted-printable', qp(plain)),
        mime('Content-type: text/html;\n\tcharset="UTF-8"\nContent-transfer-encoding: quoted-printable', qp(html)),
    ], preamble="> This message is in MIME format. Since your mail reader does not understand\nthis format, some or "
                "all of this message may not be legible.")
    headers = (
        "User-Agent: Microsoft-MacOutlook/16.83.24031120\n"
        "Date: Tue, 02 Apr 2024 10:45:00 -0500\n"
        f"Subject: =?UTF-8?B?{base64.b64encode('Escáner de recepción no envía al correo'.encode()).decode()}?=\n"
        f"From: =?UTF-8?B?{base64.b64encode('Esteban Beltrán'.encode()).decode()}?= <esteban.beltran@cliente.test>\n"
        f"To: <{MAILBOX}>\n"
        "Message-ID: <F1E2D3C4-0045-4A5B-8C9D-0045@cliente.test>\n"
        "Mime-version: 1.0\n"
        'Content-type: multipart/alternative;\n\tboundary="B_3794567890_0045"'
    )
    return message(headers, body), expected(
        about="Outlook for Mac: ordered list, a quote of the vendor's answer, but a new request (no reply headers)",
        title="Escáner de recepción no envía al correo",
        description_contains=["1. Escanear\n2. Elegir \"Enviar a correo\"\n3. Sale Error SMTP 535",
                              "> Deben habilitar la autenticación SMTP en el servidor.\n> Saludos"],
    )


@case("46-outlook-backslash-paths-and-unc")
def _() -> tuple[bytes, dict]:
    html = outlook_html(
        mso("Buenas,") + MSO_BLANK
        + mso("El archivo C:\\Users\\ana\\Documents\\informe.xlsx no abre desde la ruta de red "
              "\\\\srv-archivos\\finanzas\\2024\\marzo.")
        + mso("En el log aparece: <span style=\"font-family:Consolas\">ERROR [C:\\Program Files\\ERP\\bin\\app.exe]"
              " regex=^\\d{3}-\\w+$ \\n no encontrado</span>")
        + mso("Clave de registro: HKEY_LOCAL_MACHINE\\SOFTWARE\\ERP\\Config")
        + MSO_BLANK + mso("Ana")
    )
    plain = ("Buenas,\n\nEl archivo C:\\Users\\ana\\Documents\\informe.xlsx no abre desde la ruta de red "
             "\\\\srv-archivos\\finanzas\\2024\\marzo.\nEn el log aparece: ERROR [C:\\Program Files\\ERP\\bin\\app.exe]"
             " regex=^\\d{3}-\\w+$ \\n no encontrado\nClave de registro: HKEY_LOCAL_MACHINE\\SOFTWARE\\ERP\\Config\n\n"
             "Ana\n")
    body = multipart("_000_SJ0PR12MB5678A046_", [
        mime('Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable', qp(plain)),
        mime('Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable', qp(html)),
    ])
    headers = outlook_headers(
        ANA, "No abre C:\\Users\\ana\\Documents\\informe.xlsx", "SJ0PR12MB5678A046", "Tue, 2 Apr 2024 15:10:00 +0000",
        'multipart/alternative;\n\tboundary="_000_SJ0PR12MB5678A046_"',
    )
    return message(headers, body, crlf=True), expected(
        about="Backslashes everywhere (paths, UNC, regex, registry keys) survive verbatim, title included",
        title="No abre C:\\Users\\ana\\Documents\\informe.xlsx",
        description_contains=["C:\\Users\\ana\\Documents\\informe.xlsx", "\\\\srv-archivos\\finanzas\\2024\\marzo.",
                              "ERROR [C:\\Program Files\\ERP\\bin\\app.exe] regex=^\\d{3}-\\w+$ \\n no encontrado",
                              "HKEY_LOCAL_MACHINE\\SOFTWARE\\ERP\\Config"],
        description_excludes=["C:Users", "\\\\\\\\srv"],
    )


# --------------------------------------------------------------------------------------------
# winmail.dat (TNEF)
# --------------------------------------------------------------------------------------------


def _winmail_message(msgid: str, subject: str, tnef_data: bytes, plain: str | None) -> bytes:
    parts = []
    if plain is not None:
        parts.append(mime('Content-Type: text/plain; charset="iso-8859-1"\nContent-Transfer-Encoding: '
                          "quoted-printable", qp(plain, "cp1252")))
    parts.append(attachment_part('application/ms-tnef; name="winmail.dat"',
                                 'Content-Disposition: attachment; filename="winmail.dat"', tnef_data))
    body = multipart(f"_000_{msgid}_", parts)
    headers = outlook_headers(
        "=?iso-8859-1?Q?=D3scar_L=F3pez?= <oscar.lopez@cliente.test>", subject, msgid,
        "Wed, 3 Apr 2024 09:00:00 +0000", f'multipart/mixed;\n\tboundary="_000_{msgid}_"',
        f"X-MS-TNEF-Correlator: <{msgid}@SJ0PR12MB5678.namprd12.prod.outlook.com>",
    )
    headers = headers.replace("X-MS-TNEF-Correlator:\n", "", 1)
    return message(headers, body, crlf=True)


@case("47-winmail-dat-with-attachments")
def _() -> tuple[bytes, dict]:
    data = tnef([("Cotización licencias 2024.xlsx", "COTIZA~1.XLS", XLSX), ("Orden de compra 4471.pdf",
                                                                            "ORDEND~1.PDF", PDF)])
    plain = "Buenos días,\n\nAdjunto la cotización y la orden de compra para aprobar la renovación.\n\nÓscar López\n"
    return _winmail_message("SJ0PR12MB5678A047", "Aprobar renovacion de licencias", data, plain), expected(
        about="Outlook rich text: the files arrive inside winmail.dat (TNEF); they are unpacked with their names",
        title="Aprobar renovacion de licencias",
        sender_name="Óscar López",
        description_contains=["Adjunto la cotización y la orden de compra para aprobar la renovación."],
        attachments=[att("Cotización licencias 2024.xlsx", len(XLSX)), att("Orden de compra 4471.pdf", len(PDF))],
        defects_include=["tnef-unpacked"],
    )


@case("48-winmail-dat-html-body-only")
def _() -> tuple[bytes, dict]:
    html = ("<html><body><p>Buenas tardes,</p><p>El servidor de archivos no responde desde las 2 p.m.; adjunto "
            "el registro de eventos.</p><p>Óscar</p></body></html>")
    log = b"2024-04-03 14:02 ERROR disco lleno\r\n" * 20
    data = tnef([("Registro eventos.txt", "REGIST~1.TXT", log)], html=html)
    return _winmail_message("SJ0PR12MB5678A048", "Servidor de archivos no responde", data, None), expected(
        about="No MIME body at all: the HTML body inside winmail.dat becomes the description",
        title="Servidor de archivos no responde",
        description_contains=["Buenas tardes,\n\nEl servidor de archivos no responde desde las 2 p.m.; adjunto el "
                              "registro de eventos."],
        attachments=[att("Registro eventos.txt", len(log))],
        defects_include=["tnef-unpacked", "body-from-tnef"],
    )


@case("49-winmail-dat-rtf-body-only")
def _() -> tuple[bytes, dict]:
    rtf = (rb"{\rtf1\ansi\ansicpg1252\deff0\deflang3082{\fonttbl{\f0\fswiss Calibri;}}"
           rb"\pard\f0\fs22 Buenos d\'edas,\par\par La VPN se desconecta cada 10 minutos en la sede norte.\par"
           rb"\par Gracias,\par \'d3scar\par}")
    data = tnef([], rtf=rtf)
    return _winmail_message("SJ0PR12MB5678A049", "VPN se desconecta cada 10 minutos", data, None), expected(
        about="No MIME body and only a compressed RTF body in winmail.dat: decompressed and converted to text",
        title="VPN se desconecta cada 10 minutos",
        description_contains=["Buenos días,", "La VPN se desconecta cada 10 minutos en la sede norte.", "Óscar"],
        description_excludes=["\\par", "rtf1", "{"],
        defects_include=["tnef-unpacked", "body-from-tnef"],
    )


@case("50-winmail-dat-corrupt-kept")
def _() -> tuple[bytes, dict]:
    good = tnef([("Contrato.pdf", "CONTRA~1.PDF", PDF)])
    corrupt = good[:6] + struct.pack("<BII", 1, 0x00069003, 0x7FFFFFF0) + struct.pack("<I", 0xFFFFFFFF) + b"\x00" * 40
    plain = "Adjunto el contrato firmado para el proveedor de vigilancia.\n\nÓscar\n"
    return _winmail_message("SJ0PR12MB5678A050", "Contrato firmado proveedor vigilancia", corrupt, plain), expected(
        about="A winmail.dat that cannot be read (a property count of four billion): kept whole, defect recorded",
        title="Contrato firmado proveedor vigilancia",
        description_contains=["Adjunto el contrato firmado para el proveedor de vigilancia."],
        attachments=[att("winmail.dat", len(corrupt))],
        defects_include=["tnef-refused:property count larger than the data"],
    )


# --------------------------------------------------------------------------------------------
# Forwarded messages attached whole (message/rfc822)
# --------------------------------------------------------------------------------------------

INNER_BANK = (
    "From: Banco de Occidente <notificaciones@bancodeoccidente.test>\n"
    "To: tesoreria@cliente.test\n"
    "Subject: =?utf-8?Q?Transacci=C3=B3n_rechazada_N.=C2=BA_99812?=\n"
    "Date: Mon, 1 Apr 2024 18:00:00 -0500\n"
    "Message-ID: <99812@bancodeoccidente.test>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="inner0051"\n\n'
    "--inner0051\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    "La transacción 99812 fue rechazada por fondos insuficientes.\n"
    "--inner0051\nContent-Type: application/pdf; name=\"comprobante.pdf\"\nContent-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename=\"comprobante.pdf\"\n\n" + b64(PDF[:400]) + "\n--inner0051--\n"
)


@case("51-apple-new-request-with-attached-message")
def _() -> tuple[bytes, dict]:
    body = multipart("Apple-Mail=_51A1B2C3-0051", [
        mime("Content-Transfer-Encoding: quoted-printable\nContent-Type: text/plain;\n\tcharset=utf-8",
             qp("Hola,\n\nEl banco rechazó el pago pero el ERP lo muestra como aplicado. Va el correo del banco "
                "adjunto.\n\nMaría\n")),
        mime('Content-Disposition: attachment;\n\tfilename="=?utf-8?Q?Transacci=C3=B3n_rechazada_N.=C2=BA_99812.eml?="'
             '\nContent-Type: message/rfc822;\n\tname="=?utf-8?Q?Transacci=C3=B3n_rechazada_N.=C2=BA_99812.eml?="',
             INNER_BANK),
    ])
    headers = apple_headers(MARIA, "Pago rechazado aparece aplicado en el ERP", "51A1B2C3-0051",
                            "Wed, 3 Apr 2024 08:00:00 -0500",
                            'multipart/mixed;\n\tboundary="Apple-Mail=_51A1B2C3-0051"')
    return message(headers, body), expected(
        about="A whole message attached (message/rfc822) to a new request: one .eml, its text and files stay inside",
        title="Pago rechazado aparece aplicado en el ERP",
        description_contains=["El banco rechazó el pago pero el ERP lo muestra como aplicado."],
        description_excludes=["fondos insuficientes"],
        attachments=[att("Transacción rechazada N.º 99812.eml", None)],
    )


@case("52-outlook-forward-as-attachment-rv")
def _() -> tuple[bytes, dict]:
    body = multipart("_002_SJ0PR12MB5678A052_", [
        mime('Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable',
             qp("Para su conocimiento.\n")),
        mime('Content-Type: message/rfc822\nContent-Disposition: attachment;\n\tcreation-date="Wed, 03 Apr 2024 '
             '09:00:00 GMT"', INNER_BANK),
    ])
    headers = outlook_headers(
        "Tesorería <tesoreria@cliente.test>".replace("í", "=?utf-8?Q?=C3=AD?="), "RV: Transacción rechazada N.º 99812",
        "SJ0PR12MB5678A052", "Wed, 3 Apr 2024 09:05:00 +0000",
        'multipart/mixed;\n\tboundary="_002_SJ0PR12MB5678A052_"',
    )
    headers = headers.replace("From: Tesorer=?utf-8?Q?=C3=AD?=a", "From: =?utf-8?Q?Tesorer=C3=ADa?=")
    headers = headers.replace("Subject: RV: Transacción rechazada N.º 99812",
                              "Subject: RV: =?utf-8?Q?Transacci=C3=B3n_rechazada_N.=C2=BA_99812?=")
    return message(headers, body, crlf=True), expected(
        "forward",
        about="Outlook 'forward as attachment' with RV: — a forward, refused (R6), the attachment still readable",
        signals=["subject-prefix:RV"],
        title="RV: Transacción rechazada N.º 99812",
        attachments=[att("Transacción rechazada N.º 99812.eml", None)],
    )


# --------------------------------------------------------------------------------------------
# Out-of-office replies, in many languages and from many systems
# --------------------------------------------------------------------------------------------

ORIGINAL_REF = "<CAEx9a8b7c6d5e4f3@mail.gmail.com>"


def _ooo(
    name: str, subject: str, body: str, about: str, signals: list[str], *, headers: str = "", sender: str = "",
    crlf: bool = True, charset: str = "utf-8", tracked: bool = True,
) -> tuple[bytes, dict]:
    extra = headers
    if tracked:
        extra = f"In-Reply-To: {ORIGINAL_REF}\nReferences: {ORIGINAL_REF}\n" + extra
    head = outlook_headers(
        sender or "Lucía Restrepo <lucia.restrepo@cliente.test>", subject, f"SJ0PR12MB5678{name}",
        "Wed, 3 Apr 2024 10:00:00 +0000", f'text/plain; charset="{charset}"', extra + "Content-Transfer-Encoding: "
        "quoted-printable",
    )
    head = head.replace("Thread-Index: AdqFc0l1b3Jtb2xhYnJpbA==\n", "")
    return message(head, qp(body, charset), crlf=crlf), expected(
        "auto_reply", about=about, signals_include=signals, description_contains=[body.split("\n")[0]],
    )


@case("53-ooo-english-exchange-online")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A053", "Automatic reply: Payroll error", "I am out of the office until April 8 with limited access to email.",
        "Exchange Online in English: Auto-Submitted, X-Auto-Response-Suppress and the subject",
        ["header:auto-submitted=auto-generated", "header:x-auto-response-suppress", "subject:out-of-office"],
        headers="Auto-Submitted: auto-generated\nX-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: "
                "lucia.restrepo@cliente.test\n",
    )


@case("54-ooo-german-abwesenheitsnotiz-subject-only")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A054", "Abwesenheitsnotiz: Fehler in der Gehaltsabrechnung",
        "Ich bin bis zum 8. April nicht im Büro. In dringenden Fällen wenden Sie sich an it@kunde.test.",
        "German Exchange through a relay that stripped the auto headers: the subject alone says it",
        ["subject:out-of-office"], tracked=False,
    )


@case("55-ooo-french-reponse-automatique")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A055", "Réponse automatique : Erreur de paie".replace("é", "=?utf-8?Q?=C3=A9?="),
        "Je suis absente du bureau jusqu’au 8 avril.",
        "French Outlook: 'Réponse automatique :' (space before the colon) and Auto-Submitted",
        ["header:auto-submitted=auto-replied", "subject:out-of-office"],
        headers="Auto-Submitted: auto-replied\n",
    )


@case("56-ooo-italian-risposta-automatica")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A056", "Risposta automatica: Errore busta paga", "Sono fuori ufficio fino all'8 aprile.",
        "Italian: subject and X-Autoreply", ["header:x-autoreply", "subject:out-of-office"],
        headers="X-Autoreply: yes\n",
    )


@case("57-ooo-dutch-automatisch-antwoord")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A057", "Automatisch antwoord: Fout in salaris", "Ik ben afwezig tot en met 8 april.",
        "Dutch: subject and Precedence: auto_reply", ["header:precedence=auto_reply", "subject:out-of-office"],
        headers="Precedence: auto_reply\n",
    )


@case("58-ooo-danish-fravaer-latin1")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A058", "=?iso-8859-1?Q?Frav=E6r:_Fejl_i_l=F8n?=", "Jeg er på ferie til og med den 8. april.",
        "Danish: 'Fravær' in an ISO-8859-1 encoded word, body in latin-1, no auto headers",
        ["subject:out-of-office"], charset="iso-8859-1", tracked=False,
    )


@case("59-ooo-spanish-fuera-de-la-oficina-no-headers")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A059", "Fuera de la oficina: Solicitud 11877 creada",
        "Estaré de vacaciones hasta el 8 de abril. Para temas urgentes escriba a mesa@cliente.test.",
        "Spanish out-of-office that answers our acknowledgement, with no auto headers and no threading",
        ["subject:out-of-office"], tracked=False,
    )


@case("60-ooo-exchange-2003-autoreply")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A060", "Out of Office AutoReply: Solicitud 11877 creada", "Estoy fuera de la oficina hasta el lunes.",
        "Exchange 2003 'Out of Office AutoReply:' with its X-Auto-Response-Suppress-less headers",
        ["subject:out-of-office"], tracked=False,
    )


@case("61-ooo-lotus-notes-auto")
def _() -> tuple[bytes, dict]:
    return _ooo(
        "A061", "AUTO: Ricardo Londoño está fuera de la oficina (regreso el 08/04/2024)".replace(
            "Londoño está", "=?utf-8?Q?Londo=C3=B1o_est=C3=A1?="),
        "Estaré fuera de la oficina desde el 01/04/2024 y no tendré acceso al correo.",
        "Lotus Notes / Domino: 'AUTO: ... fuera de la oficina (regreso ...)' and X-Autorespond",
        ["header:x-autorespond", "subject:out-of-office"], headers="X-Autorespond: Ricardo Londono\n",
    )


@case("62-ooo-gmail-vacation-portuguese")
def _() -> tuple[bytes, dict]:
    body = "Estou de férias até 8 de abril. Responderei quando voltar."
    head = gmail_headers(
        "Manuela Cárdenas <manuela.cardenas@acme.test>".replace("Cárdenas", "=?UTF-8?Q?C=C3=A1rdenas?="),
        "Resposta automática: Erro na folha".replace("á", "=?UTF-8?Q?=C3=A1?="), "x62vacation00aa11bb22",
        "Wed, 3 Apr 2024 10:05:00 -0300", 'text/plain; charset="UTF-8"',
        f"Auto-Submitted: auto-replied\nPrecedence: bulk\nIn-Reply-To: {ORIGINAL_REF}\nReferences: {ORIGINAL_REF}",
    )
    head = head.replace("Subject: Resposta autom=?UTF-8?Q?=C3=A1?=tica",
                        "Subject: =?UTF-8?Q?Resposta_autom=C3=A1tica?=")
    head = head.replace("From: Manuela =?UTF-8?Q?C=C3=A1rdenas?=", "From: =?UTF-8?Q?Manuela_C=C3=A1rdenas?=")
    return message(head + "\nContent-Transfer-Encoding: quoted-printable", qp(body)), expected(
        "auto_reply",
        about="Gmail vacation responder in Portuguese: Auto-Submitted, Precedence: bulk, subject, threading",
        signals=["header:auto-submitted=auto-replied", "header:precedence=bulk", "subject:out-of-office",
                 "header:in-reply-to", "header:references"],
        title="Resposta automática: Erro na folha",
        description_contains=[body],
    )


# --------------------------------------------------------------------------------------------
# Bounces from several MTAs
# --------------------------------------------------------------------------------------------

ACK = (
    "From: Soporte <soporte@cliente.com.co>\nTo: usuario.inexistente@acme.test\n"
    "Subject: Solicitud 11890 creada\nDate: Wed, 3 Apr 2024 07:59:00 -0500\n"
    "Message-ID: <ack-11890@cliente.com.co>\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n\nSu solicitud 11890 fue creada.\n"
)


@case("63-bounce-exchange-ndr-spanish")
def _() -> tuple[bytes, dict]:
    html = ("<html><body><p><b><font color=\"#000066\" size=\"3\">Su mensaje no se pudo entregar a "
            "usuario.inexistente@acme.test</font></b></p><p>No se encontró la dirección de correo electrónico "
            "que ha especificado.</p><p>Código: 550 5.1.10 RESOLVER.ADR.RecipientNotFound</p></body></html>")
    body = multipart("_000_DM6PR12NDR0063_", [
        mime('Content-Type: multipart/alternative; differences=Content-Type;\n\tboundary="_001_DM6PR12NDR0063_"',
             multipart("_001_DM6PR12NDR0063_", [
                 mime('Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable',
                      qp("Su mensaje no se pudo entregar a usuario.inexistente@acme.test\n\nNo se encontró la "
                         "dirección.\n\nCódigo: 550 5.1.10 RESOLVER.ADR.RecipientNotFound\n")),
                 mime('Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable',
                      qp(html)),
             ])),
        mime("Content-Type: message/delivery-status",
             "Reporting-MTA: dns;DM6PR12MB0063.namprd12.prod.outlook.com\nReceived-From-MTA: "
             "dns;cliente.com.co\nArrival-Date: Wed, 3 Apr 2024 12:59:01 +0000\n\nFinal-Recipient: "
             "rfc822;usuario.inexistente@acme.test\nAction: failed\nStatus: 5.1.10\nDiagnostic-Code: smtp;550 "
             "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup\n"),
        mime("Content-Type: message/rfc822", ACK),
    ])
    headers = (
        "From: postmaster@acme.test\n"
        f"To: {MAILBOX}\n"
        "Date: Wed, 3 Apr 2024 12:59:03 +0000\n"
        "Subject: =?utf-8?Q?No_se_puede_entregar:_Solicitud_11890_creada?=\n"
        "Message-ID: <0063-ndr@DM6PR12MB0063.namprd12.prod.outlook.com>\n"
        "Auto-Submitted: auto-replied\n"
        "X-MS-Exchange-Message-Is-Ndr:\n"
        "Content-Language: es-ES\n"
        'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="_000_DM6PR12NDR0063_"\n'
        "MIME-Version: 1.0"
    )
    return message(headers, body, crlf=True), expected(
        "bounce",
        about="Exchange Online NDR in Spanish: multipart/report, postmaster, Auto-Submitted, 'No se puede entregar'",
        signals_include=["content-type:multipart/report", "sender:postmaster", "subject:delivery-failure",
                         "header:auto-submitted=auto-replied"],
        title="No se puede entregar: Solicitud 11890 creada",
        attachments=[att("delivery-status.txt", None, None), att("Solicitud 11890 creada.eml", None, None)],
    )


@case("64-bounce-gmail-dsn")
def _() -> tuple[bytes, dict]:
    body = multipart("000000000000b0064dsnbb", [
        mime("Content-Type: multipart/related; boundary=\"000000000000b0064rel\"",
             multipart("000000000000b0064rel", [
                 mime("Content-Type: multipart/alternative; boundary=\"000000000000b0064alt\"",
                      multipart("000000000000b0064alt", [
                          mime('Content-Type: text/plain; charset="UTF-8"',
                               "\n** No se ha podido entregar el mensaje **\n\nNo se ha encontrado la dirección "
                               "usuario.inexistente@acme.test.\n\nLa respuesta del servidor remoto ha sido:\n550 5.1.1 "
                               "The email account that you tried to reach does not exist.\n"),
                          mime('Content-Type: text/html; charset="UTF-8"',
                               "<html><body><h2>No se ha podido entregar el mensaje</h2><p>No se ha encontrado la "
                               "dirección <b>usuario.inexistente@acme.test</b>.</p><p>550 5.1.1 The email account "
                               "that you tried to reach does not exist.</p></body></html>\n"),
                      ])),
             ])),
        mime("Content-Type: message/delivery-status",
             "Reporting-MTA: dns; googlemail.com\nArrival-Date: Wed, 03 Apr 2024 06:00:00 -0700 (PDT)\n\n"
             "Final-Recipient: rfc822; usuario.inexistente@acme.test\nAction: failed\nStatus: 5.1.1\n"),
        mime("Content-Type: message/rfc822", ACK),
    ])
    headers = (
        "Return-Path: <>\n"
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
        f"To: {MAILBOX}\n"
        "Auto-Submitted: auto-replied\n"
        "Subject: Delivery Status Notification (Failure)\n"
        "References: <ack-11890@cliente.com.co>\n"
        "In-Reply-To: <ack-11890@cliente.com.co>\n"
        "Message-ID: <660d5e70.b0064.mailer-daemon@mx.google.com>\n"
        "Date: Wed, 03 Apr 2024 06:00:01 -0700 (PDT)\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; boundary="000000000000b0064dsnbb"; report-type=delivery-status'
    )
    return message(headers, body), expected(
        "bounce",
        about="Gmail's DSN: multipart/report with related/alternative inside, mailer-daemon, null Return-Path",
        signals_include=["content-type:multipart/report", "sender:mailer-daemon", "return-path:null",
                         "subject:delivery-failure", "header:in-reply-to"],
        title="Delivery Status Notification (Failure)",
        attachments=[att("delivery-status.txt", None, None), att("Solicitud 11890 creada.eml", None, None)],
    )


@case("65-bounce-qmail-plain-text")
def _() -> tuple[bytes, dict]:
    body = (
        "Hi. This is the qmail-send program at mail.acme.test.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<usuario.inexistente@acme.test>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        "--- Below this line is a copy of the message.\n\n" + ACK
    )
    headers = (
        "Return-Path: <>\n"
        "Date: 3 Apr 2024 13:00:02 -0000\n"
        "From: MAILER-DAEMON@mail.acme.test\n"
        f"To: {MAILBOX}\n"
        "Subject: failure notice\n"
    )
    return message(headers, body), expected(
        "bounce",
        about="qmail bounce: plain text, no multipart/report, no Message-ID; MAILER-DAEMON, <> and the subject",
        signals=["sender:mailer-daemon", "return-path:null", "subject:delivery-failure"],
        title="failure notice",
        description_contains=["Sorry, no mailbox here by that name. (#5.1.1)"],
    )


@case("66-bounce-exim-x-failed-recipients")
def _() -> tuple[bytes, dict]:
    body = (
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent "
        "error. The following address(es) failed:\n\n  usuario.inexistente@acme.test\n    host mx.acme.test "
        "[192.0.2.25]\n    SMTP error from remote mail server after RCPT TO:<usuario.inexistente@acme.test>:\n"
        "    550 5.1.1 User unknown\n\n------ This is a copy of the message, including all the headers. ------\n\n"
        + ACK
    )
    headers = (
        "Return-path: <>\n"
        "X-Failed-Recipients: usuario.inexistente@acme.test\n"
        "Auto-Submitted: auto-replied\n"
        "From: Mail Delivery System <Mailer-Daemon@mx1.cliente.com.co>\n"
        f"To: {MAILBOX}\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "Subject: Mail delivery failed: returning message to sender\n"
        "Message-Id: <E1rs0066-000Abc-1X@mx1.cliente.com.co>\n"
        "Date: Wed, 03 Apr 2024 08:00:03 -0500\n"
    )
    return message(headers, body), expected(
        "bounce",
        about="Exim bounce: text/plain with X-Failed-Recipients, Mailer-Daemon in mixed case",
        signals_include=["sender:mailer-daemon", "return-path:null", "header:x-failed-recipients",
                         "subject:delivery-failure", "header:auto-submitted=auto-replied"],
        title="Mail delivery failed: returning message to sender",
        description_contains=["550 5.1.1 User unknown"],
    )


@case("67-bounce-postfix-delay-warning")
def _() -> tuple[bytes, dict]:
    body = multipart("B0067.1712149200/mx.cliente.com.co", [
        mime("Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii",
             "This is the mail system at host mx.cliente.com.co.\n\n####################################\n"
             "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
             "####################################\n\nYour message could not be delivered for 4.0 hours.\n"),
        mime("Content-Description: Delivery report\nContent-Type: message/delivery-status",
             "Reporting-MTA: dns; mx.cliente.com.co\n\nFinal-Recipient: rfc822; lento@acme.test\nAction: delayed\n"
             "Status: 4.4.1\n"),
        mime("Content-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers",
             ACK.split("\n\n")[0] + "\n"),
    ], preamble="This is a MIME-encapsulated message.")
    headers = (
        "Return-Path: <>\n"
        "From: MAILER-DAEMON@mx.cliente.com.co (Mail Delivery System)\n"
        "Subject: Delayed Mail (still being retried)\n"
        f"To: {MAILBOX}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        '\tboundary="B0067.1712149200/mx.cliente.com.co"\n'
        "Message-Id: <20240403130000.B0067@mx.cliente.com.co>\n"
        "Date: Wed,  3 Apr 2024 08:00:00 -0500 (-05)"
    )
    return message(headers, body), expected(
        "bounce",
        about="Postfix delay warning (a DSN that is not a failure): still machine mail, never a request",
        signals=["content-type:multipart/report", "sender:mailer-daemon", "return-path:null",
                 "header:auto-submitted=auto-replied"],
        title="Delayed Mail (still being retried)",
        description_contains=["Your message could not be delivered for 4.0 hours."],
        attachments=[att("delivery-status.txt", None, None), att("adjunto-1.bin", None, None)],
    )


@case("68-read-receipt-disposition-notification")
def _() -> tuple[bytes, dict]:
    body = multipart("----=_NextPart_0068_MDN", [
        mime('Content-Type: text/plain;\n\tcharset="utf-8"\nContent-Transfer-Encoding: quoted-printable',
             qp("Su mensaje\n\n  Para: soporte@cliente.com.co\n  Asunto: Solicitud 11877 creada\n\nse leyó el "
                "miércoles, 3 de abril de 2024 10:15:00 a. m. (UTC-05:00).\n")),
        mime("Content-Type: message/disposition-notification",
             "Reporting-UA: cliente.test; Microsoft Outlook 16.0\nFinal-Recipient: rfc822;ana.quinonez@cliente.test\n"
             "Original-Message-ID: <ack-11877@cliente.com.co>\nDisposition: manual-action/MDN-sent-manually; "
             "displayed\n"),
    ])
    headers = (
        f"From: {ANA}\n"
        f"To: {MAILBOX}\n"
        "Subject: =?utf-8?Q?Le=C3=ADdo:_Solicitud_11877_creada?=\n"
        "Date: Wed, 3 Apr 2024 15:15:00 +0000\n"
        "Message-ID: <0068-mdn@SJ0PR12MB5678.namprd12.prod.outlook.com>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=disposition-notification;\n\tboundary="----=_NextPart_0068_MDN"'
    )
    return message(headers, body, crlf=True), expected(
        "auto_reply",
        about="An Outlook read receipt ('Leído:'): a disposition-notification report is machine mail, not a bounce",
        signals=["content-type:multipart/report;report-type=disposition-notification"],
        title="Leído: Solicitud 11877 creada",
        attachments=[att("mensaje-1.eml", None, None)],
    )


# --------------------------------------------------------------------------------------------
# Replies and forwards: counted, bracketed and translated prefixes
# --------------------------------------------------------------------------------------------


def _prefixed(name: str, subject_header: str, about: str, kind: str, signals: list[str], title: str,
              shape: str = "thunderbird", extra: str = "") -> tuple[bytes, dict]:
    body = "Gracias, ya funciona.\n\nEl 2/04/2024 a las 9:00, Soporte escribió:\n> Su solicitud 11877 fue creada.\n"
    builder = {"thunderbird": thunderbird_headers, "gmail": gmail_headers, "apple": apple_headers}[shape]
    head = builder(JOSE if shape == "thunderbird" else CARLOS, subject_header, f"prefix-{name}",
                   "Wed, 3 Apr 2024 11:00:00 -0500", "text/plain; charset=UTF-8", extra)
    return message(head + "\nContent-Transfer-Encoding: 8bit", body), expected(
        kind, about=about, signals=signals, title=title, description_contains=["Gracias, ya funciona."],
    )


@case("69-reply-counted-re-bracket-2-the-bat")
def _() -> tuple[bytes, dict]:
    return _prefixed("0069", "Re[2]: Solicitud 11877 creada", "The Bat!/Opera counted prefix 'Re[2]:' and no "
                     "threading headers", "reply", ["subject-prefix:RE"], "Re[2]: Solicitud 11877 creada")


@case("70-reply-ext-tag-before-re")
def _() -> tuple[bytes, dict]:
    return _prefixed("0070", "[EXT] RE: Solicitud 11877 creada", "A gateway's '[EXT]' tag before the reply prefix",
                     "reply", ["subject-prefix:RE"], "[EXT] RE: Solicitud 11877 creada")


@case("71-forward-rv-of-re-spanish-chain")
def _() -> tuple[bytes, dict]:
    return _prefixed("0071", "RV: RE: RE: Solicitud 11877 creada", "Spanish Outlook chain RV: RE: RE:", "reply",
                     ["subject-prefix:RV", "subject-prefix:RE"], "RV: RE: RE: Solicitud 11877 creada")


@case("72-reply-sv-swedish")
def _() -> tuple[bytes, dict]:
    return _prefixed("0072", "SV: Solicitud 11877 creada", "Swedish/Danish/Norwegian Outlook reply 'SV:'", "reply",
                     ["subject-prefix:SV"], "SV: Solicitud 11877 creada")


@case("73-forward-wg-german")
def _() -> tuple[bytes, dict]:
    return _prefixed("0073", "WG: Solicitud 11877 creada", "German Outlook forward 'WG:'", "forward",
                     ["subject-prefix:WG"], "WG: Solicitud 11877 creada")


@case("74-forward-enc-portuguese")
def _() -> tuple[bytes, dict]:
    return _prefixed("0074", "ENC: Solicitud 11877 creada", "Portuguese Outlook forward 'ENC:'", "forward",
                     ["subject-prefix:ENC"], "ENC: Solicitud 11877 creada")


@case("75-forward-gmail-fwd-with-x-forwarded")
def _() -> tuple[bytes, dict]:
    return _prefixed("0075", "Fwd: Solicitud 11877 creada", "Gmail forward: 'Fwd:' and X-Forwarded-Message-Id",
                     "forward", ["subject-prefix:FWD", "header:x-forwarded-message-id"], "Fwd: Solicitud 11877 creada",
                     shape="gmail", extra="X-Forwarded-Message-Id: <ack-11877@cliente.com.co>")


@case("76-reply-vs-finnish-and-antw-dutch")
def _() -> tuple[bytes, dict]:
    return _prefixed("0076", "VS: Antw: Solicitud 11877 creada", "Finnish 'VS:' over Dutch 'Antw:'", "reply",
                     ["subject-prefix:VS", "subject-prefix:ANTW"], "VS: Antw: Solicitud 11877 creada", shape="apple")


@case("77-new-ref-and-reunion-lookalikes")
def _() -> tuple[bytes, dict]:
    head = outlook_headers(ANA, "Ref: Reunión con proveedor – Re-instalación del antivirus".replace(
        "Reunión", "=?utf-8?Q?Reuni=C3=B3n?=").replace("– Re-instalación", "=?utf-8?Q?=E2=80=93_Re-instalaci=C3=B3n?="),
        "SJ0PR12MB5678A077", "Wed, 3 Apr 2024 16:00:00 +0000", 'text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit")
    body = "Necesitamos reinstalar el antivirus en los 12 equipos de la sala de juntas antes de la reunión.\n"
    return message(head, body, crlf=True), expected(
        about="'Ref:' and 'Re-instalación' look like prefixes and are not: new mail",
        signals=[],
        title="Ref: Reunión con proveedor – Re-instalación del antivirus",
        description_contains=["Necesitamos reinstalar el antivirus en los 12 equipos"],
    )


# --------------------------------------------------------------------------------------------
# Screenshots: cid: parts, data: URIs, repeated logos, tracking pixels
# --------------------------------------------------------------------------------------------


@case("78-thunderbird-data-uri-screenshots-repeated")
def _() -> tuple[bytes, dict]:
    shot, other = png(50, 30, 78), png(20, 20, 79)
    uri = "data:image/png;base64," + base64.b64encode(shot).decode()
    html = (
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta http-equiv=\"content-type\" content=\"text/html; "
        "charset=UTF-8\">\n  </head>\n  <body>\n    <p>Buenas tardes,</p>\n    <p>Al guardar la factura sale:</p>\n"
        f"    <p><img src=\"{uri}\" alt=\"\"></p>\n    <p>Y luego, al reintentar, otra vez lo mismo:</p>\n"
        f"    <p><img src=\"{uri}\" alt=\"\"></p>\n    <p>Y este icono:</p>\n"
        f"    <p><img src=\"data:image/png;base64,{base64.b64encode(other).decode()}\" moz-do-not-send=\"false\"></p>\n"
        "    <p>Gracias,<br>\n      José Luis</p>\n  </body>\n</html>\n"
    )
    head = thunderbird_headers(JOSE, "Error al guardar factura", "c3d4e5f6-0078", "Wed, 3 Apr 2024 12:00:00 -0500",
                               "text/html; charset=UTF-8", "Content-Transfer-Encoding: 7bit")
    return message(head, html), expected(
        about="Thunderbird pastes screenshots as data: URIs; the same one twice is attached once",
        title="Error al guardar factura",
        description_contains=["Al guardar la factura sale:\n\n[imagen: captura-1.png]",
                              "Y luego, al reintentar, otra vez lo mismo:\n\n[imagen: captura-1.png]",
                              "Y este icono:\n\n[imagen: captura-2.png]"],
        description_excludes=["data:", "base64"],
        attachments=[att("captura-1.png", len(shot), True), att("captura-2.png", len(other), True)],
    )


@case("79-apple-cid-screenshot-with-macos-name")
def _() -> tuple[bytes, dict]:
    shot = png(60, 40, 80)
    name = "Captura de pantalla 2024-04-03 a las 10.15.32\u202fa. m..png"
    html = ("<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\"></head><body "
            "style=\"overflow-wrap: break-word;\">Hola,<div><br></div><div>El ERP muestra esto al cerrar el mes:</div>"
            "<div><img src=\"cid:A1B2C3D4-0079-4E5F-8A9B-0079\" alt=\"" + name + "\"></div><div><br></div>"
            "<div>María</div></body></html>")
    body = multipart("Apple-Mail=_79A-ALT", [
        mime("Content-Transfer-Encoding: 7bit\nContent-Type: text/plain;\n\tcharset=us-ascii",
             "Hola,\n\nEl ERP muestra esto al cerrar el mes:\n\n\nMaria\n"),
        mime('Content-Type: multipart/related;\n\ttype="text/html";\n\tboundary="Apple-Mail=_79B-REL"',
             multipart("Apple-Mail=_79B-REL", [
                 mime("Content-Transfer-Encoding: quoted-printable\nContent-Type: text/html;\n\tcharset=utf-8",
                      qp(html)),
                 attachment_part(f"image/png;\n\tx-unix-mode=0644;\n\tname*=utf-8''{quote(name)}",
                                 f"Content-Disposition: inline;\n\tfilename*=utf-8''{quote(name)}", shot,
                                 "Content-Id: <A1B2C3D4-0079-4E5F-8A9B-0079>"),
             ])),
    ])
    head = apple_headers(MARIA, "ERP falla al cerrar el mes", "79A1B2C3-0079", "Wed, 3 Apr 2024 10:16:00 -0500",
                         'multipart/alternative;\n\tboundary="Apple-Mail=_79A-ALT"')
    return message(head, body), expected(
        about="Apple Mail screenshot with macOS's own name (narrow no-break space) in RFC 2231; plain part has no "
              "marker, so the HTML wins; the name's odd space becomes a plain one",
        title="ERP falla al cerrar el mes",
        description_contains=["El ERP muestra esto al cerrar el mes:\n[imagen: Captura de pantalla 2024-04-03 a las "
                              "10.15.32 a. m..png]"],
        attachments=[att(name.replace("\u202f", " "), len(shot), True)],
    )


@case("80-outlook-tracking-pixels-and-logo-thrice")
def _() -> tuple[bytes, dict]:
    logo, shot = png(90, 30, 81), png(70, 50, 82)
    html = outlook_html(
        mso("Buen día,") + MSO_BLANK + mso("El portal de clientes no carga el estado de cuenta:")
        + '<p class="MsoNormal"><img width="560" height="400" src="cid:image001.png@01DA8601.0080"><o:p></o:p></p>'
        + MSO_BLANK + mso("Cordialmente,")
        + '<p class="MsoNormal"><img width="90" height="30" src="cid:image002.png@01DA8601.0080" alt="Logo"></p>'
        + mso("Adriana Peña | Cartera")
        + '<p class="MsoNormal"><img width="90" height="30" src="cid:image003.png@01DA8601.0080" alt="Logo"></p>'
        + '<p class="MsoNormal"><img width="90" height="30" src="cid:image004.png@01DA8601.0080" alt="Logo"></p>'
        + '<img src="https://track.mailer.test/open?id=0080" width="1" height="1" alt="" style="display:block">'
        + '<img src="cid:image005.gif@01DA8601.0080" alt="">'
    )
    images = [("image001.png", shot), ("image002.png", logo), ("image003.png", logo), ("image004.png", logo),
              ("image005.gif", GIF_PIXEL)]
    related = multipart("_004_SJ0PR12MB5678A080_", [
        mime('Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable', qp(html)),
        *[attachment_part(f'image/{n.rsplit(".", 1)[1]}; name="{n}"',
                          f'Content-Description: {n}\nContent-Disposition: inline; filename="{n}"; size={len(d)}',
                          d, f"Content-ID: <{n}@01DA8601.0080>") for n, d in images],
    ])
    head = outlook_headers(
        "=?utf-8?Q?Adriana_Pe=C3=B1a?= <adriana.pena@cliente.test>", "Portal de clientes no carga estado de cuenta",
        "SJ0PR12MB5678A080", "Wed, 3 Apr 2024 13:00:00 +0000",
        'multipart/related;\n\tboundary="_004_SJ0PR12MB5678A080_";\n\ttype="text/html"',
    )
    return message(head, related, crlf=True), expected(
        about="A screenshot, the same signature logo as three parts, a remote 1x1 tracker and a 1x1 GIF part",
        title="Portal de clientes no carga estado de cuenta",
        description_contains=["El portal de clientes no carga el estado de cuenta:\n[imagen: image001.png]",
                              "Cordialmente,\n[imagen: image002.png]\nAdriana Peña | Cartera\n[imagen: image002.png]\n"
                              "[imagen: image002.png]"],
        description_excludes=["track.mailer", "image003", "image004", "image005"],
        attachments=[att("image001.png", len(shot), True), att("image002.png", len(logo), True)],
    )


@case("81-gmail-inline-image-plain-marker")
def _() -> tuple[bytes, dict]:
    shot = png(40, 40, 83)
    html = ("<div dir=\"ltr\">Buenas,<div><br></div><div>La app móvil se cierra al abrir pedidos:</div><div>"
            "<img src=\"cid:ii_lu0081ab0\" alt=\"pedidos.png\" width=\"320\" height=\"320\"><br></div><div><br></div>"
            "<div>Carlos</div></div>\n")
    plain = "Buenas,\n\nLa app móvil se cierra al abrir pedidos:\n[image: pedidos.png]\n\nCarlos\n"
    body = multipart("0000000000000081rel", [
        mime('Content-Type: multipart/alternative; boundary="0000000000000081alt"',
             multipart("0000000000000081alt", [
                 mime('Content-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: quoted-printable',
                      qp(plain)),
                 mime('Content-Type: text/html; charset="UTF-8"\nContent-Transfer-Encoding: quoted-printable',
                      qp(html)),
             ])),
        attachment_part('image/png; name="pedidos.png"', 'Content-Disposition: inline; filename="pedidos.png"', shot,
                        "Content-ID: <ii_lu0081ab0>\nX-Attachment-Id: ii_lu0081ab0"),
    ])
    head = gmail_headers(CARLOS, "App móvil se cierra al abrir pedidos".replace("móvil", "=?UTF-8?Q?m=C3=B3vil?="),
                         "x81inline00cc11dd22", "Wed, 3 Apr 2024 13:10:00 -0500",
                         'multipart/related; boundary="0000000000000081rel"')
    return message(head, body), expected(
        about="Gmail inline image: '[image: pedidos.png]' in the plain part and cid: in the HTML",
        title="App móvil se cierra al abrir pedidos",
        description_contains=["La app móvil se cierra al abrir pedidos:\n[imagen: pedidos.png]"],
        attachments=[att("pedidos.png", len(shot), True)],
    )


# --------------------------------------------------------------------------------------------
# Text: lists, links, long subjects, backslashes, emoji, invisible characters
# --------------------------------------------------------------------------------------------


@case("82-gmail-nested-lists-and-links")
def _() -> tuple[bytes, dict]:
    html = (
        "<div dir=\"ltr\"><div>Hola,</div><div><br></div><div>Para el nuevo empleado necesito:</div><ul>"
        "<li>Cuenta de correo</li><li>Acceso a:<ul><li>SharePoint de <b>Finanzas</b></li><li>ERP (solo consulta)</li>"
        "</ul></li><li>Licencia de <a href=\"https://www.office.com/\">Office</a></li></ul><div>Formato en "
        "<a href=\"https://www.google.com/url?q=https://intranet.cliente.test/formatos/ingreso&amp;sa=D\">este "
        "enlace</a>, o en <a href=\"https://intranet.cliente.test\">https://intranet.cliente.test</a>.</div>"
        "<div>Dudas a <a href=\"mailto:rrhh@cliente.test\">Recursos Humanos</a>.</div><div><br></div>"
        "<div>Gracias,</div><div>Carlos</div></div>\n"
    )
    plain = ("Hola,\n\nPara el nuevo empleado necesito:\n\n   - Cuenta de correo\n   - Acceso a:\n"
             "      - SharePoint de *Finanzas*\n      - ERP (solo consulta)\n   - Licencia de Office "
             "<https://www.office.com/>\n\nFormato en este enlace\n<https://www.google.com/url?q=https://intranet."
             "cliente.test/formatos/ingreso&sa=D>, o en https://intranet.cliente.test.\nDudas a Recursos Humanos "
             "<rrhh@cliente.test>.\n\nGracias,\nCarlos\n")
    body = multipart("0000000000000082alt", [
        mime('Content-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: quoted-printable', qp(plain)),
        mime('Content-Type: text/html; charset="UTF-8"\nContent-Transfer-Encoding: quoted-printable', qp(html)),
    ])
    head = gmail_headers(CARLOS, "Accesos para nuevo empleado", "x82lists00ee11ff22", "Wed, 3 Apr 2024 14:00:00 -0500",
                         'multipart/alternative; boundary="0000000000000082alt"')
    return message(head, body), expected(
        about="Gmail nested lists and links; its plain part already writes '<url>' after each link, so it is kept",
        title="Accesos para nuevo empleado",
        description_contains=["   - Cuenta de correo\n   - Acceso a:\n      - SharePoint de *Finanzas*\n"
                              "      - ERP (solo consulta)\n   - Licencia de Office <https://www.office.com/>",
                              "Dudas a Recursos Humanos <rrhh@cliente.test>."],
    )


@case("83-outlook-long-subject-shortened")
def _() -> tuple[bytes, dict]:
    subject = ("Solicitud urgente de revisión del proceso de facturación electrónica para los clientes "
               "corporativos de la sede norte y la sede principal")
    encoded = "=?utf-8?B?" + base64.b64encode(subject[:60].encode()).decode() + "?=\n =?utf-8?B?" + \
        base64.b64encode(subject[60:].encode()).decode() + "?="
    head = outlook_headers(ANA, encoded, "SJ0PR12MB5678A083", "Wed, 3 Apr 2024 17:00:00 +0000",
                           'text/plain; charset="utf-8"', "Content-Transfer-Encoding: base64")
    body = b64(b"Buenas tardes,\n\nLas facturas de los clientes corporativos salen sin el CUFE.\n\nAna\n")
    return message(head, body, crlf=True), expected(
        about="R7: a 135-character subject in two encoded words is cut at a word boundary; the full one opens the "
              "description",
        title="Solicitud urgente de revisión del proceso de facturación electrónica para los…",
        title_shortened=True,
        description_starts_with=subject + "\n\nBuenas tardes,",
    )


@case("84-thunderbird-flowed-backslashes-and-code")
def _() -> tuple[bytes, dict]:
    body = (
        "Hola,\n\nEl script de respaldo falla. Lo ejecuto desde \n"
        "C:\\Users\\ana\\Documents\\respaldo\\run.ps1 con la ruta \n"
        "\\\\nas01\\backup\\diario\\ y el error es:\n\n"
        "    Copy-Item : No se encuentra la ruta 'D:\\datos\\*.bak'\n"
        "    En C:\\scripts\\run.ps1:12 Carácter: 1\n\n"
        "La expresión que uso es ^[A-Z]:\\\\.*\\.bak$ y en JSON queda {\"ruta\": \"D:\\\\datos\"}.\n"
        "Un \\n literal y un \\t literal, no saltos.\n\n-- \nAna Cristina Quiñónez\n"
    )
    head = thunderbird_headers(ANA, "Script de respaldo falla en C:\\scripts\\run.ps1", "c3d4e5f6-0084",
                               "Wed, 3 Apr 2024 17:30:00 -0500", "text/plain; charset=UTF-8; format=flowed",
                               "Content-Transfer-Encoding: 8bit")
    return message(head, body), expected(
        about="A peer mangled every backslash; here paths, UNC, regex, JSON and literal \\n survive verbatim",
        title="Script de respaldo falla en C:\\scripts\\run.ps1",
        description_contains=[
            "Lo ejecuto desde C:\\Users\\ana\\Documents\\respaldo\\run.ps1 con la ruta "
            "\\\\nas01\\backup\\diario\\ y el error es:",
            "Copy-Item : No se encuentra la ruta 'D:\\datos\\*.bak'",
            "En C:\\scripts\\run.ps1:12 Carácter: 1",
            "^[A-Z]:\\\\.*\\.bak$ y en JSON queda {\"ruta\": \"D:\\\\datos\"}.",
            "Un \\n literal y un \\t literal, no saltos.",
        ],
    )


@case("85-apple-emoji-zwj-and-variation-selectors")
def _() -> tuple[bytes, dict]:
    body = ("Hola 👋🏽\n\nEl correo no sincroniza en el iPhone 📱 desde la actualización ⚠️.\n"
            "Ya reinicié 3️⃣ veces 👨‍💻 y nada.\n\n¡Gracias! 🙏\nMaría\n")
    head = apple_headers(MARIA, "=?utf-8?B?" + base64.b64encode("📱 Correo no sincroniza ⚠️".encode()).decode() + "?=",
                         "85A1B2C3-0085", "Wed, 3 Apr 2024 18:00:00 -0500", "text/plain;\n\tcharset=utf-8",
                         "Content-Transfer-Encoding: quoted-printable")
    return message(head, qp(body)), expected(
        about="R9: emoji (with skin tones, ZWJ sequences, keycaps, variation selectors) removed; text and accents kept",
        title="Correo no sincroniza ⚠",
        description_contains=["El correo no sincroniza en el iPhone desde la actualización ⚠.",
                              "veces y nada.", "¡Gracias!"],
        description_excludes=["📱", "👋", "🙏", "👨", "💻", "\u200d", "\ufe0f"],
    )


@case("86-zero-width-before-reply-prefix")
def _() -> tuple[bytes, dict]:
    subject = "\u200b\ufeffRE:\u00a0Solicitud 11877 creada"
    head = outlook_headers(ANA, "=?utf-8?B?" + base64.b64encode(subject.encode()).decode() + "?=",
                           "SJ0PR12MB5678A086", "Wed, 3 Apr 2024 18:10:00 +0000", 'text/plain; charset="utf-8"',
                           "Content-Transfer-Encoding: 8bit")
    body = "Gra\u200bcias, ya quedó.\u200d\n"
    return message(head, body, crlf=True), expected(
        "reply",
        about="Zero-width space and BOM hide 'RE:' from a naive check; it is still a reply",
        signals=["subject-prefix:RE"],
        title="RE: Solicitud 11877 creada",
        description_contains=["Gracias, ya quedó."],
    )


@case("87-emoji-only-subject-is-missing")
def _() -> tuple[bytes, dict]:
    head = apple_headers(MARIA, "=?utf-8?B?" + base64.b64encode("🔥🔥🔥".encode()).decode() + "?=", "87A1B2C3-0087",
                         "Wed, 3 Apr 2024 18:20:00 -0500", "text/plain;\n\tcharset=utf-8",
                         "Content-Transfer-Encoding: 8bit")
    body = "El servidor de impresión está caído otra vez.\n"
    return message(head, body), expected(
        decision="rejected",
        reason="missing_subject",
        about="R5/R7: a subject of emoji only is empty after R9 cleaning, so the subject is missing",
        title="",
        description_contains=["El servidor de impresión está caído otra vez."],
    )


@case("88-whitespace-only-body-is-missing")
def _() -> tuple[bytes, dict]:
    head = gmail_headers(CARLOS, "Falla VPN", "x88empty00aa11bb22", "Wed, 3 Apr 2024 18:30:00 -0500",
                         'text/plain; charset="UTF-8"', "")
    return message(head, " \n\u00a0\n\u200b\n\t\n"), expected(
        decision="rejected",
        reason="missing_body",
        body_present=False,
        about="R5: a body of blanks, a no-break space and a zero-width space is no body",
        title="Falla VPN",
    )


@case("89-hidden-only-html-body-is-missing")
def _() -> tuple[bytes, dict]:
    html = ("<html><body><div style=\"display:none\">Texto oculto de la plantilla</div>"
            "<p style=\"visibility:hidden\">tampoco</p><img src=\"https://track.test/p.gif\" width=\"1\" "
            "height=\"1\"></body></html>")
    head = gmail_headers(CARLOS, "Boletín", "x89hidden00aa11bb22", "Wed, 3 Apr 2024 18:40:00 -0500",
                         'text/html; charset="UTF-8"', "")
    return message(head, html), expected(
        decision="rejected",
        reason="missing_body",
        about="R5: HTML whose only text is hidden passes the cheap body check but cleans to nothing: refused",
        title="Boletín",
    )


# --------------------------------------------------------------------------------------------
# Bytes that are not mail, or break a limit: quarantined with their reason (R19)
# --------------------------------------------------------------------------------------------


@case("90-pdf-saved-as-eml")
def _() -> tuple[bytes, dict]:
    return PDF, {"about": "A PDF renamed to .eml: not mail, quarantined with its bytes", "kind": None,
                 "decision": "quarantined", "reason": "unparseable:not_mail", "unparseable": "not_mail"}


@case("91-mime-nested-too-deep")
def _() -> tuple[bytes, dict]:
    parts = [f"From: {ANA}\nTo: {MAILBOX}\nSubject: anidado\nMIME-Version: 1.0\n"
             "Content-Type: multipart/mixed; boundary=b0\n\n"]
    for level in range(1, 40):
        parts.append(f"--b{level - 1}\nContent-Type: multipart/mixed; boundary=b{level}\n\n")
    parts.append("--b39\nContent-Type: text/plain\n\nhola\n")
    parts += [f"--b{level}--\n" for level in reversed(range(40))]
    return "".join(parts).encode(), {
        "about": "40 nested multiparts: over the MIME depth limit (30), quarantined as mime_too_deep",
        "kind": None, "decision": "quarantined", "reason": "unparseable:mime_too_deep", "unparseable": "mime_too_deep",
    }


@case("92-gmail-sheets-table-paste")
def _() -> tuple[bytes, dict]:
    html = (
        "<div dir=\"ltr\">Buenas,<div><br></div><div>Estos equipos no tienen antivirus actualizado:</div><div><br>"
        "</div><google-sheets-html-origin><table xmlns=\"http://www.w3.org/1999/xhtml\" cellspacing=\"0\" "
        "cellpadding=\"0\" dir=\"ltr\" border=\"1\" style=\"table-layout:fixed;font-size:10pt;font-family:Arial;"
        "width:0px;border-collapse:collapse;border:none\"><colgroup><col width=\"100\"><col width=\"120\">"
        "<col width=\"90\"></colgroup><tbody><tr style=\"height:21px\"><td style=\"overflow:hidden;padding:2px 3px\">"
        "Equipo</td><td>Usuario</td><td>Versión</td></tr><tr><td>PC-CART-01</td><td>lmoreno</td><td>4.2.1</td></tr>"
        "<tr><td>PC-CART-07</td><td>&nbsp;</td><td>3.9.0</td></tr></tbody></table></google-sheets-html-origin>"
        "<div><br></div><div>Carlos</div></div>\n"
    )
    plain = ("Buenas,\n\nEstos equipos no tienen antivirus actualizado:\n\nEquipo Usuario Versión\nPC-CART-01 lmoreno "
             "4.2.1\nPC-CART-07 3.9.0\n\nCarlos\n")
    body = multipart("0000000000000092alt", [
        mime('Content-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: quoted-printable', qp(plain)),
        mime('Content-Type: text/html; charset="UTF-8"\nContent-Transfer-Encoding: quoted-printable', qp(html)),
    ])
    head = gmail_headers(CARLOS, "Equipos sin antivirus actualizado", "x92sheets00aa11bb22",
                         "Wed, 3 Apr 2024 19:00:00 -0500", 'multipart/alternative; boundary="0000000000000092alt"')
    return message(head, body), expected(
        about="A table pasted from Google Sheets; the plain part has as many words, so it is kept (rows on lines)",
        title="Equipos sin antivirus actualizado",
        description_contains=["Estos equipos no tienen antivirus actualizado:", "PC-CART-01 lmoreno 4.2.1"],
    )


@case("93-outlook-html-only-cp1252-smart-punctuation")
def _() -> tuple[bytes, dict]:
    html = outlook_html(
        mso("Buenas tardes:") + MSO_BLANK
        + mso("Cuando el agente escribe “Solución aplicada” en el caso, el sistema guarda “Soluci?n aplicada”.")
        + mso("Pasa con ñ, á, é, í, ó, ú, ü y el símbolo € — también con los guiones largos.")
        + MSO_BLANK + mso("Saludos,") + mso("Julián Zúñiga")
    )
    head = outlook_headers("=?Windows-1252?Q?Juli=E1n_Z=FA=F1iga?= <julian.zuniga@cliente.test>",
                           "=?Windows-1252?Q?Caracteres_da=F1ados_en_el_campo_=93soluci=F3n=94?=",
                           "SJ0PR12MB5678A093", "Wed, 3 Apr 2024 19:30:00 +0000",
                           'text/html; charset="Windows-1252"', "Content-Transfer-Encoding: quoted-printable")
    return message(head, qp(html, "cp1252"), crlf=True), expected(
        about="Outlook HTML in Windows-1252 with smart quotes, em dash and euro, subject in a Windows-1252 word",
        title="Caracteres dañados en el campo “solución”",
        sender_name="Julián Zúñiga",
        description_contains=["Cuando el agente escribe “Solución aplicada” en el caso",
                              "Pasa con ñ, á, é, í, ó, ú, ü y el símbolo € — también con los guiones largos."],
    )


# --------------------------------------------------------------------------------------------


def build(directory: Path = HERE) -> dict[str, bytes]:
    """Every file this script writes, by name (bytes)."""
    files: dict[str, bytes] = {}
    for name, make in CASES:
        raw, exp = make()
        files[f"{name}.eml"] = raw
        files[f"{name}.expected.json"] = (json.dumps(exp, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [name for name, data in files.items()
                 if not (HERE / name).exists() or (HERE / name).read_bytes() != data]
        for name in stale:
            print(f"differs: {name}")
        return 1 if stale else 0
    for name, data in files.items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(files)} files ({len(CASES)} cases) to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
