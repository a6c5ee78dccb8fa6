"""Knowledge bases: readers, chunks, the numpy MiniLM against sentence-transformers' own vectors,
keywords, hybrid retrieval and the library on a real SQLite store."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from timbridge.errors import PayloadError
from timbridge.knowledge.chunks import chunk_document
from timbridge.knowledge.documents import Document, Section, parse_document
from timbridge.knowledge.embed import KEYWORDS_ONLY, KeywordsOnly, LocalEmbedder
from timbridge.knowledge.keywords import BM25, tokenize
from timbridge.knowledge.library import BUILTIN_KB, Library, builtin_documents
from timbridge.knowledge.minilm import MiniLM
from timbridge.knowledge.store import KnowledgeStore

DATA = Path(__file__).with_name("data")


def make_pdf(pages: list[str]) -> bytes:
    """A minimal, valid PDF with one line of Helvetica text per page (correct xref offsets)."""
    return make_pdf_lines([[(12, text)] for text in pages])


def make_pdf_lines(pages: list[list[tuple[int, str]]]) -> bytes:
    """A minimal, valid PDF: per page, lines of Helvetica text, each in its own size."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font = 3 + 2 * len(pages)
    for i, lines in enumerate(pages):
        content = " ".join(
            f"BT /F1 {size} Tf 72 {720 - 24 * n} Td ({text}) Tj ET"
            for n, (size, text) in enumerate(lines)
        ).encode()
        stream = zlib.compress(content)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objects.append(
            f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
            + stream
            + b"\nendstream"
        )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


# --- the embedding model ------------------------------------------------------------------


def test_numpy_minilm_matches_sentence_transformers() -> None:
    reference = json.loads((DATA / "minilm_reference.json").read_text(encoding="utf-8"))
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    got = MiniLM().embed(reference["sentences"])
    assert got.shape == expected.shape == (6, 384)
    assert float(np.abs(got - expected).max()) < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_embedding_is_independent_of_batching() -> None:
    model = MiniLM()
    texts = ["short", "a much longer sentence about configuring model providers", "中文句子"]
    together = model.embed(texts)
    alone = np.vstack([model.embed([t]) for t in texts])
    assert float(np.abs(together - alone).max()) < 1e-5
    assert model.embed([]).shape == (0, 384)


# --- keywords -----------------------------------------------------------------------------


def test_tokenize_stems_drops_stop_words_and_pairs_cjk() -> None:
    assert tokenize("How do I configure models?") == ["configur", "model"]
    assert tokenize("configured configuring") == ["configur", "configur"]
    assert tokenize("status class analysis") == ["status", "class", "analysis"]
    assert tokenize("配置模型") == ["配", "置", "模", "型", "配置", "置模", "模型"]
    assert tokenize("error 70001 a x") == ["error", "70001"]  # 1-letter words carry nothing


def test_bm25_ranks_the_matching_document_and_scores_zero_elsewhere() -> None:
    index = BM25(["refund policy for orders", "shipping times to Europe", "退货政策和退款"])
    scores = index.scores("how do refunds work")
    assert scores.argmax() == 0 and scores[1] == 0 and scores[2] == 0
    assert index.scores("退款")[2] > 0 and index.scores("退款")[:2].sum() == 0
    assert not index.scores("").any()


# --- documents and chunks -----------------------------------------------------------------


def test_markdown_sections_follow_heading_paths_and_ignore_fenced_hashes() -> None:
    doc = parse_document(
        "guide.md", b"intro\n# Guide\ntext\n## Models\n```\n# not a heading\n```\n### Keys\nk\n"
    )
    assert doc.title == "Guide"
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Guide", "intro"),
        ("Guide", "text"),
        ("Guide › Models", "```\n# not a heading\n```"),
        ("Guide › Models › Keys", "k"),
    ]


def test_html_drops_scripts_and_navigation_and_keeps_headings() -> None:
    doc = parse_document(
        "page.html",
        b"<html><head><title>Shop help</title><script>var x=1</script></head><body>"
        b"<nav>Home | About</nav><h1>Returns</h1><p>Within <b>30 days</b>.</p>"
        b"<ul><li><p>Keep the receipt</p></li></ul><h2>Refunds</h2><p>To your card.</p></body>",
    )
    assert doc.title == "Shop help"
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Returns", "Within 30 days .\n\n- Keep the receipt"),
        ("Returns › Refunds", "To your card."),
    ]


def test_pdf_headings_are_found_by_their_size_and_carry_across_pages() -> None:
    pdf = make_pdf_lines(
        [
            [(20, "Shop handbook"), (15, "Returns"), (11, "Items can be returned in 30 days.")],
            [(13, "Refunds"), (11, "Refunds reach the card in five days.")],
            [(15, "Shipping"), (11, "Orders leave the same day."), (11, "Tracking comes later.")],
        ]
    )
    doc = parse_document("handbook.pdf", pdf)
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Shop handbook › Returns", "Items can be returned in 30 days."),
        ("Shop handbook › Returns › Refunds", "Refunds reach the card in five days."),
        ("Shop handbook › Shipping", "Orders leave the same day.\nTracking comes later."),
    ]


def test_pdf_pages_become_sections() -> None:
    doc = parse_document("manual.pdf", make_pdf(["Refunds take five days", "Shipping is free"]))
    assert [s.heading for s in doc.sections] == ["manual › page 1", "manual › page 2"]
    assert "Refunds take five days" in doc.sections[0].text


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("faq.csv", b"Question,Answer\nHow long do refunds take?,Five days.\n"),
        ("faq.jsonl", b'{"question": "How long do refunds take?", "answer": "Five days."}\n\n'),
    ],
)
def test_faq_files_give_one_whole_pair_per_section(name: str, raw: bytes) -> None:
    doc = parse_document(name, raw)
    assert doc.sections == [
        Section("How long do refunds take?", "Q: How long do refunds take?\nA: Five days.", True)
    ]


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("notes.docx", b"x", "unknown file type .docx"),
        ("faq.jsonl", b'{"question": "q", "answer": "a"}\nnot json\n', "line 2: not JSON"),
        ("faq.jsonl", b"[1, 2]\n", "line 1: expected an object"),
        ("faq.csv", b"q,answer\nonly a question,\n", "row 2: 'question' and 'answer' must"),
        ("faq.csv", b"title,body\nx,y\n", "row 2: needs text fields 'question' and 'answer'"),
        ("notes.txt", b"\xff\xfe broken", "not UTF-8 text"),
        ("manual.pdf", b"%PDF-1.4 truncated", "pdf: not a readable PDF"),
    ],
)
def test_bad_files_say_what_is_wrong(name: str, raw: bytes, says: str) -> None:
    with pytest.raises(PayloadError, match=says.replace("(", r"\(").replace(".", r"\.")):
        parse_document(name, raw)


def test_chunks_stay_under_the_limit_keep_fences_whole_and_faq_pairs_whole() -> None:
    fence = "```toml\n" + "\n".join(f"key{i} = {i}" for i in range(20)) + "\n```"
    long_paragraph = " ".join(f"Sentence number {i} explains one thing." for i in range(60))
    doc = Document(
        "d.md",
        "d",
        [
            Section("A", f"first paragraph\n\n{fence}\n\n{long_paragraph}"),
            Section("Q?", "Q: " + "x" * 2000, faq=True),
        ],
    )
    chunks = chunk_document(doc, limit=400)
    regular = [c for c in chunks if c.heading == "A"]
    assert all(len(c.text) <= 400 for c in regular)
    assert any(fence in c.text for c in regular)  # the fence (under the limit) is not cut
    assert " ".join(c.text for c in regular).count("Sentence number") == 60
    assert chunks[-1].text == "Q: " + "x" * 2000  # a question-answer pair is kept whole


# --- the library on a real store ------------------------------------------------------------


@pytest.fixture
async def library(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await KnowledgeStore.open(f"sqlite:///{tmp_path / 'kb.db'}")
    lib = Library(store, LocalEmbedder(), refresh_s=0.0)
    yield lib
    await lib.aclose()


def _shop(folder: Path) -> Path:
    folder.mkdir()
    (folder / "returns.md").write_text(
        "# Returns\nItems can be returned within 30 days with the receipt.\n"
        "## Refunds\nRefunds go back to the original card within five working days.\n",
        encoding="utf-8",
    )
    (folder / "faq.csv").write_text(
        "question,answer\nDo you ship to Europe?,Yes: shipping to Europe takes 3 to 5 days.\n"
        "退货需要多久？,退款在五个工作日内退回原卡。\n",
        encoding="utf-8",
    )
    (folder / "broken.jsonl").write_text("not json\n", encoding="utf-8")
    (folder / "ignored.bin").write_bytes(b"\x00")
    return folder


async def test_ingest_reports_each_file_and_reingest_costs_only_what_changed(
    library: Library, tmp_path: Path
) -> None:
    folder = _shop(tmp_path / "shop")
    seen: list[tuple[str, str]] = []
    report = await library.ingest(
        "shop", [folder], on_file=lambda p, o, n: seen.append((p.name, o))
    )
    assert sorted(seen) == [
        ("broken.jsonl", "failed"),
        ("faq.csv", "added"),
        ("returns.md", "added"),
    ]
    [(path, reason)] = report.failed
    assert path == str(folder / "broken.jsonl") and reason.startswith("line 1: not JSON: ")
    assert report.chunks == 4
    again = await library.ingest("shop", [folder])
    assert len(again.unchanged) == 2 and again.chunks == 0
    (folder / "returns.md").write_text("# Returns\nNo returns on sale items.\n", encoding="utf-8")
    changed = await library.ingest("shop", [folder / "returns.md"])
    assert changed.updated == [str(folder / "returns.md")] and changed.chunks == 1
    [info] = await library.bases()
    assert (info.name, info.documents, info.chunks) == ("shop", 2, 3)
    hits = await library.search("shop", "can I return something I bought on sale?")
    assert hits and "sale items" in hits[0].text
    assert not any("30 days" in h.text for h in await library.search("shop", "returns", k=10))


async def test_search_finds_paraphrases_exact_terms_and_chinese_and_abstains_off_topic(
    library: Library, tmp_path: Path
) -> None:
    await library.ingest("shop", [_shop(tmp_path / "shop")])
    best = await library.search("shop", "when do I get my money back?")
    assert best[0].heading == "Returns › Refunds"  # a paraphrase: no shared keyword
    assert (await library.search("shop", "Europe"))[0].source == "faq.csv"
    assert "五个工作日" in (await library.search("shop", "退款要多久"))[0].text
    assert await library.search("shop", "who won the football world cup?") == []
    assert await library.search("shop", "   ") == []


async def test_unknown_base_bad_name_and_other_embedder_are_refused(
    library: Library, tmp_path: Path
) -> None:
    with pytest.raises(PayloadError, match="no knowledge base named 'nope'"):
        await library.search("nope", "hello")
    with pytest.raises(PayloadError, match="use 1-100 of a-z"):
        await library.ingest("Bad Name!", [tmp_path])
    await library.ingest("shop", [_shop(tmp_path / "shop")])
    other = Library(library.store, KeywordsOnly())
    with pytest.raises(PayloadError, match="was built with embedder minilm-l6-v2/384"):
        await other.ingest_bytes("shop", "x.md", b"# X\ny\n")
    assert await library.drop("shop") is True
    assert await library.drop("shop") is False
    assert await library.bases() == []


async def test_keywords_only_library_still_answers(tmp_path: Path) -> None:
    store = await KnowledgeStore.open(f"sqlite:///{tmp_path / 'kb.db'}")
    lib = Library(store, KeywordsOnly())
    try:
        await lib.ingest("shop", [_shop(tmp_path / "shop")])
        assert (await lib.bases())[0].embedder == KEYWORDS_ONLY
        hits = await lib.search("shop", "shipping to Europe")
        assert hits and hits[0].source == "faq.csv" and hits[0].similarity == 0.0
    finally:
        await lib.aclose()


async def test_a_running_searcher_sees_a_new_ingest(library: Library, tmp_path: Path) -> None:
    await library.ingest("shop", [_shop(tmp_path / "shop")])
    other_process = Library(library.store, LocalEmbedder(), refresh_s=0.0)
    assert await other_process.search("shop", "gift cards") == []
    await library.ingest_bytes("shop", "gifts.md", b"# Gift cards\nGift cards never expire.\n")
    assert (await other_process.search("shop", "gift cards"))[0].source == "gifts.md"


async def test_builtin_docs_are_ingested_once_and_pruned(library: Library) -> None:
    await library.ensure_builtin()
    [info] = await library.bases()
    shipped = builtin_documents()
    assert info.name == BUILTIN_KB and info.documents == len(shipped) >= 8
    version = info.version
    await library.ensure_builtin()  # nothing changed: nothing re-embedded
    assert (await library.bases())[0].version == version
    await library.ingest_bytes(BUILTIN_KB, "stale.md", b"# Old\nremoved page\n")
    await library.ensure_builtin()
    assert (await library.bases())[0].documents == len(shipped)  # the stale page is gone
    hits = await library.search(BUILTIN_KB, "How do I configure a model with an API key?")
    assert hits[0].source == "models.md"


SPHINX = """<html><head><title>Programming FAQ &#8212; Python 3.11.2 documentation</title></head>
<body><div class="related" role="navigation"><ul><li><a href="index.html">index</a></li></ul></div>
<div class="document"><div class="body" role="main">
<section id="programming-faq"><h1>Programming FAQ<a class="headerlink" href="#programming-faq"
 title="Permalink to this headline">\u00b6</a></h1>
<section id="sequences"><h2>Sequences (Tuples/Lists)<a class="headerlink"
 href="#sequences">\u00b6</a></h2>
<section id="threads"><h3>None of my threads seem to run: why?<a class="headerlink"
 href="#threads">\u00b6</a></h3>
<p>As soon as the main thread exits, all threads are killed.</p>
<div class="highlight-python3"><div class="highlight">
<pre><span></span><span class="kn">import</span> time
<span class="c1"># Give threads time to run</span>
time.sleep(10)
</pre></div></div>
<p>A sleep at the end lets the threads finish.</p>
</section></section></section></div></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3>
<ul><li>Programming FAQ</li></ul></div>
</body></html>"""

MKDOCS = """<html><head><title>Install - Tool docs</title></head><body>
<header class="md-header"><a>Tool</a></header><div class="md-sidebar"><nav>Home Install</nav></div>
<article class="md-content__inner"><h1 id="install">Install<a class="headerlink" href="#install"
 title="Permanent link">&para;</a></h1><h2 id="linux">On Linux<a class="headerlink"
 href="#linux">&para;</a></h2><p>Use the package manager.</p></article></body></html>"""

DOCUSAURUS = """<html><head><title>Webhooks | Docs</title></head><body>
<nav class="navbar">Docs Blog</nav><aside class="theme-doc-sidebar-container">Intro Webhooks</aside>
<nav aria-label="breadcrumbs">Home › Webhooks</nav><article><h1>Webhooks</h1>
<h2 class="anchor" id="retries">Retries<a href="#retries" class="hash-link"
 aria-label="Direct link to Retries" title="Direct link to Retries">\u200b</a></h2>
<p>Failed deliveries are retried three times.</p></article>
<nav class="pagination-nav">Previous Next</nav></body></html>"""


@pytest.mark.parametrize(
    ("page", "headings", "absent"),
    [
        (
            SPHINX,
            ["Programming FAQ › Sequences (Tuples/Lists) › None of my threads seem to run: why?"],
            ["Table of Contents", "index", "\u00b6"],
        ),
        (MKDOCS, ["Install › On Linux"], ["Home Install", "\u00b6"]),
        (DOCUSAURUS, ["Webhooks › Retries"], ["Intro Webhooks", "Previous Next", "\u200b"]),
    ],
    ids=["sphinx", "mkdocs", "docusaurus"],
)
def test_generated_docs_keep_their_authors_headings(
    page: str, headings: list[str], absent: list[str]
) -> None:
    document = parse_document("page.html", page.encode())
    assert [s.heading for s in document.sections] == headings
    everything = " ".join(s.heading + " " + s.text for s in document.sections)
    for text in absent:
        assert text not in everything


def test_a_comment_in_a_code_sample_heads_no_section_and_the_code_stays_whole() -> None:
    [section] = parse_document("faq.html", SPHINX.encode()).sections
    assert "# Give threads time to run" in section.text  # inside the code, as written
    assert section.text.startswith("As soon as the main thread exits")
    assert section.text.endswith("A sleep at the end lets the threads finish.")
    [chunk] = chunk_document(parse_document("faq.html", SPHINX.encode()))
    assert "Give threads time to run" not in chunk.searchable  # code is not embedded
    assert chunk.searchable.startswith("None of my threads seem to run: why?\n")
