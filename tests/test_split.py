"""Splitting a reply under Tencent's size limit, and the one code-fence scanner (`bot.split`,
`bot.fences`)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from timbridge.bot.fences import Fences
from timbridge.bot.split import DEFAULT_LIMIT, json_size, split_reply

texts = st.text(alphabet=st.sampled_from(list('ab中🙂\n"\\`| -')), max_size=3000)


@given(text=texts, limit=st.integers(min_value=80, max_value=400))
@settings(max_examples=200, deadline=None)
def test_split_parts_fit_and_keep_every_line(text: str, limit: int) -> None:
    parts = split_reply(text, limit)
    for part in parts:
        assert json_size(part) <= limit
        part.encode("utf-8")  # never a broken character
    if "```" not in text:
        joined = "".join(p.replace("\n", "") for p in parts)
        assert joined == text.replace("\n", "").rstrip() or joined == text.replace("\n", "")


def test_split_short_text_is_one_part() -> None:
    assert split_reply("hello") == ["hello"]


def test_split_keeps_table_rows_whole() -> None:
    rows = "| a | b |\n|---|---|\n" + "".join(f"| {n} | {'x' * 50} |\n" for n in range(400))
    parts = split_reply(rows)
    assert len(parts) > 1
    for part in parts:
        for line in part.splitlines():
            assert line.startswith("|") and line.endswith("|")


def test_split_reopens_code_fences_with_language() -> None:
    code = "Intro\n```python\n" + "".join(f"x = {n}\n" for n in range(3000)) + "```\nBye"
    parts = split_reply(code)
    assert len(parts) >= 3
    assert all(p.count("```") % 2 == 0 for p in parts)
    assert all(p.startswith("```python\n") for p in parts[1:-1])
    assert all(json_size(p) <= DEFAULT_LIMIT for p in parts)


def test_fences_are_decided_once_tildes_and_backticks_alike() -> None:
    fences = Fences()
    assert not fences.feed("Use ```inline``` code") and not fences.inside  # not a fence
    assert fences.feed("~~~python") and fences.inside
    assert not fences.feed("```") and fences.inside  # backticks inside a tilde fence are code
    assert not fences.feed("~~~ not a close")
    assert fences.feed("~~~~") and not fences.inside  # the same character, at least as long
    assert Fences.after("```\ncode\n").inside and not Fences.after("```\ncode\n```\n").inside


def test_a_tilde_fence_cut_between_parts_is_closed_and_reopened_with_its_own_marker() -> None:
    text = "~~~python\n" + "".join(f"print({i})\n" for i in range(3000)) + "~~~"
    parts = split_reply(text)
    assert len(parts) >= 3
    for part in parts:
        assert part.startswith("~~~python\n") and part.endswith("~~~")
        assert "```" not in part
    joined = "".join(p.removeprefix("~~~python\n").removesuffix("~~~") for p in parts)
    assert joined.count("print(") == 3000
