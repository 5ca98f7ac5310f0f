"""R8: HTML mail becomes readable plain text; nothing a mail client hides survives."""

from __future__ import annotations

import time

from tasks.html_text import html_to_text, is_tracking_pixel


def test_paragraphs_are_separated_by_a_blank_line_and_br_breaks_a_line() -> None:
    html = "<p>Hola equipo,</p><p>El sistema <b>no</b>   responde.<br>Desde ayer.</p>"
    assert html_to_text(html) == "Hola equipo,\n\nEl sistema no responde.\nDesde ayer."


def test_gmail_divs_are_lines_and_empty_div_with_br_is_a_blank_line() -> None:
    html = "<div>Línea 1</div><div><br></div><div>Línea 2</div><div>Línea 3</div>"
    assert html_to_text(html) == "Línea 1\n\nLínea 2\nLínea 3"


def test_outlook_mso_paragraphs_are_single_lines_and_nbsp_paragraph_is_blank() -> None:
    html = (
        '<p class="MsoNormal">Buenos días<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
        '<p class="MsoNormal">Adjunto evidencia<o:p></o:p></p><p class="MsoNormal">Gracias</p>'
    )
    assert html_to_text(html) == "Buenos días\n\nAdjunto evidencia\nGracias"


def test_list_items_get_dashes_and_ordered_items_get_numbers() -> None:
    html = (
        "<ul><li>Uno</li><li>Dos<ul><li>Dos punto uno</li></ul></li></ul>"
        "<ol start='3'><li>tres</li><li>cuatro</li></ol>"
    )
    assert html_to_text(html) == "- Uno\n- Dos\n  - Dos punto uno\n3. tres\n4. cuatro"


def test_paragraphs_inside_list_items_do_not_add_blank_lines() -> None:
    html = "<ol><li><p>Abrir</p></li><li><p>Cerrar</p></li></ol><p>Fin</p>"
    assert html_to_text(html) == "1. Abrir\n2. Cerrar\n\nFin"


def test_links_show_their_address_unless_it_is_the_text_or_mailto_or_anchor() -> None:
    html = (
        "<p>Ver <a href='https://portal.cliente.co/t/1'>el portal</a>, "
        "<a href='https://www.cliente.co/'>https://www.cliente.co</a>, "
        "<a href='mailto:ana@x.co'>Ana</a>, <a href='#arriba'>arriba</a>, <a href=''>vacío</a>, <a>sin href</a>.</p>"
    )
    assert html_to_text(html) == (
        "Ver el portal (https://portal.cliente.co/t/1), https://www.cliente.co, Ana, arriba, vacío, sin href."
    )


def test_outlook_safe_links_show_the_real_address() -> None:
    html = "<a href='https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fportal.cliente.co%2Fx&data=1'>Portal</a>"
    assert html_to_text(html) == "Portal (https://portal.cliente.co/x)"


def test_table_rows_are_lines_with_cells_separated_by_bars() -> None:
    html = (
        "<table><tr><th>Campo</th><th>Valor</th></tr><tr><td>Usuario</td><td> jperez </td></tr>"
        "<tr><td></td><td>solo</td></tr></table>"
    )
    assert html_to_text(html) == "Campo | Valor\nUsuario | jperez\nsolo"


def test_headings_are_on_their_own_lines() -> None:
    assert html_to_text("texto<h2>Reporte</h2>más texto") == "texto\n\nReporte\n\nmás texto"


def test_blockquotes_are_prefixed() -> None:
    html = "<p>Mi respuesta</p><blockquote><p>citado 1</p><p>citado 2</p></blockquote><p>fin</p>"
    assert html_to_text(html) == "Mi respuesta\n\n> citado 1\n>\n> citado 2\n\nfin"


def test_scripts_styles_head_title_and_comments_are_dropped() -> None:
    html = (
        "<html><head><title>Título</title><style>p {color: red}</style></head><body>"
        "<script>alert(1)</script><!-- comentario -->Visible<style>.x{}</style></body></html>"
    )
    assert html_to_text(html) == "Visible"


def test_mso_conditional_comments_are_dropped() -> None:
    html = (
        "<!--[if gte mso 9]><xml><o:OfficeDocumentSettings>Ajustes</o:OfficeDocumentSettings></xml><![endif]-->"
        "<p class=MsoListParagraph><![if !supportLists]>"
        '<span>1.<span style="font:7pt">&nbsp;&nbsp;&nbsp; </span></span>'
        "<![endif]>Reiniciar el equipo</p>"
        '<!--[if gte vml 1]><v:shape><v:imagedata src="cid:x"/></v:shape><![endif]-->'
    )
    assert html_to_text(html) == "1. Reiniciar el equipo"


def test_hidden_elements_are_dropped() -> None:
    html = (
        "<div style='display:none'>vista previa oculta</div><span hidden>oculto</span>"
        "<p style='visibility: hidden'>invisible</p><p style='mso-hide:all'>solo outlook</p><p>Visible</p>"
    )
    assert html_to_text(html) == "Visible"


def test_tracking_pixels_are_dropped_and_never_offered_to_the_marker() -> None:
    offered: list[str] = []

    def marker(src: str, attrs: dict) -> str | None:
        offered.append(src)
        return "[imagen]"

    html = (
        "<p>Hola</p><img src='https://t.example/o.gif' width='1' height='1'>"
        "<img src='cid:px' style='width:1px;height:1px'><img src='cid:cero' width=0>"
    )
    assert html_to_text(html, marker) == "Hola"
    assert offered == []
    assert is_tracking_pixel({"width": "1", "height": "1"})
    assert not is_tracking_pixel({"width": "640", "height": "400"})


def test_image_marker_places_its_text_where_the_image_stood() -> None:
    def marker(src: str, attrs: dict) -> str | None:
        return "[imagen: captura-1.png]" if src == "cid:shot" else None

    html = "<p>Sale este error:</p><p><img src='cid:shot' width=600></p><p>Gracias</p>"
    assert html_to_text(html, marker) == "Sale este error:\n\n[imagen: captura-1.png]\n\nGracias"


def test_remote_images_keep_their_alt_text_and_unknown_images_leave_nothing() -> None:
    html = "<p>A <img src='https://x.co/logo.png' alt='Logo ACME'> B <img src='cid:nada' alt='x'> C <img src='https://x.co/a.png'></p>"
    assert html_to_text(html, lambda src, attrs: None) == "A Logo ACME B C"
    assert html_to_text(html) == "A Logo ACME B C"


def test_image_marker_receives_the_attributes() -> None:
    seen: list[dict] = []
    html_to_text("<img src='cid:a' alt='Captura' width='300'>", lambda src, attrs: seen.append(attrs))
    assert seen == [{"src": "cid:a", "alt": "Captura", "width": "300"}]


def test_whitespace_is_folded_and_at_most_one_blank_line_survives() -> None:
    html = "<p>  uno \n\t dos  </p><p>&nbsp;</p><p>&nbsp;</p><div><br></div><div><br></div><p>tres</p>\n\n"
    assert html_to_text(html) == "uno dos\n\ntres"


def test_pre_keeps_its_lines_and_indentation() -> None:
    assert html_to_text("<pre>  def f():\n      return 1</pre>") == "  def f():\n      return 1"


def test_entities_are_decoded() -> None:
    assert html_to_text("<p>&quot;Sesi&oacute;n&quot; &amp; m&aacute;s &#8364;</p>") == '"Sesión" & más €'


def test_empty_and_markup_only_html_give_empty_text() -> None:
    assert html_to_text("") == ""
    assert html_to_text("<html><body><p>&nbsp;</p><br></body></html>") == ""


def test_broken_html_still_gives_its_text() -> None:
    assert html_to_text("<div><p>sin cerrar <b>negrita <i>cursiva</div> fin") == "sin cerrar negrita cursiva\n\nfin"


def test_deeply_nested_html_does_not_recurse() -> None:
    html = "<div>" * 5000 + "hondo" + "</div>" * 5000
    assert html_to_text(html) == "hondo"


def test_five_megabyte_single_line_html_is_linear() -> None:
    chunk = "palabra <b>negrita</b> y un <a href='https://x.co/p'>enlace</a>. " + "texto corrido sin etiquetas " * 20
    html = "<html><body><p>" + chunk * (5_000_000 // len(chunk)) + "</p></body></html>"
    assert len(html) >= 5_000_000 - len(chunk)
    start = time.perf_counter()
    text = html_to_text(html)
    elapsed = time.perf_counter() - start
    assert text.startswith("palabra negrita y un enlace (https://x.co/p).")
    assert elapsed < 30, f"took {elapsed:.1f} s"


# -- tables, abuse and threads (issue 4) ------------------------------------------------------


def test_outlook_table_cells_with_mso_paragraphs_stay_on_the_row_line() -> None:
    html = (
        '<table class="MsoTableGrid"><tr><td><p class="MsoNormal"><b>Usuario<o:p></o:p></b></p></td>'
        '<td><p class="MsoNormal">Sede<o:p></o:p></p></td></tr>'
        '<tr><td><p class="MsoNormal">lmoreno<o:p></o:p></p></td><td><p class="MsoNormal">Cali<o:p></o:p></p></td></tr>'
        "</table><p>Fin</p>"
    )
    assert html_to_text(html) == "Usuario | Sede\nlmoreno | Cali\n\nFin"


def test_layout_table_cells_with_several_paragraphs_keep_their_lines() -> None:
    html = (
        "<table><tr><td><p>Hola,</p><p>La VPN no conecta.</p><p>Gracias</p></td>"
        "<td><img src='https://x.co/logo.png' alt='Logo'></td></tr></table>"
    )
    assert html_to_text(html) == "Hola,\n\nLa VPN no conecta.\n\nGracias\n\nLogo"


def test_cell_with_a_nested_table_is_layout() -> None:
    html = "<table><tr><td><table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table></td></tr></table>"
    assert html_to_text(html) == "a | b\nc | d"


def test_nesting_beyond_the_parser_limit_keeps_text_but_not_comments_or_scripts() -> None:
    html = "<div>" * 3000 + "<!-- [if mso]>oculto<![endif] --><script>x()</script>hondo <b>y</b> más" + "</div>" * 3000
    assert html_to_text(html) == "hondo y más"


def test_xml_declaration_meta_charset_and_lone_surrogates_do_not_break_parsing() -> None:
    html = (
        '<?xml version="1.0" encoding="iso-8859-1"?>'
        '<html><head><meta charset="iso-8859-1"></head><body>año</body></html>'
    )
    assert html_to_text(html) == "año"
    assert html_to_text("<p>a\ud800b</p>") == "ab"


def test_conversion_is_safe_from_several_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    docs = [f"<p>documento {i}</p><ul><li>uno</li><li>dos {i}</li></ul>" for i in range(200)]
    expected = [html_to_text(doc) for doc in docs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(html_to_text, docs)) == expected
