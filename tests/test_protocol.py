"""Wire types: every element, the callback events, REST models, tolerance and errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from timbridge.errors import PayloadError
from timbridge.protocol import (
    ACK_OK,
    C2CAfterSendEvent,
    C2CMessageEvent,
    GroupAfterSendEvent,
    GroupMessageEvent,
    UnknownEvent,
    ack,
    parse_event,
    rest,
)
from timbridge.protocol import elements as el

# Reference §5.2 and §5.3, verbatim.
C2C_SAMPLE: dict[str, Any] = {
    "CallbackCommand": "Bot.OnC2CMessage",
    "From_Account": "user01",
    "To_Account": "@RBT#assistant",
    "MsgSeq": 48374,
    "MsgRandom": 2837546,
    "MsgTime": 1557481126,
    "MsgKey": "48374_2837546_1557481126",
    "MsgId": "144115233406643804-1727580296-4026038328",
    "OnlineOnlyFlag": 0,
    "SendMsgResult": 0,
    "ErrorInfo": "send msg succeed",
    "UnreadMsgNum": 1,
    "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "What is the weather like?"}}],
    "CloudCustomData": "",
    "EventTime": 1670574414123,
}
GROUP_SAMPLE: dict[str, Any] = {
    "CallbackCommand": "Bot.OnGroupMessage",
    "GroupId": "@TGS#2J4SZEAEL",
    "Type": "Public",
    "From_Account": "jared",
    "Operator_Account": "jared",
    "Random": 123456,
    "MsgSeq": 123,
    "MsgTime": 1490686222,
    "OnlineOnlyFlag": 0,
    "MsgBody": [
        {
            "MsgType": "TIMTextElem",
            "MsgContent": {"Text": "@@RBT#assistant summarize the last hour"},
        }
    ],
    "AtRobots_Account": ["@RBT#assistant"],
    "CloudCustomData": "",
    "EventTime": 1670574414123,
}

ELEMENTS: list[dict[str, Any]] = [
    {"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}},
    {"MsgType": "TIMLocationElem", "MsgContent": {"Desc": "x", "Latitude": 1.5, "Longitude": 2.5}},
    {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": "smile"}},
    {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "{}", "Desc": "d", "Ext": "e"}},
    {
        "MsgType": "TIMSoundElem",
        "MsgContent": {
            "Url": "https://a/s.mp3",
            "UUID": "u",
            "Size": 3,
            "Second": 2,
            "Download_Flag": 2,
        },
    },
    {
        "MsgType": "TIMImageElem",
        "MsgContent": {
            "UUID": "img",
            "ImageFormat": 1,
            "ImageInfoArray": [
                {"Type": 1, "Size": 9, "Width": 3, "Height": 4, "URL": "https://a/i"}
            ],
        },
    },
    {
        "MsgType": "TIMFileElem",
        "MsgContent": {
            "Url": "https://a/f",
            "UUID": "f",
            "FileSize": 5,
            "FileName": "f.txt",
            "Download_Flag": 2,
        },
    },
    {
        "MsgType": "TIMVideoFileElem",
        "MsgContent": {
            "VideoUrl": "https://a/v",
            "VideoUUID": "v",
            "VideoSize": 1,
            "VideoSecond": 2,
            "VideoFormat": "mp4",
            "VideoDownloadFlag": 2,
            "ThumbUrl": "https://a/t",
            "ThumbUUID": "t",
            "ThumbSize": 1,
            "ThumbWidth": 2,
            "ThumbHeight": 3,
            "ThumbFormat": "jpg",
            "ThumbDownloadFlag": 2,
        },
    },
    {
        "MsgType": "TIMRelayElem",
        "MsgContent": {
            "Title": "Chat history",
            "MsgNum": 1,
            "CompatibleText": "upgrade",
            "AbstractList": ["a: hi"],
            "MsgList": [
                {
                    "From_Account": "a",
                    "To_Account": "b",
                    "MsgSeq": 1,
                    "MsgRandom": 2,
                    "MsgTimeStamp": 3,
                    "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}],
                    "CloudCustomData": "",
                }
            ],
        },
    },
    {
        "MsgType": "TIMStreamElem",
        "MsgContent": {
            "CompatibleText": "upgrade",
            "StreamMsgID": "s1",
            "Chunks": [{"EventType": "data", "Index": 1, "Markdown": "part", "IsLast": False}],
        },
    },
]


@pytest.mark.parametrize("raw", ELEMENTS, ids=[e["MsgType"] for e in ELEMENTS])
def test_every_element_round_trips(raw: dict[str, Any]) -> None:
    event = parse_event(orjson.dumps({**C2C_SAMPLE, "MsgBody": [raw]}), "Bot.OnC2CMessage")
    assert isinstance(event, C2CMessageEvent)
    [element] = event.msg_body
    assert type(element).__name__ == raw["MsgType"].removeprefix("TIM")
    assert element.to_wire() == raw


def test_unknown_element_is_kept_not_dropped() -> None:
    raw = {"MsgType": "TIMFutureElem", "MsgContent": {"Hologram": [1, 2]}}
    event = parse_event(orjson.dumps({**C2C_SAMPLE, "MsgBody": [ELEMENTS[0], raw]}))
    assert isinstance(event, C2CMessageEvent)
    text, unknown = event.msg_body
    assert isinstance(text, el.TextElem)
    assert isinstance(unknown, el.UnknownElem)
    assert unknown.to_wire() == raw


def test_c2c_sample_parses_with_identity() -> None:
    event = parse_event(orjson.dumps(C2C_SAMPLE), "Bot.OnC2CMessage")
    assert isinstance(event, C2CMessageEvent)
    assert event.from_account == "user01"
    assert event.to_account == "@RBT#assistant"
    assert event.identity == "48374_2837546_1557481126"
    no_key = parse_event(orjson.dumps({**C2C_SAMPLE, "MsgKey": ""}))
    assert isinstance(no_key, C2CMessageEvent)
    assert no_key.identity == "user01|48374|2837546|1557481126"


def test_group_sample_parses_with_identity() -> None:
    event = parse_event(orjson.dumps(GROUP_SAMPLE), "Bot.OnGroupMessage")
    assert isinstance(event, GroupMessageEvent)
    assert event.at_robots_account == ("@RBT#assistant",)
    assert event.identity == "@TGS#2J4SZEAEL|123"
    topic = parse_event(orjson.dumps({**GROUP_SAMPLE, "TopicId": "t1"}))
    assert isinstance(topic, GroupMessageEvent)
    assert topic.identity == "@TGS#2J4SZEAEL|123|t1"


def test_after_send_callbacks_parse() -> None:
    c2c = parse_event(orjson.dumps({**C2C_SAMPLE, "CallbackCommand": "C2C.CallbackAfterSendMsg"}))
    assert isinstance(c2c, C2CAfterSendEvent)
    group = dict(GROUP_SAMPLE, CallbackCommand="Group.CallbackAfterSendMsg")
    del group["AtRobots_Account"]
    group["GroupAtInfo"] = [{"GroupAtAllFlag": 0, "GroupAt_Account": "@RBT#assistant"}]
    parsed = parse_event(orjson.dumps(group))
    assert isinstance(parsed, GroupAfterSendEvent)
    assert parsed.group_at_info[0].group_at_account == "@RBT#assistant"


def test_extra_fields_are_tolerated() -> None:
    event = parse_event(orjson.dumps({**C2C_SAMPLE, "BrandNewField": {"x": 1}}))
    assert isinstance(event, C2CMessageEvent)
    assert event.to_wire()["BrandNewField"] == {"x": 1}


def test_unknown_command_is_unknown_event() -> None:
    event = parse_event(b'{"CallbackCommand": "State.StateChange", "Info": {}}')
    assert isinstance(event, UnknownEvent)
    assert event.callback_command == "State.StateChange"
    by_query = parse_event(b"anything at all", "Group.CallbackAfterCreateGroup")
    assert isinstance(by_query, UnknownEvent)


@pytest.mark.parametrize(
    ("body", "command", "field", "fragment"),
    [
        (b"", "Bot.OnC2CMessage", "body", "not valid JSON"),
        (b"{nope", None, "body", "not valid JSON"),
        (b"\xff\xfe\xfd", "Bot.OnC2CMessage", "body", "not valid JSON"),
        (b"[1, 2]", None, "body", "JSON object"),
        (b'{"From_Account": "x"}', None, "CallbackCommand", "missing"),
        (orjson.dumps({**C2C_SAMPLE, "MsgSeq": "abc"}), "Bot.OnC2CMessage", "MsgSeq", "integer"),
        (orjson.dumps({**C2C_SAMPLE, "MsgBody": "hello"}), None, "MsgBody", "tuple"),
        (orjson.dumps({**C2C_SAMPLE, "From_Account": 5}), None, "From_Account", "string"),
        (orjson.dumps({**GROUP_SAMPLE, "AtRobots_Account": 3}), None, "AtRobots_Account", ""),
        (
            orjson.dumps(
                {**C2C_SAMPLE, "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": 7}}]}
            ),
            None,
            "MsgBody.0.MsgContent.Text",
            "string",
        ),
        (orjson.dumps(C2C_SAMPLE), "Bot.OnGroupMessage", "GroupId", "required"),
        (
            orjson.dumps(
                {
                    **GROUP_SAMPLE,
                    "CallbackCommand": "Group.CallbackAfterSendMsg",
                    "GroupAtInfo": [{"GroupAt_Account": 1}],
                }
            ),
            None,
            "GroupAtInfo.0.GroupAt_Account",
            "string",
        ),
        (b"[" * 5000 + b"]" * 5000, "Bot.OnC2CMessage", "body", ""),
    ],
)
def test_bad_payloads_name_the_field(
    body: bytes, command: str | None, field: str, fragment: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_event(body, command)
    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_typing_notice_is_recognised() -> None:
    data = '{"businessID":"user_typing_status","typingStatus":1}'
    typing = el.CustomElem(msg_content=el.CustomContent(data=data))
    assert typing.is_typing_notice
    assert not el.CustomElem(msg_content=el.CustomContent(data="not json")).is_typing_notice
    assert not el.CustomElem(msg_content=el.CustomContent(data="[1]")).is_typing_notice


def test_ack_bodies() -> None:
    assert orjson.loads(ACK_OK) == {"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}
    assert ack() is ACK_OK
    assert orjson.loads(ack(1, "bad sign")) == {
        "ActionStatus": "FAIL",
        "ErrorInfo": "bad sign",
        "ErrorCode": 1,
    }


def test_request_serialisation_uses_tencent_names_and_drops_unset() -> None:
    msg = rest.SendGroupMsg(
        group_id="@TGS#1",
        random=5,
        from_account="@RBT#a",
        msg_body=(el.TextElem.of("@jared hi"),),
        group_at_info=(rest.GroupAtInfo(group_at_account="jared"),),
    )
    assert orjson.loads(msg.to_json()) == {
        "GroupId": "@TGS#1",
        "Random": 5,
        "From_Account": "@RBT#a",
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "@jared hi"}}],
        "GroupAtInfo": [{"GroupAtAllFlag": 0, "GroupAt_Account": "jared"}],
    }


def test_requests_are_bound_to_commands_and_responses() -> None:
    requests = [
        cls
        for name in rest.__all__
        if isinstance(cls := getattr(rest, name), type)
        and issubclass(cls, rest.RestRequest)
        and cls is not rest.RestRequest
    ]
    assert len(requests) == 19
    commands = {cls.command for cls in requests}
    assert len(commands) == len(requests)
    for cls in requests:
        service, _, command = cls.command.partition("/")
        assert service and command
        assert issubclass(cls.response_type, rest.RestResponse)
    assert rest.SendC2CMsg.response_type is rest.SendC2CMsgResponse
    assert rest.AdminGetRoamMsg.response_type is rest.AdminGetRoamMsgResponse
    assert rest.GroupMsgRecall.response_type is rest.GroupMsgRecallResponse


def test_fail_envelope_parses_into_typed_response() -> None:
    parsed = rest.GetAllRobots().parse_response(
        b'{"ActionStatus":"FAIL","ErrorCode":10008,"ErrorInfo":"quota"}'
    )
    assert not parsed.ok
    assert parsed.robot_account == ()
    roam = rest.AdminGetRoamMsg(
        operator_account="u", peer_account="@RBT#a", max_cnt=2, min_time=0, max_time=9
    ).parse_response(
        orjson.dumps(
            {
                "ActionStatus": "OK",
                "ErrorCode": 0,
                "Complete": 0,
                "MsgCnt": 1,
                "MsgList": [
                    {
                        "From_Account": "u",
                        "To_Account": "@RBT#a",
                        "MsgKey": "k",
                        "MsgBody": [ELEMENTS[0]],
                    }
                ],
            }
        )
    )
    assert roam.msg_list[0].msg_key == "k"
    assert roam.complete == 0
