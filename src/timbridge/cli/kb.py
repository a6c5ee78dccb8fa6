"""``timbridge kb``: ingest documents into knowledge bases, search, list and drop them."""

from __future__ import annotations

import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from timbridge.cli.common import ConfigOption, fail, load, run

__all__ = ["kb_app"]

kb_app = typer.Typer(help="Knowledge bases: ingest documents, search, list, drop.")


@kb_app.command("ingest")
def kb_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to read.")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name (created if needed).")],
    config: ConfigOption = None,
) -> None:
    """Read Markdown, text, HTML, PDF and FAQ (CSV/JSONL) files into a knowledge base."""
    from rich.progress import Progress

    from timbridge.knowledge.library import expand_paths
    from timbridge.runtime.library import open_library

    settings = load(config)
    files = list(expand_paths(paths))
    if not files:
        fail("no files of a known type (.md .txt .html .pdf .csv .jsonl) found", 2)

    async def go() -> None:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"ingesting into {kb}", total=len(files))

            def advance(path: Path, outcome: str, chunks: int) -> None:
                progress.advance(task)
                progress.console.print(f"{outcome:>9} {path} ({chunks} passages)")

            async with open_library(settings) as library:
                report = await library.ingest(kb, files, on_file=advance)
        for path, reason in report.failed:
            typer.echo(f"failed: {path}: {reason}", err=True)
        typer.echo(
            f"{kb}: {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.failed)} failed; "
            f"{report.chunks} passages embedded"
        )
        if report.failed:
            raise typer.Exit(1)

    _run_kb(go())


def _run_kb(coro: Coroutine[Any, Any, None]) -> None:
    from timbridge.errors import PayloadError, StorageError

    try:
        run(coro)
    except (PayloadError, StorageError) as exc:
        fail(str(exc))


@kb_app.command("search")
def kb_search(
    question: Annotated[str, typer.Argument(help="What to look for.")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name.")],
    top: Annotated[int, typer.Option("--top", min=1, max=50, help="How many passages.")] = 3,
    config: ConfigOption = None,
) -> None:
    """Print the passages that best answer QUESTION, with scores and sources."""
    from timbridge.runtime.library import open_library

    settings = load(config)

    async def go() -> None:
        async with open_library(settings) as library:
            hits = await library.search(kb, question, k=top)
        if not hits:
            typer.echo(f"no passage scores over knowledge.min_score ({library.min_score})")
            raise typer.Exit(1)
        for hit in hits:
            typer.echo(f"{hit.score:.3f}  {hit.source} › {hit.heading}")
            typer.echo("       " + hit.text.replace("\n", "\n       ")[:600])

    _run_kb(go())


@kb_app.command("gaps")
def kb_gaps(
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name.")],
    days: Annotated[
        float, typer.Option("--days", min=0, help="Questions of the last N days.")
    ] = 30,
    top: Annotated[int, typer.Option("--top", min=1, max=500, help="How many groups.")] = 20,
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.1, max=1.0, help="How alike a group is.")
    ] = 0.5,
    config: ConfigOption = None,
) -> None:
    """The questions KB could not answer, grouped by meaning, the most asked first."""
    from timbridge.knowledge.gaps import cluster
    from timbridge.runtime.library import open_library
    from timbridge.storage import Store

    settings = load(config)

    async def go() -> None:
        store = await Store.open(settings.store.url)
        try:
            since = time.time() - days * 86400 if days else 0.0
            found = await store.gaps.listing(kb, since=since)
        finally:
            await store.aclose()
        if not found:
            typer.echo(f"no unanswered questions for {kb} in the last {days:g} days")
            return
        questions = [gap.question for gap in found]
        async with open_library(settings) as library:
            vectors = await library.embedder.embed(questions)
        groups = cluster(questions, vectors, threshold=threshold)
        typer.echo(f"{len(found)} unanswered questions in {len(groups)} groups")
        for group in groups[:top]:
            typer.echo(f"{group.size:5}  {group.name}")
            others = [q for q in dict.fromkeys(group.questions) if q != group.name][:3]
            for other in others:
                typer.echo(f"       also: {other}")

    _run_kb(go())


@kb_app.command("list")
def kb_list(config: ConfigOption = None) -> None:
    """List knowledge bases with their documents and passages."""
    from timbridge.runtime.library import open_library

    settings = load(config)

    async def go() -> None:
        async with open_library(settings) as library:
            for base in await library.bases():
                typer.echo(
                    f"{base.name}\t{base.documents} documents\t{base.chunks} passages"
                    f"\t{base.embedder}"
                )

    _run_kb(go())


@kb_app.command("drop")
def kb_drop(
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base to delete.")],
    config: ConfigOption = None,
) -> None:
    """Delete a knowledge base and everything in it."""
    from timbridge.runtime.library import open_library

    settings = load(config)

    async def go() -> None:
        async with open_library(settings) as library:
            if not await library.drop(kb):
                fail(f"no knowledge base named {kb!r}")
        typer.echo(f"dropped {kb}")

    _run_kb(go())
