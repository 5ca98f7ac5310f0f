"""Realistic support mail for benchmarks: deterministic, offline, fast.

``generate_messages`` yields raw CRLF messages shaped like the mail a support mailbox receives:
plain text (Thunderbird), Outlook HTML with tables and bulleted lists, Gmail HTML, pasted
screenshots (multipart/related with a ``cid:`` PNG) and small attachments, in Spanish built from
word lists, with a chosen share of unknown senders, replies/forwards and auto-replies. The same
arguments always give the same bytes. Each message carries ``X-Mailgen-Expect`` with the outcome
the pipeline should reach (``created``, ``unknown_sender``, ``reply``, ``forward``, ``auto_reply``).

    python bench/mailgen.py --n 1000 --maildir var/bench/mailbox --users var/bench/users.csv
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import random
import struct
import sys
import textwrap
import time
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailservice.demo_seed import MaildirDelivery  # after the path bootstrap above

CRLF = "\r\n"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


BOGOTA = timezone(timedelta(hours=-5))
DEFAULT_START = datetime(2025, 12, 2, 7, 0, tzinfo=BOGOTA)
Part = tuple[str, str, bytes, tuple[str, ...]]  # content type, transfer encoding, body, extra headers

FIRST_NAMES = _words(
    "Ana María Carlos Andrés José Luis Lucía Hernán Paula Valentina Sebastián Daniela Camila Juan "
    "Santiago Natalia Felipe Laura Diego Catalina Julián Sofía Mateo Isabela Alejandro Mariana Óscar "
    "Ángela Jorge Manuela Ricardo Gloria Esteban Adriana Nicolás Viviana"
)
LAST_NAMES = _words(
    "Rodríguez Gómez González Martínez García López Hernández Sánchez Ramírez Pérez Díaz Muñoz Rojas "
    "Moreno Jiménez Vargas Castro Ortiz Suárez Quiñónez Castaño Zúñiga Ordóñez Núñez Peña Arévalo "
    "Londoño Restrepo Cárdenas Ospina Mejía Ibáñez Salazar Patiño Beltrán"
)
ASCII = str.maketrans("áéíóúüñÁÉÍÓÚÜÑ", "aeiouunAEIOUUN")

VERBS = (
    "ingresar a",
    "abrir",
    "imprimir desde",
    "generar reportes en",
    "aprobar facturas en",
    "sincronizar",
    "cargar archivos en",
    "exportar datos de",
    "instalar",
    "configurar",
    "actualizar",
    "consultar",
)
OBJECTS = (
    "el sistema de nómina",
    "el módulo de facturación electrónica",
    "la VPN",
    "el correo corporativo",
    "la impresora del tercer piso",
    "el portal de proveedores",
    "el ERP",
    "Teams",
    "la carpeta compartida",
    "el módulo de inventarios",
    "el escáner de recepción",
    "la base de datos de clientes",
    "el CRM",
    "la aplicación móvil",
    "el lector de código de barras",
    "el módulo de cartera",
    "SharePoint",
    "el sistema de turnos",
    "la intranet",
    "el certificado digital",
)
PLACES = (
    "la sede norte",
    "Bogotá",
    "Medellín",
    "Cali",
    "Barranquilla",
    "la sede principal",
    "el área de cartera",
    "recepción",
    "la bodega de Funza",
    "contabilidad",
    "el centro de distribución",
    "gerencia",
)
SYMPTOMS = (
    "no responde",
    "muestra la pantalla en blanco",
    "se cierra inesperadamente",
    "pide la clave cada cinco minutos",
    "está muy lento",
    "no envía correos",
    "muestra el error 500",
    "no carga los adjuntos",
    "rechaza el usuario",
    "duplica los registros",
    "no guarda los cambios",
)
REQUESTS = (
    "acceso",
    "permisos",
    "instalación",
    "creación de usuario",
    "cambio de contraseña",
    "licencia",
    "soporte",
    "capacitación",
    "restablecimiento",
    "revisión",
    "cotización",
    "configuración",
)
SUBJECTS = (
    "Error al {verb} {object}",
    "No puedo {verb} {object}",
    "Falla en {object} en {place}",
    "Solicitud de {request} para {object}",
    "Lentitud en {object}",
    "Problema con {object} en {place}",
    "Requiero {request} de {object}",
    "{Object} {symptom}",
    "Urgente: {object} {symptom}",
)
SENTENCES = (
    "Desde esta mañana {object} {symptom} y no podemos continuar con el trabajo.",
    "Ya intentamos reiniciar el equipo y borrar la caché del navegador, pero el error continúa.",
    "El problema se presenta en {place} y afecta a {n} personas del área.",
    "Necesitamos {request} para {object} antes del cierre de mes.",
    "Al intentar {verb} {object} aparece el mensaje «{symptom}».",
    "Adjunto la evidencia del error para su revisión.",
    "Por favor su colaboración con la revisión, ya que {object} es crítico para la operación.",
    "El usuario afectado es {name} y su extensión es la {ext}.",
    "Esto ocurre desde la actualización del fin de semana.",
    "Otros compañeros de {place} sí pueden {verb} {object} sin problema.",
)
GREETINGS = ("Cordial saludo,", "Buenos días,", "Buenas tardes,", "Hola equipo de soporte,", "Buen día,")
CLOSINGS = (
    "Quedo atento.",
    "Quedo atenta.",
    "Muchas gracias.",
    "Gracias por su colaboración.",
    "Agradezco su pronta respuesta.",
    "Quedo atento a sus comentarios.",
)
FILLER = _words(
    "el la los las de del en para por con sin sobre entre desde hasta que cuando donde porque también "
    "además sistema usuario equipo área reporte proceso cliente factura proveedor contrato servidor "
    "información solicitud revisión validación cambio acceso documento archivo pantalla error mensaje "
    "semana mes día hora mañana tarde oficina sede red conexión correo carpeta módulo datos cierre "
    "pago cartera nómina inventario compra venta orden estado pendiente aprobado rechazado urgente "
    "necesario posible importante actualización configuración instalación licencia política seguridad "
    "respaldo copia prueba ambiente producción soporte técnico agente mesa ayuda gestión operación"
)
EMOJI = ("🙏", "😩", "👍", "🔥", "📎", "⚠️", "😊")
ATTACHMENTS = (
    ("application/pdf", "factura_FE-{n}.pdf", b"%PDF-1.4\n"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "reporte_{place}_{n}.xlsx", b"PK\x03\x04"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "acta_reunión_{n}.docx", b"PK\x03\x04"),
    ("image/jpeg", "evidencia_{n}.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    ("application/zip", "logs_{n}.zip", b"PK\x03\x04"),
)
# Shares of the shapes of new mail; messages with files carry most of the bytes.
SHAPES = (("plain", 0.30), ("outlook", 0.30), ("gmail", 0.18), ("screenshot", 0.12), ("attachment", 0.10))
_BODY_MEAN = 3300  # measured mean size in bytes of a message without files (headers + text + HTML)
_BASE64 = 4 / 3 * 78 / 76  # encoded size per raw byte, with CRLF line ends


def _encoded_words(text: str, width: int = 62) -> str:
    """RFC 2047 base64 encoded words for a non-ASCII header value, folded onto continuation lines."""
    if text.isascii():
        return text
    words, current = [], ""
    for char in text:
        candidate = current + char
        if current and 12 + 4 * ((len(candidate.encode()) + 2) // 3) > width:
            words.append(current)
            current = char
        else:
            current = candidate
    words.append(current)
    return "\r\n ".join(f"=?utf-8?B?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def _address(name: str, addr: str) -> str:
    if name.isascii():
        return f'"{name}" <{addr}>' if any(c in name for c in ',.;:"') else f"{name} <{addr}>"
    return f"{_encoded_words(name)}\r\n <{addr}>"


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def _flowed(text: str, width: int = 72) -> str:
    """format=flowed (RFC 3676) as Thunderbird writes it: long lines end in a space at each soft break."""
    out = []
    for line in text.split(CRLF):
        if len(line) <= width or line == "-- ":
            out.append(line)
            continue
        out.append(" \r\n".join(textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)))
    return CRLF.join(out)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _png(width: int, height: int, rng: random.Random) -> bytes:
    """A screenshot-like PNG: flat window chrome and text rows with some noise (compresses like one)."""
    rows = bytearray()
    noise = rng.randbytes(width * 3)
    for y in range(height):
        rows.append(0)
        if y < 6:
            rows += bytes((0, 84, 166)) * width
        elif y % 9 in (3, 4):
            rows += noise[: width * 3]
            noise = noise[7:] + noise[:7]
        else:
            rows += b"\xfa\xfa\xfa" * width

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


def _display_name(addr: str) -> str:
    local = addr.split("@", 1)[0]
    parts = (part.strip("0123456789") for part in local.replace("_", ".").split("."))
    return " ".join(part.capitalize() for part in parts if part) or local


class _Writer:
    """Builds one generator run's messages; all randomness comes from one seeded ``Random``."""

    def __init__(self, rng: random.Random, mailbox: str, known: list[str], avg_kb: float) -> None:
        self.rng = rng
        self.mailbox = mailbox
        self.known = known
        self.avg_bytes = avg_kb * 1024
        self.screenshots = [_png(rng.choice((320, 480, 640)), rng.choice((120, 200, 260)), rng) for _ in range(6)]
        share = dict(SHAPES)["attachment"]
        self.file_mean = max(1024.0, (self.avg_bytes - _BODY_MEAN) / (share * _BASE64))

    # -- words -----------------------------------------------------------------------------
    def fill(self, template: str) -> str:
        r = self.rng
        obj = r.choice(OBJECTS)
        return template.format(
            verb=r.choice(VERBS),
            object=obj,
            Object=obj[0].upper() + obj[1:],
            place=r.choice(PLACES),
            symptom=r.choice(SYMPTOMS),
            request=r.choice(REQUESTS),
            n=r.randint(2, 40),
            name=f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}",
            ext=r.randint(100, 4999),
        )

    def filler_paragraph(self) -> str:
        r = self.rng
        sentences = []
        for _ in range(r.randint(2, 5)):
            words = r.choices(FILLER, k=r.randint(8, 18))
            sentences.append(words[0].capitalize() + " " + " ".join(words[1:]) + ".")
        return " ".join(sentences)

    def paragraphs(self, extra: int) -> list[str]:
        r = self.rng
        body = [self.fill(t) for t in r.sample(SENTENCES, r.randint(2, 4))]
        if r.random() < 0.05:
            body[-1] += " " + r.choice(EMOJI)
        return [
            " ".join(body[: len(body) // 2 + 1]),
            " ".join(body[len(body) // 2 + 1 :]) or r.choice(SENTENCES[1:2]),
        ] + [self.filler_paragraph() for _ in range(extra)]

    # -- bodies ------------------------------------------------------------------------------
    def plain(self, greeting: str, paras: list[str], closing: str, signature: list[str]) -> str:
        return (
            CRLF.join([greeting, "", *(p for para in paras for p in (para, "")), closing, "", "-- ", *signature]) + CRLF
        )

    def outlook_html(self, greeting: str, paras: list[str], closing: str, signature: list[str]) -> str:
        r = self.rng

        def p(text: str) -> str:
            return (
                f"<p class=MsoNormal>{text}<o:p></o:p></p>\n" if text else "<p class=MsoNormal><o:p>&nbsp;</o:p></p>\n"
            )

        html = [
            '<html xmlns:o="urn:schemas-microsoft-com:office:office" xmlns="http://www.w3.org/TR/REC-html40">'
            '<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            '<meta name="Generator" content="Microsoft Word 15 (filtered medium)"><style><!--\n'
            'p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm;font-size:11.0pt;font-family:"Calibri",sans-serif;}\n'
            "a:link, span.MsoHyperlink {mso-style-priority:99;color:#0563C1;text-decoration:underline;}\n"
            "@page WordSection1 {size:612.0pt 792.0pt;margin:70.85pt 3.0cm 70.85pt 3.0cm;}\n"
            "div.WordSection1 {page:WordSection1;}\n--></style><!--[if gte mso 9]><xml>\n"
            '<o:shapedefaults v:ext="edit" spidmax="1026" />\n</xml><![endif]--></head>\n'
            '<body lang="ES-CO" link="#0563C1" vlink="#954F72" style="word-wrap:break-word">\n'
            '<div class="WordSection1">\n',
            p(greeting),
            p(""),
        ]
        for para in paras:
            html += [p(para), p("")]
        if r.random() < 0.5:
            rows = [("Caso", "Usuario", "Estado")] + [
                (
                    f"{r.randint(10000, 99999)}",
                    f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}",
                    r.choice(("Pendiente", "Abierto", "Rechazado")),
                )
                for _ in range(r.randint(2, 6))
            ]
            html.append(
                "<table class=MsoTableGrid border=1 cellspacing=0 cellpadding=0 style='border-collapse:collapse'>\n"
            )
            for row in rows:
                html.append(
                    "<tr>"
                    + "".join(
                        f"<td valign=top style='border:solid windowtext 1.0pt;padding:0cm 5.4pt'><p class=MsoNormal>{c}"
                        "<o:p></o:p></p></td>"
                        for c in row
                    )
                    + "</tr>\n"
                )
            html += ["</table>\n", p("")]
        if r.random() < 0.5:
            for _ in range(r.randint(2, 4)):
                html.append(
                    "<p class=MsoListParagraph style='text-indent:-18.0pt;mso-list:l0 level1 lfo1'>"
                    "<![if !supportLists]><span style='font-family:Symbol'>·"
                    "<span style='font:7.0pt \"Times New Roman\"'>"
                    f"&nbsp;&nbsp;&nbsp; </span></span><![endif]>{self.fill(r.choice(SENTENCES))}<o:p></o:p></p>\n"
                )
            html.append(p(""))
        if r.random() < 0.4:
            html += [
                p(f'Enlace: <a href="https://intranet.cliente.test/casos/{r.randint(1000, 9999)}">ver el caso</a>'),
                p(""),
            ]
        html.append(p(closing))
        html += [p(f"<b><span style='color:#1F3864'>{line}</span></b>") for line in signature[:1]]
        html += [p(f"<span style='font-size:9.0pt;color:#595959'>{line}</span>") for line in signature[1:]]
        html.append("</div>\n</body>\n</html>\n")
        return "".join(html)

    def gmail_html(self, greeting: str, paras: list[str], closing: str, signature: list[str], img: str = "") -> str:
        lines = [greeting, "", *(p for para in paras for p in (para, "")), img, closing]
        body = "".join(f"<div>{line}</div>" if line else "<div><br></div>" for line in lines)
        sig = "<br>".join(signature)
        return (
            f'<div dir="ltr">{body}<div><br></div><span class="gmail_signature_prefix">-- </span><br>'
            f'<div dir="ltr" class="gmail_signature">{sig}</div></div>\n'
        )

    # -- one message ---------------------------------------------------------------------------
    def message(self, index: int, when: datetime, kind: str, unknown: bool) -> bytes:
        r = self.rng
        if unknown:
            name = f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}"
            local = name.lower().translate(ASCII).replace(" ", ".")
            sender = f"{local}{r.randint(1, 999)}@externo-{r.randint(1, 50)}.test"
        else:
            sender = r.choice(self.known)
            name = _display_name(sender)
            if r.random() < 0.15:  # senders type their address in any case (R4 matches it case-insensitively)
                local, _, domain = sender.partition("@")
                sender = r.choice((sender.upper(), f"{local.title()}@{domain}", f"{local}@{domain.upper()}"))
        domain = sender.rsplit("@", 1)[-1].lower()
        subject = self.fill(r.choice(SUBJECTS))
        if r.random() < 0.03:
            subject += " " + r.choice(EMOJI)
        shape = r.choices([s for s, _ in SHAPES], [w for _, w in SHAPES])[0]
        target = max(1500.0, r.gammavariate(2.0, self.file_mean / 2)) if shape == "attachment" else 0
        extra = r.choice((0, 0, 1, 1, 2, 3))

        headers = [
            ("From", _address(name, sender)),
            ("To", r.choice((self.mailbox, f"Mesa de Ayuda <{self.mailbox}>"))),
        ]
        if r.random() < 0.1:
            headers.append(("Cc", _address(_display_name(self.known[0]), self.known[0])))
        expect = "unknown_sender" if unknown else "created"
        if kind == "reply":
            prefix = r.choice(("RE: ", "Re: ", "RE: RE: ", "Re[2]: ", "RV: ", "FW: ", "Fwd: "))
            subject = prefix + subject
            expect = "forward" if prefix in ("RV: ", "FW: ", "Fwd: ") else "reply"
            if expect == "reply" and r.random() < 0.8:
                ref = f"<{r.getrandbits(64):016x}.ack@helppeople.test>"
                headers += [("In-Reply-To", ref), ("References", ref)]
        elif kind == "auto":
            subject = r.choice(("Respuesta automática: ", "Fuera de la oficina: ", "Automatic reply: ")) + subject
            headers.append(
                r.choice(
                    (
                        ("Auto-Submitted", "auto-replied"),
                        ("X-Auto-Response-Suppress", "All"),
                        ("Precedence", "auto_reply"),
                        ("X-Autoreply", "yes"),
                    )
                )
            )
            expect = "auto_reply"
            shape, extra = "plain", 0
        headers += [
            ("Subject", _encoded_words(subject)),
            ("Date", format_datetime(when)),
            ("Message-ID", f"<{r.getrandbits(80):020x}.{index}@{domain}>"),
            ("X-Mailgen-Expect", expect),
            ("MIME-Version", "1.0"),
        ]

        greeting, closing = r.choice(GREETINGS), r.choice(CLOSINGS)
        paras = self.paragraphs(extra)
        signature = [
            name,
            r.choice(("Analista", "Coordinador", "Auxiliar", "Jefe", "Líder"))
            + " de "
            + r.choice(("Cartera", "Compras", "Nómina", "Tesorería", "Operaciones", "Calidad")),
            f"Tel. 601 {r.randint(200, 899)} {r.randint(1000, 9999)}",
        ]
        seq = f"{index:06d}{r.getrandbits(40):010x}"

        if shape == "plain" or kind == "auto":
            text = self.plain(greeting, paras, closing, signature)
            if r.random() < 0.5:
                content = self.part('text/plain; charset="utf-8"; format=flowed', "8bit", _flowed(text).encode("utf-8"))
            else:
                content = self.part('text/plain; charset="utf-8"', "quoted-printable", _qp(text))
        elif shape == "screenshot":
            cid = f"image001.png@01DC{seq[:4].upper()}.{seq[6:14].upper()}"
            html = self.gmail_html(greeting, paras, closing, signature, f'<img src="cid:{cid}" width="480">')
            related = self.multipart(
                "related",
                [
                    self.part('text/html; charset="utf-8"', "quoted-printable", _qp(html)),
                    self.part(
                        "image/png",
                        "base64",
                        _b64(r.choice(self.screenshots)),
                        [f"Content-ID: <{cid}>", "Content-Disposition: inline"],
                    ),
                ],
                seq + "r",
            )
            content = self.multipart(
                "alternative",
                [
                    self.part(
                        'text/plain; charset="utf-8"',
                        "quoted-printable",
                        _qp(self.plain(greeting, paras, closing, signature)),
                    ),
                    related,
                ],
                seq + "a",
            )
        else:
            html = (self.outlook_html if shape in ("outlook", "attachment") and r.random() < 0.6 else self.gmail_html)(
                greeting, paras, closing, signature
            )
            content = self.multipart(
                "alternative",
                [
                    self.part(
                        'text/plain; charset="utf-8"',
                        "quoted-printable",
                        _qp(self.plain(greeting, paras, closing, signature)),
                    ),
                    self.part('text/html; charset="utf-8"', "quoted-printable", _qp(html)),
                ],
                seq + "a",
            )
        if target:
            files = [content]
            count = 1 if r.random() < 0.8 else 2
            for _ in range(count):
                mime, pattern, magic = r.choice(ATTACHMENTS)
                size = max(200, int(target / count))
                filename = pattern.format(n=r.randint(1000, 99999), place=r.choice(("norte", "sur", "bogota")))
                if filename.isascii():
                    content_type, disposition = f'{mime}; name="{filename}"', f'attachment; filename="{filename}"'
                else:  # RFC 2231, as Thunderbird and Apple Mail write non-ASCII file names
                    content_type, disposition = mime, f"attachment; filename*=utf-8''{quote(filename, safe='')}"
                data = magic + r.randbytes(size - len(magic))
                files.append(self.part(content_type, "base64", _b64(data), [f"Content-Disposition: {disposition}"]))
            content = self.multipart("mixed", files, seq + "m")

        content_type, cte, body, extra_headers = content
        head = [f"{n}: {v}" for n, v in headers] + [f"Content-Type: {content_type}"]
        if cte:
            head.append(f"Content-Transfer-Encoding: {cte}")
        head += extra_headers
        return (CRLF.join(head) + CRLF + CRLF).encode("ascii") + body

    @staticmethod
    def part(content_type: str, cte: str, body: bytes, extra: Iterable[str] = ()) -> Part:
        return content_type, cte, body, tuple(extra)

    @staticmethod
    def multipart(subtype: str, parts: list[Part], token: str) -> Part:
        boundary = f"_{subtype[:3]}_{token}_"
        out = [b"This is a multi-part message in MIME format.\r\n\r\n"] if subtype == "mixed" else []
        for content_type, cte, body, extra in parts:
            head = [f"Content-Type: {content_type}", *([f"Content-Transfer-Encoding: {cte}"] if cte else []), *extra]
            out.append(f"--{boundary}\r\n{CRLF.join(head)}\r\n\r\n".encode("ascii") + body)
            if not body.endswith(b"\r\n"):
                out.append(b"\r\n")
        out.append(f"--{boundary}--\r\n".encode("ascii"))
        return f'multipart/{subtype};\r\n boundary="{boundary}"', "", b"".join(out), ()


def generate_messages(
    n: int,
    *,
    seed: int = 7,
    mailbox: str = "soporte@helppeople.test",
    known_senders: list[str],
    unknown_share: float = 0.05,
    reply_share: float = 0.1,
    auto_share: float = 0.03,
    avg_kb: float = 20,
    start: datetime = DEFAULT_START,
) -> Iterator[bytes]:
    """Yield ``n`` raw CRLF messages to ``mailbox``, the same bytes for the same arguments.

    ``unknown_share`` of them come from senders outside ``known_senders``; ``reply_share`` are
    replies or forwards (RE:, Re[2]:, RV:, FW:, In-Reply-To) and ``auto_share`` auto-replies; the
    rest are new requests. Sizes average about ``avg_kb`` KiB: most mail is a few KiB of text and
    HTML, and a minority with files carries the rest. ``start`` is the first Date header.
    """
    if not known_senders:
        raise ValueError("known_senders is empty: pass the addresses of the user matrix (see make_users)")
    rng = random.Random(seed)
    writer = _Writer(rng, mailbox, list(known_senders), avg_kb)
    when = start
    for index in range(n):
        roll = rng.random()
        kind = "auto" if roll < auto_share else "reply" if roll < auto_share + reply_share else "new"
        unknown = rng.random() < unknown_share
        when += timedelta(seconds=rng.randint(5, 90))
        yield writer.message(index, when, kind, unknown)


def make_users(count: int, *, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` distinct (email, name) users with Colombian names, for a benchmark's user matrix."""
    rng = random.Random(seed)
    users: dict[str, str] = {}
    domains = ("cliente.test", "acme.test", *(f"empresa-{k}.test" for k in range(1, 9)))
    while len(users) < count:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower().translate(ASCII)
        email = f"{local}{rng.randint(1, 99) if rng.random() < 0.5 else ''}@{rng.choice(domains)}"
        users.setdefault(email, f"{first} {last}")
    return list(users.items())


def write_maildir(path: Path, messages: Iterable[bytes], received_at: datetime) -> int:
    """Deliver ``messages`` into the Maildir at ``path`` as received at ``received_at``; return the count.

    File names start with ``int(received_at.timestamp())`` (the received time the Maildir block
    reads) and each file's mtime is ``received_at``, as ``mailservice.demo_seed`` does.
    """
    return MaildirDelivery(Path(path), received_at).add_all(messages)


def write_users_csv(path: Path, emails: Iterable[str | tuple[str, str]]) -> int:
    """Write a user matrix CSV (``email,name``); a bare address gets a name from its local part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["email", "name"])
        for item in emails:
            email, name = item if isinstance(item, tuple) else (item, _display_name(item))
            writer.writerow([email, name])
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate realistic support mail into a Maildir for benchmarks.")
    parser.add_argument("--n", type=int, default=1000, help="number of messages (default 1000)")
    parser.add_argument("--maildir", type=Path, required=True, help="Maildir to create or add to")
    parser.add_argument("--users", type=Path, help="write the user matrix CSV (email,name) here")
    parser.add_argument("--known", type=int, default=200, help="number of known users (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mailbox", default="soporte@helppeople.test")
    parser.add_argument("--avg-kb", type=float, default=20)
    parser.add_argument("--unknown-share", type=float, default=0.05)
    parser.add_argument("--reply-share", type=float, default=0.1)
    parser.add_argument("--auto-share", type=float, default=0.03)
    parser.add_argument(
        "--received-at",
        type=datetime.fromisoformat,
        default=None,
        help="ISO time the mail arrived (default: now); names and mtimes use it",
    )
    args = parser.parse_args(argv)

    users = make_users(args.known, seed=args.seed)
    if args.users:
        write_users_csv(args.users, users)
    received_at = args.received_at or datetime.now().astimezone()
    began = time.perf_counter()
    messages = generate_messages(
        args.n,
        seed=args.seed,
        mailbox=args.mailbox,
        known_senders=[email for email, _ in users],
        unknown_share=args.unknown_share,
        reply_share=args.reply_share,
        auto_share=args.auto_share,
        avg_kb=args.avg_kb,
    )
    total = 0

    def counted() -> Iterator[bytes]:
        nonlocal total
        for raw in messages:
            total += len(raw)
            yield raw

    written = write_maildir(args.maildir, counted(), received_at)
    elapsed = time.perf_counter() - began
    print(
        f"wrote {written} messages ({total / 1024 / max(written, 1):.1f} KiB average, {total / 1e6:.1f} MB) "
        f"to {args.maildir} in {elapsed:.2f} s" + (f"; users: {args.users}" if args.users else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
