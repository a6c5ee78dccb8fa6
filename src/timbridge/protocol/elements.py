"""Message elements: the items of a ``MsgBody`` array (protocol reference §4).

Each element is ``{"MsgType": "TIM…Elem", "MsgContent": {...}}``. Known types parse into their
model; any other type parses into `UnknownElem` with its content kept as raw data, so a new
element type from Tencent is carried through, never dropped and never fatal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import Discriminator, Field, Tag

from timbridge.protocol.base import WireModel

__all__ = [
    "TYPING_BUSINESS_ID",
    "CustomContent",
    "CustomElem",
    "Element",
    "FaceContent",
    "FaceElem",
    "FileContent",
    "FileElem",
    "ImageContent",
    "ImageElem",
    "ImageInfo",
    "LocationContent",
    "LocationElem",
    "MsgBody",
    "RelayContent",
    "RelayElem",
    "RelayMsg",
    "SoundContent",
    "SoundElem",
    "StreamChunk",
    "StreamContent",
    "StreamElem",
    "TextContent",
    "TextElem",
    "UnknownElem",
    "VideoFileContent",
    "VideoFileElem",
]

#: ``businessID`` of TUIKit's typing notice, a `CustomElem` (reference §3.5).
TYPING_BUSINESS_ID = "user_typing_status"


class TextContent(WireModel):
    text: str = ""


class TextElem(WireModel):
    msg_type: Literal["TIMTextElem"] = "TIMTextElem"
    msg_content: TextContent

    @classmethod
    def of(cls, text: str) -> TextElem:
        return cls(msg_content=TextContent(text=text))


class LocationContent(WireModel):
    desc: str = ""
    latitude: float = 0.0
    longitude: float = 0.0


class LocationElem(WireModel):
    msg_type: Literal["TIMLocationElem"] = "TIMLocationElem"
    msg_content: LocationContent


class FaceContent(WireModel):
    index: int = 0
    data: str = ""


class FaceElem(WireModel):
    msg_type: Literal["TIMFaceElem"] = "TIMFaceElem"
    msg_content: FaceContent


class CustomContent(WireModel):
    data: str = ""
    desc: str = ""
    ext: str = ""
    sound: str | None = None


class CustomElem(WireModel):
    msg_type: Literal["TIMCustomElem"] = "TIMCustomElem"
    msg_content: CustomContent

    @property
    def business_id(self) -> str | None:
        """``businessID`` from the ``Data`` JSON, when ``Data`` is a JSON object that has one."""
        try:
            data = orjson.loads(self.msg_content.data)
        except orjson.JSONDecodeError:
            return None
        value = data.get("businessID") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    @property
    def is_typing_notice(self) -> bool:
        return self.business_id == TYPING_BUSINESS_ID


class SoundContent(WireModel):
    url: str = ""
    uuid: str = Field(default="", alias="UUID")
    size: int = 0
    second: int = 0
    download_flag: int = Field(default=2, alias="Download_Flag")


class SoundElem(WireModel):
    msg_type: Literal["TIMSoundElem"] = "TIMSoundElem"
    msg_content: SoundContent


class ImageInfo(WireModel):
    type: int = 1
    size: int = 0
    width: int = 0
    height: int = 0
    url: str = Field(default="", alias="URL")


class ImageContent(WireModel):
    uuid: str = Field(default="", alias="UUID")
    image_format: int = 255
    image_info_array: tuple[ImageInfo, ...] = ()


class ImageElem(WireModel):
    msg_type: Literal["TIMImageElem"] = "TIMImageElem"
    msg_content: ImageContent


class FileContent(WireModel):
    url: str = ""
    uuid: str = Field(default="", alias="UUID")
    file_size: int = 0
    file_name: str = ""
    download_flag: int = Field(default=2, alias="Download_Flag")


class FileElem(WireModel):
    msg_type: Literal["TIMFileElem"] = "TIMFileElem"
    msg_content: FileContent


class VideoFileContent(WireModel):
    video_url: str = ""
    video_uuid: str = Field(default="", alias="VideoUUID")
    video_size: int = 0
    video_second: int = 0
    video_format: str = ""
    video_download_flag: int = 2
    thumb_url: str = ""
    thumb_uuid: str = Field(default="", alias="ThumbUUID")
    thumb_size: int = 0
    thumb_width: int = 0
    thumb_height: int = 0
    thumb_format: str = ""
    thumb_download_flag: int = 2


class VideoFileElem(WireModel):
    msg_type: Literal["TIMVideoFileElem"] = "TIMVideoFileElem"
    msg_content: VideoFileContent


class RelayMsg(WireModel):
    """One forwarded message inside a `RelayElem`."""

    from_account: str = Field(default="", alias="From_Account")
    to_account: str | None = Field(default=None, alias="To_Account")
    group_id: str | None = None
    msg_seq: int = 0
    msg_random: int = 0
    msg_time_stamp: int = 0
    msg_body: MsgBody = ()
    cloud_custom_data: str = ""


class RelayContent(WireModel):
    title: str = ""
    msg_num: int = 0
    compatible_text: str = ""
    abstract_list: tuple[str, ...] = ()
    msg_list: tuple[RelayMsg, ...] | None = None
    json_msg_key: str | None = None


class RelayElem(WireModel):
    msg_type: Literal["TIMRelayElem"] = "TIMRelayElem"
    msg_content: RelayContent


class StreamChunk(WireModel):
    """One piece of a stream message; `markdown` holds only the new text (a delta)."""

    event_type: str = "data"
    index: int
    markdown: str = ""
    is_last: bool = False


class StreamContent(WireModel):
    compatible_text: str = ""
    chunks: tuple[StreamChunk, ...] = ()
    stream_msg_id: str | None = Field(default=None, alias="StreamMsgID")


class StreamElem(WireModel):
    msg_type: Literal["TIMStreamElem"] = "TIMStreamElem"
    msg_content: StreamContent


class UnknownElem(WireModel):
    """An element type timbridge does not model; its content is kept as it came."""

    msg_type: str
    msg_content: dict[str, Any] = Field(default_factory=dict)


_KNOWN = frozenset(
    {
        "TIMTextElem",
        "TIMLocationElem",
        "TIMFaceElem",
        "TIMCustomElem",
        "TIMSoundElem",
        "TIMImageElem",
        "TIMFileElem",
        "TIMVideoFileElem",
        "TIMRelayElem",
        "TIMStreamElem",
    }
)


def _element_tag(value: Any) -> str:
    kind = value.get("MsgType") if isinstance(value, dict) else getattr(value, "msg_type", None)
    return kind if isinstance(kind, str) and kind in _KNOWN else "unknown"


Element = Annotated[
    Annotated[TextElem, Tag("TIMTextElem")]
    | Annotated[LocationElem, Tag("TIMLocationElem")]
    | Annotated[FaceElem, Tag("TIMFaceElem")]
    | Annotated[CustomElem, Tag("TIMCustomElem")]
    | Annotated[SoundElem, Tag("TIMSoundElem")]
    | Annotated[ImageElem, Tag("TIMImageElem")]
    | Annotated[FileElem, Tag("TIMFileElem")]
    | Annotated[VideoFileElem, Tag("TIMVideoFileElem")]
    | Annotated[RelayElem, Tag("TIMRelayElem")]
    | Annotated[StreamElem, Tag("TIMStreamElem")]
    | Annotated[UnknownElem, Tag("unknown")],
    Discriminator(_element_tag),
]
"""Any message element; unknown types become `UnknownElem`."""

MsgBody = tuple[Element, ...]
"""A ``MsgBody`` array."""

RelayMsg.model_rebuild()
