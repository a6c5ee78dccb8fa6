"""The ``knowledge_search`` tool: the robot's knowledge base, searched when the model decides
to, instead of passages injected into every context. A robot with this tool gets no injected
passages; the model asks with its own words, and may ask again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from timbridge.errors import TimbridgeError
from timbridge.knowledge.library import Library
from timbridge.llm.tools import ToolSpec
from timbridge.tools.toolbox import Tool, ToolError

__all__ = ["knowledge_tool"]


def knowledge_tool(library: Library, kb: str) -> Tool:
    """`knowledge_search` over `kb`: the best passages, each with where it comes from."""

    async def search(arguments: Mapping[str, Any]) -> str:
        query = str(arguments.get("query", "")).strip()
        if not query:
            raise ToolError("give a query")
        try:
            hits = await library.search(kb, query[:1000])
        except TimbridgeError as exc:
            raise ToolError(f"the knowledge base cannot be searched now: {exc}") from exc
        if not hits:
            return "nothing in the knowledge base matches"
        return "\n\n".join(
            f"[{n}] {hit.source} › {hit.heading} (score {hit.score:.2f})\n{hit.text}"
            for n, hit in enumerate(hits, start=1)
        )

    return Tool(
        ToolSpec(
            "knowledge_search",
            "Search this assistant's knowledge base (its product documentation) and return the "
            "best passages with their sources. Use it before answering questions it may cover.",
            {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "what to look for"}},
                "required": ["query"],
            },
        ),
        search,
    )
