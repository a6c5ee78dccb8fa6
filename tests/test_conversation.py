"""Conversation keys (`bot.conversation`) and the derived numbers of reply parts
(`tencent.outbound`)."""

from __future__ import annotations

import orjson

from tests.test_protocol import C2C_SAMPLE, GROUP_SAMPLE
from timbridge.bot.conversation import Conversation
from timbridge.protocol import parse_event
from timbridge.protocol.callbacks import C2CMessageEvent, GroupMessageEvent
from timbridge.tencent.outbound import derive_random, derive_seq


def test_conversation_keys() -> None:
    c2c = parse_event(orjson.dumps(C2C_SAMPLE))
    group = parse_event(orjson.dumps({**GROUP_SAMPLE, "TopicId": "t"}))
    assert isinstance(c2c, C2CMessageEvent) and isinstance(group, GroupMessageEvent)
    assert Conversation.of("@RBT#a", c2c, member_scoped=False).key == "c2c:@RBT#a:user01"
    assert Conversation.of("@RBT#a", group, member_scoped=False).key == (
        "group:@RBT#a:@TGS#2J4SZEAEL:t"
    )
    assert Conversation.of("@RBT#a", group, member_scoped=True).key == (
        "group:@RBT#a:@TGS#2J4SZEAEL:t:jared"
    )


def test_derived_numbers_are_stable_and_distinct() -> None:
    assert derive_random("@RBT#a", "k", 0) == derive_random("@RBT#a", "k", 0)
    values = {derive_random("@RBT#a", "k", n) for n in range(100)}
    assert len(values) == 100
    assert all(0 <= v < 2**32 for v in values)
    assert derive_random("@RBT#a", "k", 0) != derive_random("@RBT#b", "k", 0)
    assert all(0 <= derive_seq("@RBT#a", "k", n) < 2**31 for n in range(100))
