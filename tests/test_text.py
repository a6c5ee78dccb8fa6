"""What the robot reads of a message (`bot.text`), and which messages are commands
(`bot.commands`)."""

from __future__ import annotations

import orjson
import pytest

from tests.test_protocol import C2C_SAMPLE
from timbridge.bot.commands import parse_command
from timbridge.bot.text import extract_text, strip_mentions
from timbridge.protocol import parse_event
from timbridge.protocol.callbacks import C2CMessageEvent


def test_extract_text_describes_other_elements() -> None:
    body = [
        {"MsgType": "TIMTextElem", "MsgContent": {"Text": "look"}},
        {"MsgType": "TIMImageElem", "MsgContent": {"UUID": "x"}},
        {"MsgType": "TIMFileElem", "MsgContent": {"FileName": "a.pdf"}},
        {"MsgType": "TIMHoloElem", "MsgContent": {}},
    ]
    event = parse_event(orjson.dumps({**C2C_SAMPLE, "MsgBody": body}))
    assert isinstance(event, C2CMessageEvent)
    assert extract_text(event.msg_body) == "look [image] [file: a.pdf] [holo]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@@RBT#helper hello", "hello"),
        ("@Helper  @bob what now?", "what now?"),
        ("\uff20Helper full-width", "full-width"),
        ("no mention @here", "no mention @here"),
        ("@@RBT#helper", ""),
    ],
)
def test_strip_mentions(text: str, expected: str) -> None:
    assert strip_mentions(text) == expected


def test_commands() -> None:
    assert parse_command("/help").name == "/help"  # type: ignore[union-attr]
    assert parse_command("/RESET please").name == "/reset"  # type: ignore[union-attr]
    assert parse_command("/etc/hosts is a file") is None
    assert parse_command("hello /help") is None
    unknown = parse_command("/nope")
    assert unknown is not None and not unknown.known
