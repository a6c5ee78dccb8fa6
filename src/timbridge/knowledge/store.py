"""Knowledge bases in the SQL store (the same database as the history): bases, documents, and
chunks with their vectors as float32 blobs. One code path for SQLite and PostgreSQL.

A document is replaced as a whole when its content changes (by SHA-256) and skipped when it has
not, so ingesting a folder again costs only what changed. Every change bumps the base's `version`;
searchers reload their in-memory index when it moves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from timbridge.errors import PayloadError, StorageError
from timbridge.knowledge.chunks import Chunk
from timbridge.storage.sql import ID_TYPE, create_engine, map_errors, migration_lock

__all__ = ["BaseInfo", "KnowledgeStore", "StoredChunks"]

_metadata = sa.MetaData()


bases = sa.Table(
    "kb_bases",
    _metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("embedder", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

documents = sa.Table(
    "kb_documents",
    _metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("kb", sa.String(100), nullable=False),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("kb", "source", name="uq_kb_documents_source"),
)

chunks = sa.Table(
    "kb_chunks",
    _metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("kb", sa.String(100), nullable=False),
    sa.Column("document", ID_TYPE, nullable=False),
    sa.Column("heading", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
    sa.Index("ix_kb_chunks_kb_id", "kb", "id"),
    sa.Index("ix_kb_chunks_document", "document"),
)

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True, slots=True)
class BaseInfo:
    name: str
    embedder: str
    version: int
    documents: int
    chunks: int


@dataclass(frozen=True, slots=True)
class StoredChunks:
    """Every chunk of a base, as loaded for search."""

    version: int
    embedder: str
    sources: list[str]
    headings: list[str]
    texts: list[str]
    vectors: npt.NDArray[np.float32]


def check_name(name: str) -> str:
    """A base name: 1–100 of a–z, 0–9, ``-_.``; `PayloadError` otherwise."""
    if not name or len(name) > 100 or not set(name) <= _NAME_CHARS:
        raise PayloadError("kb", f"{name!r}: use 1-100 of a-z, 0-9, '-', '_', '.'")
    return name


class KnowledgeStore:
    """Reads and writes knowledge bases. Build with `KnowledgeStore.open`; close with `aclose`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @classmethod
    async def open(cls, url: str) -> KnowledgeStore:
        engine = create_engine(url, pool_size=4)
        store = cls(engine)
        try:
            async with store._begin("create knowledge tables") as conn:
                await conn.run_sync(migration_lock)
                await conn.run_sync(_metadata.create_all)
        except StorageError:
            await engine.dispose()
            raise
        return store

    async def aclose(self) -> None:
        await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _begin(self, what: str) -> AsyncIterator[AsyncConnection]:
        with map_errors(what):
            async with self._engine.begin() as conn:
                yield conn

    async def ensure(self, kb: str, embedder: str) -> None:
        """Create base `kb` if it does not exist; refuse one built with another embedder."""
        check_name(kb)
        async with self._begin("create knowledge base") as conn:
            found = (
                await conn.execute(sa.select(bases.c.embedder).where(bases.c.name == kb))
            ).scalar()
            if found is None:
                await conn.execute(
                    bases.insert().values(
                        name=kb, embedder=embedder, version=0, created_at=time.time()
                    )
                )
            elif found != embedder:
                raise PayloadError(
                    "kb",
                    f"{kb!r} was built with embedder {found}, not {embedder}: drop it "
                    f"(timbridge kb drop --kb {kb}) and ingest again",
                )

    async def document_hash(self, kb: str, source: str) -> str | None:
        async with self._begin("read document") as conn:
            return (
                await conn.execute(
                    sa.select(documents.c.sha256).where(
                        documents.c.kb == kb, documents.c.source == source
                    )
                )
            ).scalar()

    async def put_document(
        self,
        kb: str,
        *,
        source: str,
        title: str,
        sha256: str,
        parts: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
    ) -> None:
        """Store a document's chunks, replacing an earlier version of the same source."""
        async with self._begin("store document") as conn:
            old = (
                await conn.execute(
                    sa.select(documents.c.id).where(
                        documents.c.kb == kb, documents.c.source == source
                    )
                )
            ).scalar()
            if old is not None:
                await conn.execute(chunks.delete().where(chunks.c.document == old))
                await conn.execute(documents.delete().where(documents.c.id == old))
            document_id = (
                await conn.execute(
                    documents.insert()
                    .values(
                        kb=kb, source=source, title=title, sha256=sha256, created_at=time.time()
                    )
                    .returning(documents.c.id)
                )
            ).scalar_one()
            if parts:
                await conn.execute(
                    chunks.insert(),
                    [
                        {
                            "kb": kb,
                            "document": document_id,
                            "heading": part.heading,
                            "text": part.text,
                            "vector": vectors[i].astype(np.float32).tobytes(),
                        }
                        for i, part in enumerate(parts)
                    ],
                )
            await conn.execute(
                bases.update().where(bases.c.name == kb).values(version=bases.c.version + 1)
            )

    async def version(self, kb: str) -> int | None:
        async with self._begin("read knowledge base") as conn:
            return (
                await conn.execute(sa.select(bases.c.version).where(bases.c.name == kb))
            ).scalar()

    async def load(self, kb: str) -> StoredChunks | None:
        """Every chunk of `kb` with its document's source, or None when there is no such base."""
        async with self._begin("load knowledge base") as conn:
            base = (
                await conn.execute(
                    sa.select(bases.c.version, bases.c.embedder).where(bases.c.name == kb)
                )
            ).first()
            if base is None:
                return None
            rows = (
                await conn.execute(
                    sa.select(documents.c.source, chunks.c.heading, chunks.c.text, chunks.c.vector)
                    .join(documents, documents.c.id == chunks.c.document)
                    .where(chunks.c.kb == kb)
                    .order_by(chunks.c.id)
                )
            ).all()
        vectors = (
            np.frombuffer(b"".join(r.vector for r in rows), dtype=np.float32).reshape(len(rows), -1)
            if rows
            else np.zeros((0, 0), dtype=np.float32)
        )
        return StoredChunks(
            version=base.version,
            embedder=base.embedder,
            sources=[r.source for r in rows],
            headings=[r.heading for r in rows],
            texts=[r.text for r in rows],
            vectors=vectors,
        )

    async def bases(self) -> list[BaseInfo]:
        doc_count = (
            sa.select(sa.func.count()).where(documents.c.kb == bases.c.name).scalar_subquery()
        )
        chunk_count = (
            sa.select(sa.func.count()).where(chunks.c.kb == bases.c.name).scalar_subquery()
        )
        async with self._begin("list knowledge bases") as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        bases.c.name, bases.c.embedder, bases.c.version, doc_count, chunk_count
                    ).order_by(bases.c.name)
                )
            ).all()
        return [BaseInfo(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def keep_only(self, kb: str, sources: set[str]) -> int:
        """Delete the documents of `kb` whose source is not in `sources`; how many were."""
        async with self._begin("prune knowledge base") as conn:
            gone = (
                (
                    await conn.execute(
                        sa.select(documents.c.id).where(
                            documents.c.kb == kb, documents.c.source.not_in(sources)
                        )
                    )
                )
                .scalars()
                .all()
            )
            if gone:
                await conn.execute(chunks.delete().where(chunks.c.document.in_(gone)))
                await conn.execute(documents.delete().where(documents.c.id.in_(gone)))
                await conn.execute(
                    bases.update().where(bases.c.name == kb).values(version=bases.c.version + 1)
                )
        return len(gone)

    async def drop(self, kb: str) -> bool:
        """Delete base `kb` and everything in it; False when there was none."""
        async with self._begin("drop knowledge base") as conn:
            await conn.execute(chunks.delete().where(chunks.c.kb == kb))
            await conn.execute(documents.delete().where(documents.c.kb == kb))
            result = await conn.execute(bases.delete().where(bases.c.name == kb))
        return bool(result.rowcount)
