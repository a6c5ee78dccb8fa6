"""Long-term memory end to end in the emulator: facts told once are used hundreds of turns later
and after a restart, a correction replaces the old fact, `/forget` deletes for real, each group
member's facts stay theirs, the offline model keeps what it is told to remember, the model's
`remember`/`forget` tools, the budget and its recalled set, readings in the background, and a
second deployment on PostgreSQL and Redis recalling what the first learned."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tests.fakes.openai import FakeOpenAI
from tests.stack import Stack, running_stack, stack_emulator
from timbridge.bot.conversation import Conversation
from timbridge.bot.memory import EXTRACT_PROMPT, FACTS_INTRO, explicit_fact, parse_extraction
from timbridge.bot.sentences import (
    FORGET_USAGE,
    MEMORY_OFF,
    NOTHING_REMEMBERED,
    REMEMBERED,
)
from timbridge.bot.summaries import SUMMARY_PROMPT
from timbridge.storage import Store, Turn
from timbridge.storage.facts import Owner
from timbridge.storage.schema import facts

pytestmark = pytest.mark.usefixtures("clean_env")

ROBOT = "@RBT#helper"
ASK = "what do you know about me"
_INTRO = FACTS_INTRO.split("{user}")[0]
_RULES = [  # what the fake extractor learns from a message: (pattern, fact, subject)
    (re.compile(r"my name is (\w+)", re.I), "{user}'s name is {0}", "name"),
    (re.compile(r"my cat is called (\w+)", re.I), "{user} has a cat called {0}", "cat"),
    (re.compile(r"I love ([\w ]+)", re.I), "{user} loves {0}", "loves"),
]


def _extract(content: str) -> str:
    """The fake model's answer to the extraction request: a fact for each message line its
    rules know, replacing the known fact of the same user and subject."""
    known_part, _, messages = content.partition("\n\nMessages:\n")
    known = re.findall(r"^\[(\d+)\] \((\S+)\) (.*)$", known_part, re.M)
    found: list[dict[str, Any]] = []
    for line in messages.splitlines():
        user, _, text = line.partition(": ")
        if user == "assistant":
            continue
        for pattern, template, subject in _RULES:
            if (match := pattern.search(text)) is None:
                continue
            fact = template.format(*match.groups(), user=user)
            old = next(
                (int(n) for n, who, t in known if who == user and _subject(t) == subject), None
            )
            found.append({"user": user, "fact": fact, "replaces": old})
    return orjson.dumps({"facts": found}).decode()


def _subject(fact: str) -> str:
    return next((s for _, t, s in _RULES if t.split("{0}")[0].replace("{user}", "") in fact), "")


def _facts_in(messages: list[dict[str, Any]]) -> list[str]:
    """The remembered facts a request's context carried."""
    for message in messages:
        if message["role"] == "system" and str(message["content"]).startswith(_INTRO):
            return [line[2:] for line in str(message["content"]).splitlines()[1:]]
    return []


def companion(messages: list[dict[str, Any]]) -> str:
    """A model for these tests: it extracts facts, summarises blandly (so that nothing from
    the summary could pass for memory), and to ``ASK`` answers with the facts in its context."""
    first = str(messages[0]["content"])
    if first == EXTRACT_PROMPT:
        return _extract(str(messages[1]["content"]))
    if first == SUMMARY_PROMPT:
        return "We chatted."
    if ASK in str(messages[-1]["content"]):
        return "You told me: " + "; ".join(_facts_in(messages)) if _facts_in(messages) else "?"
    return "ok"


def _robots(**extra: Any) -> list[dict[str, Any]]:
    return [{"id": ROBOT, "persona": "You are a friend.", "memory": "long", **extra}]


async def _say(stack: Stack, text: str, user: str = "alice") -> str:
    mark = stack.emu.mark()
    stack.emu.user_send(user, ROBOT, text)
    return (await stack.emu.wait_message(from_=ROBOT, to=user, after=mark)).text


def _extractions(llm: FakeOpenAI) -> list[dict[str, Any]]:
    return [r for r in llm.requests if r["messages"][0]["content"] == EXTRACT_PROMPT]


async def _read(stack: Stack) -> None:
    """Once every message is answered and the readings for facts this started are over."""
    memory = stack.services.engine._memory
    assert memory is not None
    await stack.services.coordination.idle()  # type: ignore[attr-defined]
    await memory.settled()


async def _count_facts(url: str) -> int:
    store = await Store.open(url)
    try:
        query = sa.select(sa.func.count()).select_from(facts)
        return int(await store.database.run("count", lambda c: c.execute(query).scalar_one()))
    finally:
        await store.aclose()


def test_explicit_requests_to_remember_are_recognised() -> None:
    assert explicit_fact("Remember that my cat is called Mochi.") == "my cat is called Mochi"
    assert explicit_fact("please remember: I'm allergic to nuts") == "I'm allergic to nuts"
    assert explicit_fact("记住：我喜欢茉莉花茶。") == "我喜欢茉莉花茶"
    assert explicit_fact("remember when we met?") is None
    assert explicit_fact("remember me") is None
    assert explicit_fact("do you remember my cat") is None
    assert explicit_fact("what is my name") is None


def test_the_extractors_answer_is_read_strictly() -> None:
    answer = (
        'Sure! {"facts": [{"user": "alice", "fact": "  Alice  has a cat ", "replaces": 2},'
        '{"user": "carol", "fact": "Carol is 30"}, {"user": "alice", "fact": ""},'
        '{"user": "alice", "fact": "Alice likes tea", "replaces": 9}, "junk"]}'
    )
    found = parse_extraction(answer, ["alice", "bob"], known=3)
    assert [(f.user, f.text, f.replaces) for f in found] == [
        ("alice", "Alice has a cat", 2),  # carol wrote nothing in the batch: her fact is dropped
        ("alice", "Alice likes tea", None),  # there is no known fact 9
    ]
    assert parse_extraction("I could not find any facts.", ["alice"], known=0) == []
    assert parse_extraction('{"facts": "none"}', ["alice"], known=0) == []
    lone = parse_extraction('{"facts": [{"fact": "likes jazz"}]}', ["alice"], known=0)
    assert [(f.user, f.text) for f in lone] == [("alice", "likes jazz")]


async def test_a_companion_remembers_after_200_turns_a_restart_and_a_correction(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(reply=companion)
    options = {"context_tokens": 1200, "max_tokens": 200}
    settings: dict[str, Any] = {
        "robots": _robots(),
        "memory": {"extract_every": 6},
        "model_options": options,
    }
    async with running_stack(tmp_path, llm=llm, **settings) as stack:
        for said in ("hi! my name is Ana", "my cat is called Mochi", "I love jasmine tea"):
            assert await _say(stack, said) == "ok"
        for n in range(200):
            await _say(stack, f"small talk number {n} about the weather and nothing else")
        await _read(stack)
        asked = await _say(stack, ASK)
        context = llm.requests[-1]["messages"]
        url = stack.settings.store.url
    assert (
        asked
        == "You told me: alice's name is Ana; alice has a cat called Mochi; alice loves jasmine tea"
    )
    said_then = [m for m in context if "Mochi" in str(m["content"])]
    assert [m["role"] for m in said_then] == ["system"]  # from memory: the turns rolled out
    assert len(_extractions(llm)) <= 204 // 6 + 8  # batched, not one call per message

    llm = FakeOpenAI(reply=companion)
    async with running_stack(tmp_path, llm=llm, **settings) as stack:
        assert "alice has a cat called Mochi" in await _say(stack, ASK)
        await _say(stack, "sad news, but my cat is called Luna now: a new kitten")
        for n in range(6):
            await _say(stack, f"more small talk {n}")
        listed = await _say(stack, "/memory")
        assert listed.splitlines()[:3] == [
            "1. alice's name is Ana",
            "2. alice has a cat called Luna",  # replaced in place, not added
            "3. alice loves jasmine tea",
        ]
        assert "Mochi" not in listed
        told = await _say(stack, "/forget all")
        assert told == (
            "Done: I have forgotten everything I knew about you (3 facts) and our conversation."
        )
        assert await _say(stack, "/memory") == NOTHING_REMEMBERED
        await _say(stack, "hello")
        assert _facts_in(llm.requests[-1]["messages"]) == []
        assert [m["content"] for m in llm.requests[-1]["messages"][1:]] == ["hello"]
        added = stack.services.metrics.memory_facts.labels(ROBOT, "updated")._value.get()
    assert added >= 1
    assert await _count_facts(url) == 0


async def test_forgetting_one_fact_by_number_or_words(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=companion)
    async with running_stack(
        tmp_path, llm=llm, robots=_robots(), memory={"extract_every": 3}
    ) as stack:
        for said in ("my name is Ana", "my cat is called Mochi", "I love rainy days"):
            await _say(stack, said)
        assert await _say(stack, "/forget") == FORGET_USAGE
        assert (
            await _say(stack, "/forget 2") == "Done: I have forgotten alice has a cat called Mochi."
        )
        assert await _say(stack, "/forget 7") == (
            "I remember nothing that matches '7'. /memory shows what I remember."
        )
        assert await _say(stack, "/forget rainy days") == (
            "Done: I have forgotten alice loves rainy days."
        )
        assert (await _say(stack, "/memory")).splitlines()[0] == "1. alice's name is Ana"
        await _say(stack, "hi")
        intro = _facts_in_intro(llm.requests[-1]["messages"])
        assert intro.startswith("What you remember about alice from earlier conversations")
        assert _facts_in(llm.requests[-1]["messages"]) == ["alice's name is Ana"]


async def test_memory_and_forget_see_what_was_said_a_moment_ago(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=companion)
    async with running_stack(tmp_path, llm=llm, robots=_robots()) as stack:  # batches of 6
        await _say(stack, "my name is Ana")
        await _say(stack, "my cat is called Mochi")
        assert (await _say(stack, "/memory")).splitlines()[:2] == [
            "1. alice's name is Ana",
            "2. alice has a cat called Mochi",
        ]  # read for it, although the batch is not full
        await _say(stack, "I love jasmine tea")
        assert await _say(stack, "/forget jasmine") == (
            "Done: I have forgotten alice loves jasmine tea."
        )
        for n in range(6):
            await _say(stack, f"small talk {n}")
        await _read(stack)
        listed = await _say(stack, "/memory")
        assert "jasmine" not in listed  # not learned again from the message it came from
        assert len(_extractions(llm)) == 3  # /memory, /forget, the batch of small talk
        assert "alice: I love jasmine tea" not in str(_extractions(llm)[2]["messages"])


def _facts_in_intro(messages: list[dict[str, Any]]) -> str:
    return next((str(m["content"]) for m in messages if str(m["content"]).startswith(_INTRO)), "")


async def test_group_members_facts_never_reach_each_other(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=companion)
    async with running_stack(
        tmp_path, llm=llm, robots=_robots(), memory={"extract_every": 2}
    ) as stack:
        group = stack.emu.world.create_group(
            type="Public", name="team", owner="alice", group_id=None, members=["bob", ROBOT]
        ).group_id

        async def say(user: str, text: str) -> str:
            mark = stack.emu.mark()
            stack.emu.user_send_group(user, group, f"@Helper {text}", (ROBOT,))
            return (await stack.emu.wait_message(from_=ROBOT, group=group, after=mark)).text

        await say("alice", "my name is Ana")
        await say("bob", "my cat is called Rex")
        await say("alice", "I love chess")
        await say("bob", "my name is Bo")
        await _read(stack)
        assert (
            await say("bob", ASK) == "@bob You told me: bob has a cat called Rex; bob's name is Bo"
        )
        bob_context = llm.requests[-1]["messages"]
        assert (
            await say("alice", ASK) == "@alice You told me: alice's name is Ana; alice loves chess"
        )
        assert "Ana" not in _facts_in_intro(bob_context) and "chess" not in str(bob_context[1])
        listed = await say("bob", "/memory")
        assert "Rex" in listed and "Ana" not in listed and "chess" not in listed
        # what alice said in the group stays in the group: her private chat knows none of it
        assert await _say(stack, "/memory") == NOTHING_REMEMBERED
    store = await Store.open(stack.settings.store.url)
    try:
        bobs = await store.facts.of(Owner(ROBOT, "bob", str(group)))
        alices = await store.facts.of(Owner(ROBOT, "alice", str(group)))
    finally:
        await store.aclose()
    assert sorted(f.text for f in bobs) == ["bob has a cat called Rex", "bob's name is Bo"]
    assert sorted(f.text for f in alices) == ["alice loves chess", "alice's name is Ana"]


async def test_the_offline_model_keeps_what_it_is_told_to_remember(tmp_path: Path) -> None:
    models = {"default": {"provider": "offline"}}
    async with running_stack(tmp_path, robots=_robots(), models=models) as stack:
        told = await _say(stack, "Remember that my sister Lin lives in Chengdu.")
        assert told == REMEMBERED.format(fact="my sister Lin lives in Chengdu")
        await _say(stack, "remember: I take the 8:10 train")
        assert (await _say(stack, "/memory")).splitlines()[:2] == [
            "1. my sister Lin lives in Chengdu",
            "2. I take the 8:10 train",
        ]
        assert await _say(stack, "/forget train") == "Done: I have forgotten I take the 8:10 train."
        assert (await _say(stack, "/memory")).startswith("1. my sister Lin lives in Chengdu\n\n")
        # said again in other words of the same meaning: one fact, not two
        await _say(stack, "remember that my sister Lin lives in Chengdu!")
        assert (await _say(stack, "/memory")).count("Chengdu") == 1


async def test_robots_without_long_memory_say_so(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        assert await _say(stack, "/memory") == MEMORY_OFF
        assert await _say(stack, "/forget all") == MEMORY_OFF
        await _say(stack, "remember that I like tea")
        assert stack.llm.requests[-1]["messages"][1]["content"] == "remember that I like tea"


def _tools(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]] | None:
    last = messages[-1]
    if last["role"] != "user":
        return None
    if "vegetarian" in str(last["content"]) and "forget" not in str(last["content"]):
        return [("remember", {"fact": "alice is vegetarian"})]
    if "forget" in str(last["content"]):
        return [("forget", {"fact": "the user is a vegetarian"})]
    return None


async def test_the_model_keeps_and_drops_facts_with_its_tools(tmp_path: Path) -> None:
    llm = FakeOpenAI(reply=companion, tool_calls=_tools)
    async with running_stack(tmp_path, llm=llm, robots=_robots()) as stack:
        await _say(stack, "by the way, I am vegetarian")
        tools = {t["function"]["name"] for t in llm.requests[0]["tools"]}
        assert {"remember", "forget"} <= tools
        result = llm.requests[1]["messages"][-1]
        assert result["role"] == "tool" and result["content"] == "Kept: alice is vegetarian"
        assert await _say(stack, "/memory") == (
            "1. alice is vegetarian\n\n/forget N deletes one, /forget all deletes everything."
        )
        assert _facts_in(llm.requests[-1]["messages"]) == []  # (the /memory asked no model)
        await _say(stack, "hello again")
        assert _facts_in(llm.requests[-1]["messages"]) == ["alice is vegetarian"]
        await _say(stack, "please forget that I said that")
        assert llm.requests[-1]["messages"][-1]["content"] == "Forgot: alice is vegetarian"
        assert await _say(stack, "/memory") == NOTHING_REMEMBERED


async def test_facts_past_the_budget_fill_it_in_the_order_learned_and_keep_the_prefix(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(reply=companion)
    async with running_stack(
        tmp_path, llm=llm, robots=_robots(), memory={"budget_tokens": 60}
    ) as stack:
        memory = stack.services.engine._memory
        assert memory is not None
        owner = Owner(ROBOT, "alice", "")
        hobbies = ["chess", "sailing", "pottery", "tango", "climbing", "origami", "jazz piano"]
        for hobby in hobbies:
            await memory.keep(owner, f"alice practises {hobby} every week", "learned")
        await memory.keep(owner, "alice has a cat called Mochi who hates the vet", "learned")
        await _say(stack, "my cat is sick, should I take her to the vet?")
        chosen = _facts_in(llm.requests[-1]["messages"])
        assert "alice has a cat called Mochi who hates the vet" in chosen
        assert 0 < len(chosen) < len(hobbies) + 1
        every = [f.text for f in await memory.known(Conversation(ROBOT, "c2c", "alice", "alice"))]
        assert chosen == [f for f in every if f in chosen]  # in the order they were learned
        await _say(stack, "small talk")
        await _say(stack, "more small talk")
        first, second = llm.requests[-2]["messages"], llm.requests[-1]["messages"]
        assert first[:2] == second[:2]  # persona and facts: the same prefix, byte for byte


async def test_past_the_budget_a_recalled_set_keeps_the_facts_block_the_same_between_batches(
    tmp_path: Path,
) -> None:
    llm = FakeOpenAI(reply=companion)
    settings: dict[str, Any] = {
        "robots": _robots(),
        "memory": {"budget_tokens": 60, "extract_every": 3},
    }
    hobbies = [
        "chess", "pottery", "tango", "climbing", "origami", "jazz piano", "knitting",
        "archery", "fencing", "rowing", "baking bread", "birdwatching",
    ]  # fmt: skip
    async with running_stack(tmp_path, llm=llm, **settings) as stack:
        memory = stack.services.engine._memory
        assert memory is not None
        owner = Owner(ROBOT, "alice", "")
        await memory.keep(owner, "alice has a cat called Mochi who hates the vet", "learned")
        for hobby in hobbies:
            await memory.keep(owner, f"alice practises {hobby} every week", "learned")
        await memory.keep(owner, "alice practises sailing on the lake every week", "learned")
        # a batch about sailing: the extractor reads it, and the set is chosen from it
        for said in ("I love sailing", "the lake was windy for sailing", "sailing again soon"):
            await _say(stack, said)
        await _read(stack)
        assert len(_extractions(llm)) == 1
        blocks = []
        for said in ("small talk", "more small talk"):
            await _say(stack, said)
            blocks.append(_facts_in(llm.requests[-1]["messages"]))
        assert blocks[0] == blocks[1]  # the same block, so the same cached prefix
        recalled = blocks[0]
        assert "alice loves sailing" in recalled  # new: recalled at once
        assert "alice practises sailing on the lake every week" in recalled  # what it was about
        assert "alice has a cat called Mochi who hates the vet" not in recalled
        assert 0 < len(recalled) < len(hobbies) + 3
        known = await memory.known(Conversation(ROBOT, "c2c", "alice", "alice"))
        assert sum(f.recall is not None for f in known) == len(recalled)

        mochi = "alice has a cat called Mochi who hates the vet"
        await _say(stack, "how is Mochi doing, do you think?")  # named by a rare word
        named = _facts_in(llm.requests[-1]["messages"])
        assert mochi in named
        assert set(named) - {mochi} <= set(recalled)  # the rest is the recalled set
        # that batch was about the cat: the set chosen from it keeps her
        await _read(stack)
        await _say(stack, "remember that I am allergic to peanuts")
        assert len(_extractions(llm)) == 2
        await _say(stack, "anything")
        after = _facts_in(llm.requests[-1]["messages"])
        assert "I am allergic to peanuts" in after  # a new fact joins the set at once
        assert mochi in after
        url = stack.settings.store.url

    llm = FakeOpenAI(reply=companion)
    async with running_stack(tmp_path, llm=llm, **settings) as stack:  # the set is stored
        await _say(stack, "hello again")
        assert _facts_in(llm.requests[-1]["messages"]) == after
    async with running_stack(tmp_path, llm=llm, **settings) as stack:
        await _say(stack, "/forget all")
    assert await _count_facts(url) == 0


class _Held:
    """A hold for the fake model: extraction requests say they came (`asked`) and wait for
    `gate`; answers do not wait."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(self, messages: list[dict[str, Any]]) -> None:
        if messages[0]["content"] == EXTRACT_PROMPT:
            self.asked.set()
            await self.gate.wait()


async def test_the_next_message_does_not_wait_for_the_reading_and_forget_waits_for_it(
    tmp_path: Path,
) -> None:
    held = _Held()
    llm = FakeOpenAI(reply=companion, hold=held)
    async with running_stack(
        tmp_path, llm=llm, robots=_robots(), memory={"extract_every": 2}
    ) as stack:
        await _say(stack, "my name is Ana")
        await _say(stack, "my cat is called Mochi")  # a batch: its reading waits at the model
        await asyncio.wait_for(held.asked.wait(), 10)
        assert await _say(stack, "hello") == "ok"  # answered while the batch is being read
        assert await _say(stack, ASK) == "?"  # nothing learned yet
        assert len(_extractions(llm)) == 1

        mark = stack.emu.mark()
        stack.emu.user_send("alice", ROBOT, "/forget all")
        await asyncio.sleep(0.2)  # /forget all waits for the reading under way...
        assert stack.emu.messages(from_=ROBOT, to="alice", after=mark) == []
        held.gate.set()
        told = (await stack.emu.wait_message(from_=ROBOT, to="alice", after=mark)).text
        assert told.startswith("Done: I have forgotten everything I knew about you (2 facts)")
        await _read(stack)  # ...so that nothing it learned is left behind
        assert await _say(stack, "/memory") == NOTHING_REMEMBERED
        url = stack.settings.store.url
    assert await _count_facts(url) == 0


async def test_a_reading_cut_off_by_a_shutdown_is_read_again_after_the_restart(
    tmp_path: Path,
) -> None:
    held = _Held()
    llm = FakeOpenAI(reply=companion, hold=held)
    settings: dict[str, Any] = {
        "robots": _robots(),
        "memory": {"extract_every": 2},
        "server": {"shutdown_grace_s": 0.2},
    }
    async with running_stack(tmp_path, llm=llm, **settings) as stack:
        await _say(stack, "my name is Ana")
        await _say(stack, "my cat is called Mochi")
        await asyncio.wait_for(held.asked.wait(), 10)

    llm = FakeOpenAI(reply=companion)
    async with running_stack(tmp_path, llm=llm, **settings) as stack:
        await _say(stack, "I love jasmine tea")
        await _read(stack)
        [reading] = _extractions(llm)
        assert "alice: my name is Ana" in reading["messages"][1]["content"]  # read again
        known = "alice's name is Ana; alice has a cat called Mochi; alice loves jasmine tea"
        assert await _say(stack, ASK) == f"You told me: {known}"


async def test_another_deployment_on_postgresql_and_redis_recalls_what_one_learned(
    tmp_path: Path, scale: dict[str, Any]
) -> None:
    settings: dict[str, Any] = {
        "robots": _robots(),
        "memory": {"extract_every": 2, "budget_tokens": 40},
        **scale,
    }
    emu = stack_emulator()
    first_llm = FakeOpenAI(reply=companion)
    async with running_stack(tmp_path / "a", emu=emu, llm=first_llm, **settings) as first:
        for hobby in ("chess", "sailing", "pottery", "tango", "origami"):
            await first.services.engine._memory.keep(  # type: ignore[union-attr]
                Owner(ROBOT, "alice", ""), f"alice practises {hobby} every week", "learned"
            )
        await _say(first, "my name is Ana")
        await _say(first, "my cat is called Mochi")
        await _read(first)
        await _say(first, "hello")
        block = _facts_in(first_llm.requests[-1]["messages"])
    assert "alice has a cat called Mochi" in block and len(block) < 7  # past the budget

    second_llm = FakeOpenAI(reply=companion)
    async with running_stack(tmp_path / "b", emu=emu, llm=second_llm, **settings) as second:
        await _say(second, "hello again")
        assert _facts_in(second_llm.requests[-1]["messages"]) == block  # the same recalled set
        listed = await _say(second, "/memory")
        assert "1. alice practises chess every week" in listed and "Mochi" in listed
        await _say(second, "/forget all")
    assert await _count_facts(scale["store"]["url"]) == 0


async def test_of_two_deployments_only_one_reads_a_batch(
    tmp_path: Path, scale: dict[str, Any]
) -> None:
    settings: dict[str, Any] = {"robots": _robots(), "memory": {"extract_every": 2}, **scale}
    emu = stack_emulator()
    held = _Held()
    first_llm, second_llm = FakeOpenAI(reply=companion, hold=held), FakeOpenAI(reply=companion)
    async with (
        running_stack(tmp_path / "a", emu=emu, llm=first_llm, **settings) as first,
        running_stack(tmp_path / "b", emu=emu, llm=second_llm, **settings) as second,
    ):
        conv = Conversation(ROBOT, "c2c", "alice", "alice")
        reader = first.services.engine._memory
        other = second.services.engine._memory
        assert reader is not None and other is not None
        await first.services.store.history.add_turns(
            conv.key, "m1", [Turn("user", "my name is Ana", 4), Turn("assistant", "ok", 1)]
        )
        await first.services.store.history.add_turns(
            conv.key, "m2", [Turn("user", "my cat is called Mochi", 5), Turn("assistant", "ok", 1)]
        )
        reading = asyncio.create_task(reader.read(conv, overflowing=False))
        await asyncio.wait_for(held.asked.wait(), 10)  # the first is at the model with it
        assert await other.read(conv, overflowing=True) is None  # the second leaves it alone
        assert _extractions(second_llm) == []
        held.gate.set()
        assert await reading == 2
        assert [f.text for f in await other.known(conv)] == [
            "alice's name is Ana",
            "alice has a cat called Mochi",
        ]
        assert await other.read(conv, overflowing=True) is None  # nothing left unread
    assert _extractions(second_llm) == []
