"""Retrieval recall on real third-party documentation: Python's FAQ as Debian ships it
(``apt-get install python3.11-doc``: Sphinx HTML under ``/usr/share/doc/python3.11/html/faq``).

Every page is ingested into a throwaway knowledge base with the local embedder, then each of
40 paraphrased questions (written for this benchmark, in other words than the FAQ's) is searched;
a hit is right when its heading path ends with the FAQ entry that answers it. Prints recall@1
and recall@3, and the questions missed at 1.

Usage: python bench/knowledge_recall.py [--docs /usr/share/doc/python3.11/html/faq]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from timbridge.knowledge.embed import LocalEmbedder
from timbridge.knowledge.library import Library
from timbridge.knowledge.store import KnowledgeStore

#: (question, the end of the heading path of the FAQ entry that answers it).
QUESTIONS: list[tuple[str, str]] = [
    (
        "how can I get rid of repeated entries in a list",
        "How do you remove duplicates from a list?",
    ),
    (
        "turn the text '42' into an integer",
        "How do I convert a string to a number?",
    ),
    (
        "walk through a list backwards",
        "How do I iterate over a sequence in reverse order?",
    ),
    (
        "fastest way to glue lots of strings into one",
        "concatenate many strings together?",
    ),
    (
        "my script runs really slowly, what can I do about it",
        "How do I speed it up?",
    ),
    (
        "a mutable default argument keeps its value between calls",
        "Why are default values shared between objects?",
    ),
    (
        "make a deep or shallow copy of an object",
        "How do I copy an object in Python?",
    ),
    (
        "list every attribute and method an object has",
        "How can I find the methods or attributes of an object?",
    ),
    (
        "is there a conditional expression like a ? b : c",
        "ternary operator?",
    ),
    (
        "floor division of a negative number rounds down, why",
        "Why does -22 // 10 return -3?",
    ),
    (
        "call the parent class's version of a method from a subclass",
        "from a derived class that extends it?",
    ),
    (
        "class-level variables and methods that need no instance",
        "How do I create static class data and static class methods?",
    ),
    (
        "my destructor never seems to run when I delete an object",
        "but it is not called when I delete the object.",
    ),
    (
        "memoize the results of a method",
        "How do I cache method calls?",
    ),
    (
        "two of my modules import each other",
        "How can I have modules that mutually import each other?",
    ),
    (
        "I changed a module but importing it again still runs the old code",
        "Why does this happen?",
    ),
    (
        "UnboundLocalError although the variable was assigned earlier",
        "Why am I getting an UnboundLocalError when the variable has a value?",
    ),
    (
        "functions made with lambda inside a for loop all return the last value",
        "all return the same result?",
    ),
    (
        "share one configuration value between several modules",
        "How do I share global variables across modules?",
    ),
    (
        "strip the line ending off a string like perl does",
        "chomp() for removing trailing newlines from strings?",
    ),
    (
        "order one list using the values of a second list",
        "How can I sort one list by values from another list?",
    ),
    (
        "build a two-dimensional list, like a matrix",
        "How do I create a multidimensional list?",
    ),
    (
        "why is 0.1 + 0.2 not exactly 0.3",
        "Why are floating-point calculations so inaccurate?",
    ),
    (
        "why does python lack a switch statement",
        "Why isn't there a switch or case statement in Python?",
    ),
    (
        "why do I have to write self in every method",
        "be used explicitly in method definitions and calls?",
    ),
    (
        "why does sorting a list in place give back None",
        "Why doesn't list.sort() return the sorted list?",
    ),
    (
        "how does a dict work under the hood",
        "How are dictionaries implemented in CPython?",
    ),
    (
        "why can't I use a list as a dictionary key",
        "Why must dictionary keys be immutable?",
    ),
    (
        "how is memory freed and garbage collected",
        "How does Python manage memory?",
    ),
    (
        "remove a file from the disk",
        "How do I delete a file? (And other file questions…)",
    ),
    (
        "duplicate a file to another path",
        "How do I copy a file?",
    ),
    (
        "send an email from my program",
        "How do I send mail from a Python script?",
    ),
    (
        "produce random numbers",
        "How do I generate random numbers in Python?",
    ),
    (
        "hand out jobs to a pool of worker threads",
        "How do I parcel out work among a bunch of worker threads?",
    ),
    (
        "could the global interpreter lock be removed",
        "Can't we get rid of the Global Interpreter Lock?",
    ),
    (
        "start a python program on a Windows machine",
        "How do I run a Python program under Windows?",
    ),
    (
        "where does the language's name come from",
        "Why is it called Python?",
    ),
    (
        "is it a good first language for someone new to programming",
        "Is Python a good language for beginning programmers?",
    ),
    (
        "which libraries can I use to build a desktop user interface",
        "What GUI toolkits exist for Python?",
    ),
    (
        "write a function for python in the C language",
        "Can I create my own functions in C?",
    ),
]


async def main(pages: list[Path]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await KnowledgeStore.open(f"sqlite:///{Path(tmp) / 'kb.db'}")
        library = Library(store, LocalEmbedder())
        try:
            started = time.monotonic()
            report = await library.ingest("faq", pages)
            ingest_s = time.monotonic() - started
            first = third = 0
            missed = []
            for question, expected in QUESTIONS:
                hits = await library.search("faq", question, k=3)
                # (a "¶" left in a heading, by an older parser, does not count against it)
                # (typographic apostrophes compare as plain ones)
                headings = [
                    hit.heading.replace(" ¶", "").replace("¶", "").replace("\u2019", "'")
                    for hit in hits
                ]
                if headings and headings[0].endswith(expected):
                    first += 1
                else:
                    missed.append((question, expected, headings[0] if headings else "-"))
                if any(h.endswith(expected) for h in headings):
                    third += 1
        finally:
            await library.aclose()
    n = len(QUESTIONS)
    print(f"{len(pages)} pages, {report.chunks} passages, ingested in {ingest_s:.1f} s")
    print(f"recall@1 {first / n:.2f} ({first}/{n}), recall@3 {third / n:.2f} ({third}/{n})")
    for question, expected, got in missed:
        print(f"  missed at 1: {question!r}\n    wanted …{expected}\n    got    {got}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, default=Path("/usr/share/doc/python3.11/html/faq"))
    docs = parser.parse_args().docs
    found = sorted(p for p in docs.glob("*.html") if p.name not in ("index.html", "installed.html"))
    if not found:
        sys.exit(f"no pages under {docs}: apt-get install python3.11-doc")
    asyncio.run(main(found))
