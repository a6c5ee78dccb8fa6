"""Cutting sections into passages small enough to embed (MiniLM reads 256 tokens, about 1 000
characters of English) and to quote: whole paragraphs where they fit, sentences where a paragraph
is too long; a question-answer pair stays whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from timbridge.knowledge.documents import Document

__all__ = ["CHUNK_CHARS", "Chunk", "chunk_document"]

#: Target passage size in characters.
CHUNK_CHARS = 800

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


@dataclass(frozen=True, slots=True)
class Chunk:
    heading: str
    text: str

    @property
    def searchable(self) -> str:
        """What is embedded: the heading path, which gives a passage its topic, and the prose
        (code is left out: a question is asked in words, and code's tokens would crowd the
        prose out of the embedding's window)."""
        return f"{self.heading.rsplit(' › ', 1)[-1]}\n{_FENCED.sub(' ', self.text).strip()}"


_FENCED = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[~`]*[ \t]*$", re.DOTALL | re.MULTILINE)


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks; a fenced code block is one block."""
    blocks: list[str] = []
    current: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _pieces(paragraph: str, limit: int) -> Iterator[str]:
    if len(paragraph) <= limit:
        yield paragraph
        return
    sentence = ""
    for whole in _SENTENCE_END.split(paragraph):
        part = whole
        while len(part) > limit:  # one sentence longer than a passage: cut it
            yield part[:limit]
            part = part[limit:]
        if sentence and len(sentence) + 1 + len(part) > limit:
            yield sentence
            sentence = ""
        sentence = f"{sentence} {part}" if sentence else part
    if sentence:
        yield sentence


def chunk_document(document: Document, *, limit: int = CHUNK_CHARS) -> list[Chunk]:
    """The document's passages, in reading order."""
    chunks: list[Chunk] = []
    for section in document.sections:
        if section.faq:
            chunks.append(Chunk(section.heading, section.text))
            continue
        current = ""
        for paragraph in _paragraphs(section.text):
            for piece in _pieces(paragraph, limit):
                if current and len(current) + 2 + len(piece) > limit:
                    chunks.append(Chunk(section.heading, current))
                    current = ""
                current = f"{current}\n\n{piece}" if current else piece
        if current:
            chunks.append(Chunk(section.heading, current))
    return chunks
