"""The library: every knowledge base of a deployment, to ingest into and to search.

Searching keeps each base's index in memory and reloads it when the base's version has moved
(checked at most every `refresh_s`), so a `timbridge kb ingest` reaches running servers by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from timbridge.errors import PayloadError
from timbridge.knowledge.chunks import chunk_document
from timbridge.knowledge.documents import SUFFIXES, parse_document
from timbridge.knowledge.embed import KEYWORDS_ONLY, Embedder
from timbridge.knowledge.retrieval import Hit, Index, Mode
from timbridge.knowledge.store import BaseInfo, KnowledgeStore, check_name

__all__ = [
    "BUILTIN_KB",
    "DEMO_SHOP_KB",
    "IngestReport",
    "Library",
    "builtin_documents",
    "demo_shop_documents",
    "expand_paths",
]

#: The base of timbridge's own documentation, shipped in the package: the offline default.
BUILTIN_KB = "timbridge-docs"
#: The playground's shop robot's base: a small shop FAQ shipped with the package.
DEMO_SHOP_KB = "demo-shop"


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0


def expand_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given, and the files of a known type under each folder, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
        else:
            yield path


def builtin_documents() -> list[tuple[str, bytes]]:
    """timbridge's own documentation, as shipped in the package: ``(name, content)``."""
    folder = resources.files("timbridge") / "docs"
    return sorted(
        (item.name, item.read_bytes()) for item in folder.iterdir() if item.name.endswith(".md")
    )


def demo_shop_documents() -> list[tuple[str, bytes]]:
    """The playground's shop FAQ, as shipped in the package: ``(name, content)``."""
    folder = resources.files("timbridge.knowledge") / "demo"
    return sorted(
        (item.name, item.read_bytes()) for item in folder.iterdir() if item.name.endswith(".md")
    )


SHIPPED: dict[str, Callable[[], list[tuple[str, bytes]]]] = {
    BUILTIN_KB: builtin_documents,
    DEMO_SHOP_KB: demo_shop_documents,
}
"""The knowledge bases made from documents shipped in the package."""


class Library:
    """Knowledge bases over one store and one embedder."""

    def __init__(
        self,
        store: KnowledgeStore,
        embedder: Embedder,
        *,
        top_k: int = 3,
        min_score: float = 0.3,
        refresh_s: float = 5.0,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.top_k = top_k
        self.min_score = min_score
        self._refresh_s = refresh_s
        self._indexes: dict[str, tuple[Index, float]] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self.embedder.aclose()
        await self.store.aclose()

    async def ingest_bytes(self, kb: str, name: str, raw: bytes) -> tuple[str, int]:
        """Store one file's content in `kb`: ``("added" | "updated" | "unchanged", chunks)``."""
        await self.store.ensure(kb, self.embedder.name)
        sha = hashlib.sha256(raw).hexdigest()
        before = await self.store.document_hash(kb, name)
        if before == sha:
            return "unchanged", 0
        document = parse_document(name, raw)
        parts = chunk_document(document)
        vectors = await self.embedder.embed([p.searchable for p in parts])
        await self.store.put_document(
            kb, source=name, title=document.title, sha256=sha, parts=parts, vectors=vectors
        )
        return ("added" if before is None else "updated"), len(parts)

    async def ingest(
        self,
        kb: str,
        paths: Iterable[Path],
        *,
        on_file: Callable[[Path, str, int], None] | None = None,
    ) -> IngestReport:
        """Ingest files and folders; a file that cannot be read is reported, not fatal."""
        check_name(kb)
        report = IngestReport()
        for path in expand_paths(paths):
            try:
                raw = path.read_bytes()
                outcome, count = await self.ingest_bytes(kb, path.name, raw)
            except OSError as exc:
                report.failed.append((str(path), exc.strerror or str(exc)))
                outcome, count = "failed", 0
            except PayloadError as exc:
                report.failed.append((str(path), str(exc)))
                outcome, count = "failed", 0
            if outcome != "failed":
                getattr(report, outcome).append(str(path))
                report.chunks += count
            if on_file is not None:
                on_file(path, outcome, count)
        return report

    async def ensure_builtin(self, kb: str = BUILTIN_KB) -> None:
        """Make `kb`, one of the `SHIPPED` bases, hold its shipped documents (only changed
        files are embedded)."""
        built_with = {b.name: b.embedder for b in await self.store.bases()}.get(kb)
        if built_with not in (None, self.embedder.name):  # the embedder changed: rebuild
            await self.drop(kb)
        shipped = SHIPPED[kb]()
        for name, raw in shipped:
            await self.ingest_bytes(kb, name, raw)
        await self.store.keep_only(kb, {name for name, _ in shipped})

    async def index(self, kb: str) -> Index | None:
        """`kb`'s index, reloaded when the base changed; None when there is no such base."""
        cached = self._indexes.get(kb)
        now = time.monotonic()
        if cached is not None and now - cached[1] < self._refresh_s:
            return cached[0]
        lock = self._loading.setdefault(kb, asyncio.Lock())
        async with lock:
            cached = self._indexes.get(kb)
            if cached is not None and time.monotonic() - cached[1] < self._refresh_s:
                return cached[0]
            version = await self.store.version(kb)
            if version is None:
                self._indexes.pop(kb, None)
                return None
            if cached is not None and cached[0].version == version:
                index = cached[0]
            else:
                stored = await self.store.load(kb)
                if stored is None:
                    return None
                index = await asyncio.to_thread(Index, stored)
            self._indexes[kb] = (index, time.monotonic())
            return index

    async def search(
        self,
        kb: str,
        query: str,
        *,
        k: int | None = None,
        min_score: float | None = None,
        mode: Mode = "hybrid",
    ) -> list[Hit]:
        """The passages of `kb` that best answer `query`; `PayloadError` for an unknown base."""
        index = await self.index(kb)
        if index is None:
            raise PayloadError("kb", f"no knowledge base named {kb!r} (see: timbridge kb list)")
        if index.embedder != self.embedder.name:
            raise PayloadError(
                "kb",
                f"{kb!r} was built with embedder {index.embedder}; this process uses "
                f"{self.embedder.name}: drop it and ingest again",
            )
        if index.embedder == KEYWORDS_ONLY:
            mode = "keyword"
        vector = None
        if mode != "keyword" and len(index) and query.strip():
            vector = (await self.embedder.embed([query]))[0]
        return index.search(
            query,
            vector,
            k=k or self.top_k,
            min_score=self.min_score if min_score is None else min_score,
            mode=mode,
        )

    async def bases(self) -> list[BaseInfo]:
        return await self.store.bases()

    async def drop(self, kb: str) -> bool:
        self._indexes.pop(kb, None)
        return await self.store.drop(kb)
