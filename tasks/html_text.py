"""R8: turn HTML mail into readable plain text for the request description.

The helpdesk shows plain text only ("no rich text survives"), so the structure a reader needs
is rewritten as text: paragraphs and ``<br>`` become line breaks, list items get "- " or "1. ",
links keep their address, table rows stay on one line with cells separated by " | ", quotes
get "> ". Everything a mail client would not show is dropped: scripts, styles, ``<head>``,
comments (Outlook's MSO conditional comments included), hidden elements and tracking pixels.

Images are the caller's business: ``image_marker(src, attrs)`` decides what text (if any)
stands where an image was, so the clean stage can write ``[imagen: captura-1.png]`` for a
pasted screenshot (R10). Nothing is ever fetched from the network.

The tree is walked with an explicit stack (no recursion), so deeply nested or very large HTML
(a 5 MB single line) costs time linear in its size. Pure module: no Prefect, no I/O.
"""

from __future__ import annotations

import html as html_lib
import re
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bs4 import BeautifulSoup, NavigableString, Tag

try:  # bs4 ≥ 4.11; only used to silence warnings about markup that looks like a file name or XML
    from bs4 import MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

    warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)
    warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
except ImportError:  # pragma: no cover
    pass

try:
    import lxml  # noqa: F401

    PARSER = "lxml"
except ImportError:  # pragma: no cover - lxml is a dependency, html.parser is the fallback
    PARSER = "html.parser"

ImageMarker = Callable[[str, dict], "str | None"]

# Elements whose content is never shown by a mail client.
_SKIP = {
    "script",
    "style",
    "head",
    "title",
    "meta",
    "link",
    "template",
    "object",
    "embed",
    "iframe",
    "svg",
    "canvas",
    "audio",
    "video",
    "xml",
    "map",
}
# Block elements: their content starts and ends on a line of its own.
_LINE_BLOCKS = {
    "div",
    "tr",
    "dt",
    "dd",
    "dl",
    "address",
    "center",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "form",
    "fieldset",
    "figure",
    "figcaption",
    "caption",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "details",
    "summary",
    "legend",
    "option",
}
# Paragraph-like blocks: a blank line before and after.
_PARAGRAPHS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"}

_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all", re.IGNORECASE)
_FOLD = re.compile(r"[ \t\n\r\f]+")
_SPACES = re.compile(r" {2,}")
_LEADING_INT = re.compile(r"\s*(\d+)")
_STYLE_SIZE = re.compile(r"(?<![-\w])(width|height)\s*:\s*(\d+)(?:\.\d+)?\s*(?:px)?\s*(?:;|$)", re.IGNORECASE)
_REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
_NO_LINK = ("mailto:", "tel:", "javascript:", "cid:", "data:", "#", "about:", "file:")
_BLANK_LINE = re.compile(r"^[> ]*$")


def _attrs(tag: Tag) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in (tag.attrs or {}).items():
        result[str(key).lower()] = " ".join(value) if isinstance(value, list) else str(value)
    return result


def _is_hidden(attrs: dict[str, str]) -> bool:
    if "hidden" in attrs:
        return True
    style = attrs.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


def _dimension(value: str | None) -> int | None:
    if not value:
        return None
    match = _LEADING_INT.match(value)
    return int(match.group(1)) if match else None


def is_tracking_pixel(attrs: dict[str, str]) -> bool:
    """An image declared 0 or 1 pixel wide or high: a tracker or spacer, never content."""
    sizes = [_dimension(attrs.get("width")), _dimension(attrs.get("height"))]
    sizes += [int(number) for _, number in _STYLE_SIZE.findall(attrs.get("style", ""))]
    return any(size is not None and size <= 1 for size in sizes)


def _unwrap_redirect(url: str) -> str:
    """Show the real address behind Outlook Safe Links and Google redirect wrappers."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    host = (parts.hostname or "").lower()
    query = parse_qs(parts.query)
    if host.endswith("safelinks.protection.outlook.com") and query.get("url"):
        return query["url"][0]
    if host in ("www.google.com", "google.com") and parts.path == "/url" and query.get("q"):
        return query["q"][0]
    return url


def _comparable(url_or_text: str) -> str:
    value = url_or_text.strip().lower()
    value = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value)
    value = value.removeprefix("www.")
    return value.rstrip("/")


class _Writer:
    """Collects text into lines, applying the block, list, quote and table rules."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.cur: list[str] = []
        self.has_content = False  # the current line holds something (a non-breaking space counts)
        self.want_blank = False
        self.blank_depth = 0  # quote depth where the blank line was asked for
        self.quote_depth = 0
        self.pre_depth = 0
        self.li_depth = 0
        self.pending_prefix = ""
        self.pending_cell_sep = False
        self.links: list[list[str]] = []

    # -- text ----------------------------------------------------------------------------------
    def text(self, value: str, pre: bool = False) -> None:
        if pre:
            chunks = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            for index, chunk in enumerate(chunks):
                if index:
                    self.hard_break()
                if chunk:
                    self._append(chunk.replace("\t", "    "))
            return
        value = _FOLD.sub(" ", value)
        if not value:
            return
        if value.startswith(" ") and (not self.cur or self.cur[-1].endswith(" ")):
            value = value[1:]
            if not value:
                return
        self._append(value)

    def _append(self, value: str) -> None:
        if value.strip(" "):
            if self.pending_cell_sep and self.has_content:
                self.cur[-1] = self.cur[-1].rstrip(" ")
                self.cur.append(" | ")
                value = value.lstrip(" ")
            self.pending_cell_sep = False
            self.has_content = True
        self.cur.append(value)
        for collector in self.links:
            collector.append(value)

    # -- breaks --------------------------------------------------------------------------------
    def _emit(self, line: str) -> None:
        quote = "> " * self.quote_depth
        if not line:
            self.lines.append(quote.rstrip())
            return
        if self.want_blank and self.lines and not _BLANK_LINE.match(self.lines[-1]):
            self.lines.append(("> " * min(self.blank_depth, self.quote_depth)).rstrip())
        self.want_blank = False
        self.lines.append(quote + self.pending_prefix + line)
        self.pending_prefix = ""

    def hard_break(self) -> None:
        """``<br>``: end the line even when it is empty."""
        line = "".join(self.cur)
        if self.pre_depth:
            self._emit(line.replace("\xa0", " ").rstrip())
        else:  # runs of &nbsp; are layout (Outlook list indents), not meaning
            self._emit(_SPACES.sub(" ", line.replace("\xa0", " ")).strip())
        self.cur = []
        self.has_content = False
        self.pending_cell_sep = False

    def soft_break(self) -> None:
        """A block boundary: end the line if anything is on it."""
        if self.has_content:
            self.hard_break()
        else:
            self.cur = []

    def paragraph_break(self) -> None:
        self.soft_break()
        if not self.want_blank:
            self.blank_depth = self.quote_depth
        self.want_blank = True

    def result(self) -> str:
        self.soft_break()
        out: list[str] = []
        for line in self.lines:
            line = line.rstrip()
            if _BLANK_LINE.match(line):
                if out and not _BLANK_LINE.match(out[-1]):
                    out.append(line)
                continue
            out.append(line)
        while out and _BLANK_LINE.match(out[-1]):
            out.pop()
        return "\n".join(out)


def _parse(html: str) -> BeautifulSoup | None:
    for parser in (PARSER, "html.parser"):
        try:
            return BeautifulSoup(html, parser)
        except Exception:
            continue
    return None


_TAG = re.compile(r"<[^>]*>")
_SURROGATES = re.compile("[\ud800-\udfff]")
_CELL_BLOCKS = ["p", "div"]


def _fallback_text(html: str) -> str:
    """Last resort when no parser accepts the markup: strip tags, unescape, fold blanks."""
    text = html_lib.unescape(_TAG.sub(" ", html))
    return "\n".join(_FOLD.sub(" ", line).strip() for line in text.splitlines() if line.strip())


def html_to_text(html: str, image_marker: ImageMarker | None = None) -> str:
    """Convert HTML mail to plain text (R8); ``image_marker`` chooses the text for each image."""
    if not html or not html.strip():
        return ""
    html = _SURROGATES.sub("", html)  # lone surrogates (broken decoders) cannot be encoded by any parser
    soup = _parse(html)
    if soup is None:
        return _fallback_text(html)
    writer = _Writer()
    inline: set[int] = set()  # ids of block elements rendered inline (a table cell's only paragraph)
    lists: list[list[Any]] = []  # [kind, next number]
    stack: list[Any] = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):  # closing marker
            _close(node, writer, lists)
            continue
        if isinstance(node, NavigableString):
            if type(node) is NavigableString:  # comments, CDATA, declarations are subclasses
                writer.text(str(node), pre=writer.pre_depth > 0)
            continue
        if not isinstance(node, Tag):
            continue
        name = (node.name or "").lower()
        if name in _SKIP:
            continue
        attrs = _attrs(node)
        if _is_hidden(attrs):
            continue
        if name == "img":
            _image(writer, attrs, image_marker)
            continue
        if name == "br":
            writer.hard_break()
            continue
        if name == "hr":
            writer.paragraph_break()
            continue
        closing: tuple[Any, ...] | None = None
        if name in ("ul", "ol", "menu"):
            writer.soft_break()
            start = _dimension(attrs.get("start")) if name == "ol" else None
            lists.append([name, start if start is not None else 1])
            closing = ("list",)
        elif name == "li":
            writer.soft_break()
            kind, number = lists[-1] if lists else ("ul", 1)
            indent = "  " * max(len(lists) - 1, 0)
            if kind == "ol":
                writer.pending_prefix = f"{indent}{number}. "
                lists[-1][1] = number + 1
            else:
                writer.pending_prefix = f"{indent}- "
            writer.li_depth += 1
            closing = ("li",)
        elif name in ("td", "th"):
            if writer.has_content:
                writer.pending_cell_sep = True
            # Outlook wraps each cell's value in one <p class=MsoNormal>: that paragraph is the cell's
            # text, not a block, so the row stays on one line. Cells with several blocks keep them.
            blocks = node.find_all(_CELL_BLOCKS, recursive=False)
            if len(blocks) == 1:
                inline.add(id(blocks[0]))
        elif name == "a":
            writer.links.append([])
            closing = ("link", attrs.get("href", ""))
        elif name == "blockquote":
            writer.paragraph_break()
            writer.quote_depth += 1
            closing = ("quote",)
        elif name == "pre":
            writer.paragraph_break()
            writer.pre_depth += 1
            closing = ("pre",)
        elif id(node) in inline:
            pass
        elif name == "p" and (writer.li_depth or attrs.get("class", "").lower().startswith("mso")):
            writer.soft_break()  # Outlook paragraphs and paragraphs in list items: one line each
            closing = ("line",)
        elif name in _PARAGRAPHS:
            writer.paragraph_break()
            closing = ("paragraph",)
        elif name in _LINE_BLOCKS:
            writer.soft_break()
            closing = ("line",)
        if closing is not None:
            stack.append(closing)
        stack.extend(reversed(node.contents))
    return writer.result()


def _close(marker: tuple[Any, ...], writer: _Writer, lists: list[list[Any]]) -> None:
    kind = marker[0]
    if kind == "line":
        writer.soft_break()
    elif kind == "li":
        writer.soft_break()
        writer.li_depth = max(writer.li_depth - 1, 0)
    elif kind == "paragraph":
        writer.paragraph_break()
    elif kind == "list":
        writer.soft_break()
        if lists:
            lists.pop()
    elif kind == "quote":
        writer.paragraph_break()
        writer.quote_depth = max(writer.quote_depth - 1, 0)
    elif kind == "pre":
        writer.paragraph_break()
        writer.pre_depth = max(writer.pre_depth - 1, 0)
    elif kind == "link":
        collected = writer.links.pop() if writer.links else []
        _link_address(writer, "".join(collected), marker[1])


def _link_address(writer: _Writer, link_text: str, href: str) -> None:
    """Write " (url)" after a link's text, unless the text already is the address."""
    href = href.strip()
    if not href or href.lower().startswith(_NO_LINK):
        return
    href = _unwrap_redirect(href)
    text = link_text.replace("\xa0", " ").strip()
    if not text or _comparable(text) == _comparable(href):
        return
    writer.text(f" ({href})")


def _image(writer: _Writer, attrs: dict[str, str], image_marker: ImageMarker | None) -> None:
    if is_tracking_pixel(attrs):
        return
    src = attrs.get("src", "").strip()
    marker = image_marker(src, attrs) if image_marker is not None else None
    if marker:
        writer.text(f" {marker} ")
        return
    alt = attrs.get("alt", "").strip()
    if alt and _REMOTE.match(src):
        writer.text(f" {alt} ")
