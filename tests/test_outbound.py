"""The one door replies go out by: what each builder puts on the wire, per kind of chat."""

from __future__ import annotations

from timbridge.protocol.elements import StreamChunk, StreamContent
from timbridge.tencent.outbound import (
    Destination,
    Part,
    addressed,
    modify_message,
    stream_message,
    text_message,
)

C2C = Destination("@RBT#bot", "c2c", "alice", "alice")
GROUP = Destination("@RBT#bot", "group", "@TGS#1", "bob", topic="@TGS#1@TOPIC#t")
PART = Part("alice|123", 0)


def test_c2c_text_is_sent_to_the_user_with_the_parts_nonces_and_no_mention() -> None:
    wire = text_message(C2C, PART, "hi", mention=True).to_wire()
    assert wire["From_Account"] == "@RBT#bot"
    assert wire["To_Account"] == "alice"
    assert wire["MsgBody"][0]["MsgContent"]["Text"] == "hi"
    assert wire["MsgRandom"] == PART.nonce("@RBT#bot")
    assert wire["MsgSeq"] == PART.seq("@RBT#bot")
    assert "GroupAtInfo" not in wire


def test_group_text_mentions_the_asker_in_text_and_at_info_only_when_asked() -> None:
    wire = text_message(GROUP, PART, "hi", mention=True).to_wire()
    assert wire["GroupId"] == "@TGS#1"
    assert wire["TopicId"] == "@TGS#1@TOPIC#t"
    assert wire["MsgBody"][0]["MsgContent"]["Text"] == "@bob hi"
    assert [a["GroupAt_Account"] for a in wire["GroupAtInfo"]] == ["bob"]
    later = text_message(GROUP, Part("alice|123", 1), "more", mention=False).to_wire()
    assert later["MsgBody"][0]["MsgContent"]["Text"] == "more"
    assert "GroupAtInfo" not in later
    assert later["Random"] != wire["Random"]


def test_an_edit_keeps_the_mention_the_message_was_sent_with() -> None:
    group = modify_message(GROUP, "42", "longer", mention=True).to_wire()
    assert group["MsgSeq"] == 42
    assert group["MsgBody"][0]["MsgContent"]["Text"] == "@bob longer"
    c2c = modify_message(C2C, "key-1", "longer", mention=True).to_wire()
    assert c2c["MsgKey"] == "key-1"
    assert c2c["MsgBody"][0]["MsgContent"]["Text"] == "longer"


def test_stream_messages_go_to_the_same_chat_as_text() -> None:
    content = StreamContent(
        compatible_text="x", chunks=(StreamChunk(index=1, markdown="a", is_last=True),)
    )
    assert stream_message(C2C, PART, content).to_wire()["To_Account"] == "alice"
    assert stream_message(GROUP, PART, content).to_wire()["GroupId"] == "@TGS#1"
    assert addressed(GROUP, "a") == "@bob a"
    assert addressed(C2C, "a") == "a"
