"""What the robot reads: the text of an inbound message, with @-mention tokens stripped."""

from __future__ import annotations

import re
from collections.abc import Iterable

from timbridge.printable import printable
from timbridge.protocol.callbacks import GroupAfterSendEvent, GroupMessageEvent, MessageEvent
from timbridge.protocol.elements import (
    CustomElem,
    Element,
    FaceElem,
    FileElem,
    ImageElem,
    LocationElem,
    RelayElem,
    SoundElem,
    StreamElem,
    TextElem,
    VideoFileElem,
)

__all__ = ["extract_text", "message_text", "strip_mentions"]

# "@name" (or full-width) at the start or after a space; robot IDs begin with "@" themselves.
_LEADING_MENTIONS = re.compile("^(?:\\s*[@\\uff20][@\\uff20]?[^\\s@\\uff20]+)+\\s*")


def _describe(element: Element) -> str:
    match element:
        case TextElem():
            return element.msg_content.text
        case ImageElem():
            return "[image]"
        case SoundElem():
            return "[voice message]"
        case FileElem():
            return f"[file: {element.msg_content.file_name or 'unnamed'}]"
        case VideoFileElem():
            return "[video]"
        case LocationElem():
            return f"[location: {element.msg_content.desc}]".replace(": ]", "]")
        case FaceElem():
            return "[sticker]"
        case RelayElem():
            return f"[forwarded messages: {element.msg_content.title}]"
        case StreamElem():
            chunks = sorted(element.msg_content.chunks, key=lambda c: c.index)
            return "".join(c.markdown for c in chunks)
        case CustomElem():
            return element.msg_content.desc or ""
        case _:
            return f"[{element.msg_type.removeprefix('TIM').removesuffix('Elem').lower()}]"


def extract_text(body: Iterable[Element]) -> str:
    """All text elements joined; other elements described briefly (``[image]``); without what
    a store cannot keep or a client should not show (`printable`)."""
    parts = [printable(_describe(element)) for element in body]
    return " ".join(p for p in (part.strip() for part in parts) if p)


def strip_mentions(text: str) -> str:
    """Remove the leading ``@robot`` / ``@@RBT#id`` tokens a group message starts with."""
    return _LEADING_MENTIONS.sub("", text, count=1).strip()


def message_text(event: MessageEvent) -> str:
    """What the robot reads of `event`: its text, without the leading @-mentions in groups."""
    text = extract_text(event.msg_body)
    if isinstance(event, GroupMessageEvent | GroupAfterSendEvent):
        text = strip_mentions(text)
    return text
