"""Reading source files into titled sections: Markdown, plain text, HTML, PDF, and FAQ files
(CSV or JSONL of question-answer pairs). What a file holds decides its sections; `chunks` then
cuts sections to the embedding model's size.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from timbridge.errors import PayloadError

__all__ = ["SUFFIXES", "Document", "Section", "parse_document", "read_document"]

#: File suffixes `read_document` understands, by format.
SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".csv": "faq",
    ".jsonl": "faq",
}

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BLOCK_TAGS = "h1,h2,h3,h4,h5,h6,p,li,pre,td,th,dt,dd,blockquote,figcaption"
# What is not a page's content: scripts, navigation, sidebars and breadcrumbs, and the
# permalink anchors documentation generators put in headings (Sphinx's and MkDocs' "¶",
# Docusaurus' "#"), so that headings come out as their authors wrote them.
_NOT_CONTENT = ",".join(
    [
        "script,style,nav,header,footer,noscript,template,aside",
        "[role=navigation],[role=search],[aria-label=breadcrumbs]",
        "a.headerlink,a.hash-link,a.anchor-link,a.anchor,a.toclink",
        "div.sphinxsidebar,div.related,div.footer",  # Sphinx (classic and alabaster themes)
        ".md-sidebar,.md-header,.md-footer,.md-source-file",  # MkDocs Material
        ".theme-doc-sidebar-container,.theme-doc-toc-desktop,.theme-doc-toc-mobile",
        ".theme-doc-breadcrumbs,.pagination-nav,.theme-edit-this-page",  # Docusaurus
    ]
)
# What may be left at a heading's end once its anchor is gone: the marks, zero-width spaces.
_HEADING_MARKS = re.compile("[\u00b6\u00a7#\u200b\ufeff]+\\s*$")


@dataclass(frozen=True, slots=True)
class Section:
    """A part of a document under one heading path (``"Guide › Models"``)."""

    heading: str
    text: str
    faq: bool = False  # a question-answer pair: kept whole


@dataclass(frozen=True, slots=True)
class Document:
    source: str  # the name it is cited by: the file's name
    title: str
    sections: list[Section]


def _markdown(text: str, title: str) -> Iterator[Section]:
    path: dict[int, str] = {}  # heading level → heading
    lines: list[str] = []
    in_fence = False

    def flush() -> Iterator[Section]:
        body = "\n".join(lines).strip()
        if body:
            yield Section(" › ".join(path[k] for k in sorted(path)) or title, body)
        lines.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading is None:
            lines.append(line)
            continue
        yield from flush()
        level = len(heading.group(1))
        for deeper in [k for k in path if k >= level]:
            del path[deeper]
        path[level] = heading.group(2).strip()
    yield from flush()


def _html(raw: bytes, title: str) -> tuple[str, Iterator[Section]]:
    from selectolax.lexbor import LexborHTMLParser  # noqa: PLC0415 - only for HTML

    tree = LexborHTMLParser(raw)
    for node in tree.css(_NOT_CONTENT):
        node.decompose()
    found = tree.css_first("title")
    title = found.text(strip=True) if found is not None and found.text(strip=True) else title
    blocks = tree.css(_BLOCK_TAGS)
    markdown: list[str] = []
    for node in blocks:
        parent = node.parent
        nested = False
        while parent is not None:
            if parent.tag in {"p", "li", "pre", "td", "th", "dd", "blockquote"}:
                nested = True
                break
            parent = parent.parent
        if nested:
            continue
        text = node.text(separator=" ", strip=True) if node.tag != "pre" else node.text()
        if not text.strip():
            continue
        if node.tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            heading = _HEADING_MARKS.sub("", text).strip()
            if heading:
                markdown.append(f"{'#' * int(node.tag[1])} {heading}")
        elif node.tag == "pre":  # fenced: a "# comment" in code is no heading
            fence = "~~~~" if "```" in text else "```"
            markdown.append(f"{fence}\n{text.strip(chr(10))}\n{fence}\n")
        elif node.tag == "li":
            markdown.append(f"- {text}")
        else:
            markdown.append(text + "\n")
    return title, _markdown("\n".join(markdown), title)


def _pdf(raw: bytes, title: str) -> Iterator[Section]:
    """Sections by the PDF's own headings: lines set larger than the body text (the size most
    of the text is set in) are headings, their sizes ranked into levels. A PDF set in one size
    has no headings to find: a section per page then."""
    from pypdf import PdfReader  # noqa: PLC0415 - only when a PDF is ingested
    from pypdf.errors import PyPdfError  # noqa: PLC0415

    try:  # per page: (size, line)
        pages = [_pdf_lines(page) for page in PdfReader(io.BytesIO(raw)).pages]
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise PayloadError("pdf", f"not a readable PDF: {exc}") from exc
    weight: dict[float, int] = {}
    for lines in pages:
        for size, line in lines:
            weight[size] = weight.get(size, 0) + len(line)
    if not weight:
        return
    body = max(weight, key=lambda size: weight[size])
    larger = sorted(
        {size for lines in pages for size, line in lines if _pdf_heading(size, line, body)},
        reverse=True,
    )
    if not larger:
        for number, lines in enumerate(pages, start=1):
            text = "\n".join(line for _, line in lines).strip()
            if text:
                yield Section(f"{title} › page {number}", text)
        return
    level = {size: min(6, rank + 1) for rank, size in enumerate(larger)}
    markdown: list[str] = []
    for lines in pages:
        for size, line in lines:
            if _pdf_heading(size, line, body):
                markdown.append(f"\n{'#' * level[size]} {line}\n")
            else:
                markdown.append(line)
    yield from _markdown("\n".join(markdown), title)


def _pdf_heading(size: float, line: str, body: float) -> bool:
    return size >= body * 1.15 and len(line) <= 150


def _pdf_lines(page: Any) -> list[tuple[float, str]]:
    """A page's lines, each with the size its first text is set in."""
    lines: list[tuple[float, str]] = []
    current: list[str] = []
    size = 0.0
    y: float | None = None

    def visit(text: str, cm: Any, tm: Any, font: Any, font_size: float) -> None:
        nonlocal size, y
        if "\n" in text or (y is not None and text.strip() and abs(tm[5] - y) > 0.5):
            end()
        piece = text.replace("\n", " ")
        if piece.strip():
            if not current:
                size = round(font_size * abs(tm[3] or 1.0) * abs(cm[3] or 1.0), 1)
                y = tm[5]
            current.append(piece)

    def end() -> None:
        nonlocal y
        line = " ".join("".join(current).split())
        if line:
            lines.append((size, line))
        current.clear()
        y = None

    page.extract_text(visitor_text=visit)
    end()
    return lines


def _faq_pairs(raw: bytes, suffix: str) -> Iterator[tuple[str, str]]:
    text = raw.decode("utf-8-sig")
    if suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise PayloadError(f"line {number}", f"not JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise PayloadError(f"line {number}", "expected an object")
            yield _pair(row, f"line {number}")
        return
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, start=2):
        yield _pair(dict(row), f"row {number}")


def _pair(row: dict[str | None, object], where: str) -> tuple[str, str]:
    lowered = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    question = lowered.get("question", lowered.get("q"))
    answer = lowered.get("answer", lowered.get("a"))
    if not isinstance(question, str) or not isinstance(answer, str):
        raise PayloadError(where, "needs text fields 'question' and 'answer'")
    if not question.strip() or not answer.strip():
        raise PayloadError(where, "'question' and 'answer' must not be empty")
    return question.strip(), answer.strip()


def parse_document(source: str, raw: bytes) -> Document:
    """Sections of a file's content; the suffix of `source` says its format.

    `PayloadError` when the format is unknown or the content is not what the suffix says.
    """
    suffix = Path(source).suffix.lower()
    kind = SUFFIXES.get(suffix)
    title = Path(source).stem.replace("-", " ").replace("_", " ")
    if kind is None:
        known = ", ".join(sorted(SUFFIXES))
        raise PayloadError(source, f"unknown file type {suffix or '(none)'}; known: {known}")
    if kind == "pdf":
        return Document(source, title, list(_pdf(raw, title)))
    if kind == "html":
        title, sections = _html(raw, title)
        return Document(source, title, list(sections))
    if kind == "faq":
        pairs = _faq_pairs(raw, suffix)
        return Document(source, title, [Section(q, f"Q: {q}\nA: {a}", faq=True) for q, a in pairs])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(source, f"not UTF-8 text (byte {exc.start})") from exc
    if kind == "markdown":
        first = next((m.group(2) for m in map(_HEADING.match, text.splitlines()) if m), None)
        return Document(source, first or title, list(_markdown(text, first or title)))
    return Document(source, title, [Section(title, text.strip())] if text.strip() else [])


def read_document(path: Path) -> Document:
    """`parse_document` of a file on disk, cited by its file name."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PayloadError(str(path), f"cannot read: {exc.strerror}") from exc
    return parse_document(path.name, raw)
