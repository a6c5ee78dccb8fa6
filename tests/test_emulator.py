"""The emulator, driven only through Tencent's public REST protocol (signed with Tencent's own
UserSig library) and observed through the webhooks it delivers to a receiver on loopback."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
import TLSSigAPIv2
from pytest_aiohttp import AiohttpServer

from tests.fakes.receiver import Receiver
from timbridge.emulator import Emulator, EmulatorConfig, Fault
from timbridge.emulator.guard import TOKEN_HEADER
from timbridge.errors import TencentAPIError
from timbridge.protocol import parse_event
from timbridge.protocol.callbacks import (
    C2CMessageEvent,
    C2CRecallEvent,
    GroupMessageEvent,
    GroupRecallEvent,
)
from timbridge.protocol.elements import TextElem
from timbridge.protocol.rest import SendC2CMsg
from timbridge.protocol.usersig import UserSigSigner
from timbridge.tencent.client import RetryPolicy, TencentClient
from timbridge.tencent.limits import CallLimits

APP = 1400000123
KEY = "emulator-test-secret"
TOKEN = "callback-token"
ADMIN = "administrator"

Call = Callable[..., Awaitable[dict[str, Any]]]


@dataclass
class Setup:
    emu: Emulator
    receiver: Receiver
    base: str
    call: Call
    http: aiohttp.ClientSession


def text(value: str) -> list[dict[str, Any]]:
    return [{"MsgType": "TIMTextElem", "MsgContent": {"Text": value}}]


@pytest.fixture
async def setup(aiohttp_server: AiohttpServer) -> AsyncIterator[Setup]:
    receiver = Receiver(token=TOKEN)
    hook_server = await aiohttp_server(receiver.app(), host="127.0.0.1", port=0)
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP,
            secret_key=KEY,
            admin=ADMIN,
            callback_url=str(hook_server.make_url("/im")),
            callback_token=TOKEN,
            robots=("@RBT#helper", "@RBT#other"),
            users=("alice", "bob"),
            webhook_backoff_s=0.01,
        )
    )
    server = await aiohttp_server(emu.create_app(), host="127.0.0.1", port=0)
    base = str(server.make_url("")).rstrip("/")
    signer = TLSSigAPIv2.TLSSigAPIv2(APP, KEY)
    admin_sig = signer.gen_sig(ADMIN)

    async with aiohttp.ClientSession(headers={TOKEN_HEADER: emu.token}) as http:

        async def call(
            command: str,
            body: Any,
            *,
            sig: str | None = None,
            sdkappid: int = APP,
            identifier: str = ADMIN,
            raw: bytes | None = None,
        ) -> dict[str, Any]:
            query = {
                "sdkappid": str(sdkappid),
                "identifier": identifier,
                "usersig": sig if sig is not None else admin_sig,
                "random": str(random.getrandbits(32)),
                "contenttype": "json",
            }
            data = raw if raw is not None else orjson.dumps(body)
            async with http.post(f"{base}/v4/{command}", params=query, data=data) as resp:
                assert resp.status == 200
                answer: dict[str, Any] = await resp.json(content_type=None)
                return answer

        yield Setup(emu, receiver, base, call, http)


async def test_c2c_message_to_robot_delivers_signed_webhook(setup: Setup) -> None:
    answer = await setup.call(
        "openim/sendmsg",
        {
            "From_Account": "alice",
            "To_Account": "@RBT#helper",
            "MsgSeq": 7,
            "MsgRandom": 99,
            "MsgBody": text("hello robot"),
        },
    )
    assert answer["ActionStatus"] == "OK" and answer["ErrorCode"] == 0
    assert answer["MsgKey"] == f"7_99_{answer['MsgTime']}"
    [hook] = await setup.receiver.wait(1)
    assert hook.sign_ok is True
    assert hook.query["SdkAppid"] == str(APP)
    assert hook.query["CallbackCommand"] == "Bot.OnC2CMessage"
    assert hook.query["contenttype"] == "json"
    assert hook.query["OptPlatform"] == "RESTAPI" and hook.query["ClientIP"]
    event = parse_event(orjson.dumps(hook.body), hook.query["CallbackCommand"])
    assert isinstance(event, C2CMessageEvent)
    assert (event.from_account, event.to_account) == ("alice", "@RBT#helper")
    assert (event.msg_seq, event.msg_random, event.msg_key) == (7, 99, answer["MsgKey"])
    assert event.msg_time == answer["MsgTime"]
    assert event.send_msg_result == 0 and event.online_only_flag == 0
    assert event.event_time >= event.msg_time * 1000
    for field in ("MsgId", "UnreadMsgNum", "ErrorInfo", "CloudCustomData"):
        assert field in hook.body


async def test_group_mention_delivers_bot_group_message(setup: Setup) -> None:
    created = await setup.call(
        "group_open_http_svc/create_group",
        {
            "Type": "Public",
            "Name": "team",
            "Owner_Account": "alice",
            "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "@RBT#helper"}],
        },
    )
    group = created["GroupId"]
    assert group.startswith("@TGS#")
    plain = await setup.call(
        "group_open_http_svc/send_group_msg",
        {
            "GroupId": group,
            "From_Account": "alice",
            "Random": 1,
            "MsgBody": text("no mention"),
        },
    )
    at_all = await setup.call(
        "group_open_http_svc/send_group_msg",
        {
            "GroupId": group,
            "From_Account": "alice",
            "Random": 2,
            "MsgBody": text("@all hi"),
            "GroupAtInfo": [{"GroupAtAllFlag": 1}],
        },
    )
    mentioned = await setup.call(
        "group_open_http_svc/send_group_msg",
        {
            "GroupId": group,
            "From_Account": "bob",
            "Random": 3,
            "MsgBody": text("@@RBT#helper @@RBT#other summarise"),
            "GroupAtInfo": [
                {"GroupAtAllFlag": 0, "GroupAt_Account": "@RBT#helper"},
                {"GroupAtAllFlag": 0, "GroupAt_Account": "@RBT#other"},
                {"GroupAtAllFlag": 0, "GroupAt_Account": "alice"},
            ],
        },
    )
    assert [plain["MsgSeq"], at_all["MsgSeq"], mentioned["MsgSeq"]] == [1, 2, 3]
    [hook] = await setup.receiver.wait(1)
    assert hook.sign_ok is True
    assert hook.query["CallbackCommand"] == "Bot.OnGroupMessage"
    event = parse_event(orjson.dumps(hook.body), "Bot.OnGroupMessage")
    assert isinstance(event, GroupMessageEvent)
    assert event.group_id == group and event.type == "Public"
    assert event.at_robots_account == ("@RBT#helper", "@RBT#other")
    assert (event.from_account, event.operator_account, event.random) == ("bob", "bob", 3)
    assert event.msg_seq == 3 and event.msg_time == mentioned["MsgTime"]
    await setup.emu.webhooks.idle()
    assert len(setup.receiver.hooks) == 1  # the unmentioned and @all messages delivered nothing


async def test_robot_senders_trigger_nothing(setup: Setup) -> None:
    await setup.call(
        "openim/sendmsg",
        {
            "From_Account": "@RBT#other",
            "To_Account": "@RBT#helper",
            "MsgRandom": 5,
            "MsgBody": text("bot to bot"),
        },
    )
    group = (
        await setup.call(
            "group_open_http_svc/create_group",
            {"Type": "Public", "Name": "g", "Owner_Account": "alice"},
        )
    )["GroupId"]
    await setup.call(
        "group_open_http_svc/send_group_msg",
        {
            "GroupId": group,
            "From_Account": "@RBT#other",
            "Random": 9,
            "MsgBody": text("hi"),
            "GroupAtInfo": [{"GroupAtAllFlag": 0, "GroupAt_Account": "@RBT#helper"}],
        },
    )
    await setup.call(
        "openim/sendmsg",
        {
            "From_Account": "alice",
            "To_Account": "bob",
            "MsgRandom": 6,
            "MsgBody": text("people only"),
        },
    )
    await setup.emu.webhooks.idle()
    assert setup.receiver.hooks == []
    assert len(setup.emu.world.messages) == 3


@pytest.mark.parametrize(
    ("sig_of", "kwargs", "code"),
    [
        (lambda: TLSSigAPIv2.TLSSigAPIv2(APP, "wrong-key").gen_sig(ADMIN), {}, 70009),
        (lambda: TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig(ADMIN, 1)[:-10], {}, 70003),
        (lambda: TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig("alice"), {}, 70013),
        (
            lambda: TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig("alice"),
            {"identifier": "alice"},
            60010,
        ),
        (lambda: TLSSigAPIv2.TLSSigAPIv2(APP + 1, KEY).gen_sig(ADMIN), {}, 70014),
        (lambda: TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig(ADMIN), {"sdkappid": 42}, 70020),
    ],
    ids=["wrong-key", "truncated", "other-user", "not-admin", "other-app", "unknown-app"],
)
async def test_bad_usersig_refused(
    setup: Setup, sig_of: Any, kwargs: dict[str, Any], code: int
) -> None:
    answer = await setup.call("openim_robot_http_svc/get_all_robots", {}, sig=sig_of(), **kwargs)
    assert answer["ActionStatus"] == "FAIL"
    assert answer["ErrorCode"] == code
    assert answer["ErrorInfo"]


async def test_expired_usersig_is_70001(setup: Setup) -> None:
    from timbridge.protocol import usersig

    old = usersig.sign(APP, KEY, ADMIN, expire=10, now=1_600_000_000)
    answer = await setup.call("openim_robot_http_svc/get_all_robots", {}, sig=old)
    assert answer["ErrorCode"] == 70001


async def test_13kb_message_refused_and_12kb_accepted(setup: Setup) -> None:
    big = await setup.call(
        "openim/sendmsg",
        {
            "From_Account": "alice",
            "To_Account": "bob",
            "MsgRandom": 1,
            "MsgBody": text("x" * 13 * 1024),
        },
    )
    assert big["ActionStatus"] == "FAIL" and big["ErrorCode"] != 0
    assert "too long" in big["ErrorInfo"]
    fits = await setup.call(
        "openim/sendmsg",
        {
            "From_Account": "alice",
            "To_Account": "bob",
            "MsgRandom": 2,
            "MsgBody": text("x" * 12000),
        },
    )
    assert fits["ErrorCode"] == 0
    group = (
        await setup.call(
            "group_open_http_svc/create_group",
            {"Type": "Public", "Name": "g", "Owner_Account": "alice"},
        )
    )["GroupId"]
    big_group = await setup.call(
        "group_open_http_svc/send_group_msg",
        {"GroupId": group, "From_Account": "alice", "Random": 1, "MsgBody": text("y" * 13 * 1024)},
    )
    assert big_group["ErrorCode"] != 0


@pytest.mark.parametrize(
    ("command", "body", "code"),
    [
        ("openim/sendmsg", None, 60003),
        ("openim/sendmsg", b"{not json", 60003),
        ("openim/sendmsg", b"[1]", 60003),
        ("openim/sendmsg", {"To_Account": "bob", "MsgBody": text("x")}, 10004),
        (
            "openim/sendmsg",
            {"From_Account": "alice", "To_Account": "bob", "MsgRandom": 1, "MsgBody": "hello"},
            90002,
        ),
        (
            "openim/sendmsg",
            {"From_Account": "alice", "To_Account": "bob", "MsgRandom": 1, "MsgBody": []},
            90002,
        ),
        (
            "openim/sendmsg",
            {"From_Account": "alice", "To_Account": "ghost", "MsgRandom": 1, "MsgBody": text("x")},
            70107,
        ),
        ("openim/nosuchcommand", {}, 60009),
        (
            "group_open_http_svc/send_group_msg",
            {"GroupId": "@TGS#missing", "Random": 1, "MsgBody": text("x")},
            10010,
        ),
        (
            "group_open_http_svc/send_group_msg",
            {"GroupId": "g" * 60, "Random": 1, "MsgBody": text("x")},
            10015,
        ),
        ("openim_robot_http_svc/create_robot", {"UserID": "no-prefix"}, 10004),
    ],
)
async def test_bad_requests_get_tencent_codes(
    setup: Setup, command: str, body: Any, code: int
) -> None:
    raw = b"" if body is None else body if isinstance(body, bytes) else None
    answer = await setup.call(command, body, raw=raw)
    assert answer["ActionStatus"] == "FAIL"
    assert answer["ErrorCode"] == code, answer


async def test_c2c_dedupe_same_seq_random_content(setup: Setup) -> None:
    body = {
        "From_Account": "@RBT#helper",
        "To_Account": "alice",
        "MsgSeq": 5,
        "MsgRandom": 77,
        "MsgBody": text("once"),
    }
    first = await setup.call("openim/sendmsg", body)
    second = await setup.call("openim/sendmsg", body)
    changed = await setup.call("openim/sendmsg", {**body, "MsgBody": text("different")})
    assert first["MsgKey"] == second["MsgKey"]
    assert changed["ErrorCode"] == 0
    assert [m.text for m in setup.emu.world.conversation("alice", "@RBT#helper")] == [
        "once",
        "different",
    ]


async def test_group_dedupe_same_random_content(setup: Setup) -> None:
    group = (
        await setup.call(
            "group_open_http_svc/create_group",
            {"Type": "Public", "Name": "g", "Owner_Account": "alice", "GroupId": "custom-1"},
        )
    )["GroupId"]
    assert group == "custom-1"
    taken = await setup.call(
        "group_open_http_svc/create_group", {"Type": "Public", "Name": "g", "GroupId": "custom-1"}
    )
    assert taken["ErrorCode"] == 10021
    body = {"GroupId": group, "From_Account": "alice", "Random": 3, "MsgBody": text("hi")}
    first = await setup.call("group_open_http_svc/send_group_msg", body)
    again = await setup.call("group_open_http_svc/send_group_msg", body)
    assert first["MsgSeq"] == again["MsgSeq"] == 1
    assert len(setup.emu.world.groups[group].messages) == 1


async def test_modified_and_streamed_messages_visible_in_roam(setup: Setup) -> None:
    sent = await setup.call(
        "openim/sendmsg",
        {
            "From_Account": "@RBT#helper",
            "To_Account": "alice",
            "MsgRandom": 1,
            "MsgBody": text("Thinking…"),
        },
    )
    modified = await setup.call(
        "openim/modify_c2c_msg",
        {
            "From_Account": "@RBT#helper",
            "To_Account": "alice",
            "MsgKey": sent["MsgKey"],
            "MsgBody": text("The answer is 42."),
        },
    )
    assert modified["ErrorCode"] == 0

    def stream_body(index: int, piece: str, last: bool, stream_id: str | None) -> dict[str, Any]:
        content: dict[str, Any] = {
            "CompatibleText": "upgrade to see this",
            "Chunks": [{"EventType": "data", "Index": index, "Markdown": piece, "IsLast": last}],
        }
        if stream_id:
            content["StreamMsgID"] = stream_id
        return {
            "From_Account": "@RBT#helper",
            "To_Account": "alice",
            "MsgRandom": 2,
            "MsgBody": [{"MsgType": "TIMStreamElem", "MsgContent": content}],
        }

    first = await setup.call("stream_msg/send_c2c_stream_msg", stream_body(1, "Hel", False, None))
    stream_id = first["StreamMsgID"]
    assert stream_id
    # out of order: chunk 3 before chunk 2; the history assembles them by Index
    await setup.call("stream_msg/send_c2c_stream_msg", stream_body(3, "!", True, stream_id))
    await setup.call("stream_msg/send_c2c_stream_msg", stream_body(2, "lo", False, stream_id))
    ended = await setup.call(
        "stream_msg/send_c2c_stream_msg", stream_body(4, "late", True, stream_id)
    )
    assert ended["ErrorCode"] != 0  # IsLast was sent: the stream has ended
    roam = await setup.call(
        "openim/admin_getroammsg",
        {
            "Operator_Account": "alice",
            "Peer_Account": "@RBT#helper",
            "MaxCnt": 10,
            "MinTime": 0,
            "MaxTime": 2**31,
        },
    )
    assert roam["Complete"] == 1 and roam["MsgCnt"] == 2
    edited, streamed = roam["MsgList"]
    assert edited["MsgKey"] == sent["MsgKey"]
    assert edited["MsgBody"] == text("The answer is 42.")
    chunks = streamed["MsgBody"][0]["MsgContent"]["Chunks"]
    assert "".join(c["Markdown"] for c in chunks) == "Hello!"
    assert chunks[-1]["IsLast"] is True


async def test_roam_pages_newest_first_oldest_inside(setup: Setup) -> None:
    for n in range(5):
        await setup.call(
            "openim/sendmsg",
            {
                "From_Account": "alice",
                "To_Account": "bob",
                "MsgRandom": n,
                "MsgBody": text(f"m{n}"),
            },
        )
    first = await setup.call(
        "openim/admin_getroammsg",
        {
            "Operator_Account": "alice",
            "Peer_Account": "bob",
            "MaxCnt": 2,
            "MinTime": 0,
            "MaxTime": 2**31,
        },
    )
    assert first["Complete"] == 0
    assert [m["MsgBody"][0]["MsgContent"]["Text"] for m in first["MsgList"]] == ["m3", "m4"]
    second = await setup.call(
        "openim/admin_getroammsg",
        {
            "From_Account": "alice",
            "To_Account": "bob",
            "MaxCnt": 2,
            "MinTime": 0,
            "MaxTime": first["LastMsgTime"],
            "LastMsgKey": first["LastMsgKey"],
        },
    )
    assert [m["MsgBody"][0]["MsgContent"]["Text"] for m in second["MsgList"]] == ["m1", "m2"]


async def test_group_history_and_modify(setup: Setup) -> None:
    group = (
        await setup.call(
            "group_open_http_svc/create_group",
            {"Type": "Work", "Name": "g", "Owner_Account": "alice"},
        )
    )["GroupId"]
    added = await setup.call(
        "group_open_http_svc/add_group_member",
        {
            "GroupId": group,
            "MemberList": [
                {"Member_Account": "@RBT#helper"},
                {"Member_Account": "alice"},
                {"Member_Account": "ghost"},
            ],
        },
    )
    assert [m["Result"] for m in added["MemberList"]] == [1, 2, 0]
    for n in range(3):
        await setup.call(
            "group_open_http_svc/send_group_msg",
            {
                "GroupId": group,
                "From_Account": "@RBT#helper",
                "Random": n,
                "MsgBody": text(f"g{n}"),
            },
        )
    await setup.call(
        "openim/modify_group_msg", {"GroupId": group, "MsgSeq": 2, "MsgBody": text("edited")}
    )
    history = await setup.call(
        "group_open_http_svc/group_msg_get_simple", {"GroupId": group, "ReqMsgNumber": 2}
    )
    assert [m["MsgSeq"] for m in history["RspMsgList"]] == [3, 2]
    assert history["RspMsgList"][1]["MsgBody"] == text("edited")
    assert history["IsFinished"] == 0


async def test_robots_api(setup: Setup) -> None:
    listed = await setup.call("openim_robot_http_svc/get_all_robots", {})
    assert set(listed["Robot_Account"]) == {"@RBT#helper", "@RBT#other"}
    await setup.call("openim_robot_http_svc/create_robot", {"UserID": "@RBT#new", "Nick": "N"})
    await setup.call("openim_robot_http_svc/create_robot", {"UserID": "@RBT#new", "Nick": "N"})
    await setup.call("openim_robot_http_svc/delete_robot", {"Robot_Account": "@RBT#other"})
    listed = await setup.call("openim_robot_http_svc/get_all_robots", {})
    assert sorted(listed["Robot_Account"]) == ["@RBT#helper", "@RBT#new"]
    for n in range(18):
        await setup.call("openim_robot_http_svc/create_robot", {"UserID": f"@RBT#r{n}"})
    over = await setup.call("openim_robot_http_svc/create_robot", {"UserID": "@RBT#one-too-many"})
    assert over["ErrorCode"] == 10008


async def test_webhook_retried_after_failure(setup: Setup) -> None:
    setup.receiver.statuses.extend([500, 502])
    setup.emu.user_send("alice", "@RBT#helper", "retry me")
    hooks = await setup.receiver.wait(3)
    assert [h.body["MsgBody"] for h in hooks] == [text("retry me")] * 3
    await setup.emu.webhooks.idle()
    assert setup.emu.webhooks.log[0].delivered


async def test_webhooks_of_one_conversation_arrive_in_order(setup: Setup) -> None:
    setup.receiver.statuses.extend([500])  # the first one is retried; the rest must wait for it
    for n in range(10):
        setup.emu.user_send("alice", "@RBT#helper", f"m{n}")
        setup.emu.user_send("bob", "@RBT#helper", f"b{n}")
    await setup.receiver.wait(21)
    alice = [
        h.body["MsgBody"][0]["MsgContent"]["Text"]
        for h in setup.receiver.hooks
        if h.body["From_Account"] == "alice"
    ]
    assert alice == ["m0"] + [f"m{n}" for n in range(10)]


async def test_duplicate_webhook_fault(setup: Setup) -> None:
    async with setup.http.post(
        f"{setup.base}/emulator/faults", json={"duplicate_webhooks": 3, "times": 1}
    ) as resp:
        assert resp.status == 200
    setup.emu.user_send("alice", "@RBT#helper", "dup")
    setup.emu.user_send("alice", "@RBT#helper", "single")
    hooks = await setup.receiver.wait(5)
    assert [h.body["MsgBody"][0]["MsgContent"]["Text"] for h in hooks] == ["dup"] * 4 + ["single"]
    assert len({h.body["MsgKey"] for h in hooks[:4]}) == 1


async def test_error_code_fault_for_next_n_calls(setup: Setup) -> None:
    async with setup.http.post(
        f"{setup.base}/emulator/faults",
        json={"command": "openim/sendmsg", "error_code": 60007, "times": 2},
    ) as resp:
        assert resp.status == 200
    body = {"From_Account": "alice", "To_Account": "bob", "MsgRandom": 1, "MsgBody": text("x")}
    codes = [(await setup.call("openim/sendmsg", body))["ErrorCode"] for _ in range(3)]
    assert codes == [60007, 60007, 0]


async def test_http_and_drop_faults(setup: Setup) -> None:
    await setup.http.post(
        f"{setup.base}/emulator/faults", json={"command": "*", "http_status": 503, "times": 1}
    )
    async with setup.http.post(f"{setup.base}/v4/openim/sendmsg", data=b"{}") as resp:
        assert resp.status == 503
    await setup.http.post(
        f"{setup.base}/emulator/faults", json={"command": "openim/sendmsg", "drop": True}
    )
    with pytest.raises(aiohttp.ClientError):
        await setup.call("openim/sendmsg", {})
    bad = await setup.http.post(f"{setup.base}/emulator/faults", json={"command": ""})
    assert bad.status == 400 and (await bad.json())["error"] == "bad_fault"


async def test_rate_limit_answers_60007(aiohttp_server: AiohttpServer) -> None:
    emu = Emulator(EmulatorConfig(sdkappid=APP, secret_key=KEY, per_api_limit=3))
    server = await aiohttp_server(emu.create_app(), host="127.0.0.1", port=0)
    sig = TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig(ADMIN)
    codes = []
    async with aiohttp.ClientSession() as http:
        for _ in range(6):
            async with http.post(
                server.make_url("/v4/openim_robot_http_svc/get_all_robots"),
                params={
                    "sdkappid": APP,
                    "identifier": ADMIN,
                    "usersig": sig,
                    "random": 1,
                    "contenttype": "json",
                },
                data=b"{}",
            ) as r:
                codes.append((await r.json())["ErrorCode"])
    assert codes.count(60007) >= 2 and codes[0] == 0


async def test_timbridge_client_retries_through_emulator_faults(setup: Setup) -> None:
    from tests.conftest import FAST_RETRY
    from timbridge.protocol.elements import TextElem
    from timbridge.protocol.rest import SendC2CMsg
    from timbridge.protocol.usersig import UserSigSigner
    from timbridge.tencent.client import TencentClient

    setup.emu.faults.add(
        "openim/sendmsg",
        Fault(error_code=60007, times=1),
    )
    client = TencentClient(
        setup.http,
        base_url=setup.base,
        sdkappid=APP,
        admin=ADMIN,
        signer=UserSigSigner(APP, KEY),
        retry=FAST_RETRY,
    )
    result = await client.call(
        SendC2CMsg(
            from_account="@RBT#helper",
            to_account="alice",
            msg_random=4,
            msg_body=(TextElem.of("hi"),),
        )
    )
    assert result.ok
    [stored] = setup.emu.messages(from_="@RBT#helper")
    assert stored.key == result.msg_key


async def test_a_client_held_to_the_limit_is_never_refused_for_frequency(
    aiohttp_server: AiohttpServer,
) -> None:
    """Tencent counts calls per second. A client held to 40 calls/s sends 90 at once: none is
    refused (60007), as one would be if its bucket let a second's worth through at once and
    refilled as many within the same second."""
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP,
            secret_key=KEY,
            admin=ADMIN,
            robots=("@RBT#helper",),
            users=("alice",),
            per_api_limit=40,
        )
    )
    server = await aiohttp_server(emu.create_app(), host="127.0.0.1", port=0)
    async with aiohttp.ClientSession(headers={TOKEN_HEADER: emu.token}) as http:
        client = TencentClient(
            http,
            base_url=str(server.make_url("")).rstrip("/"),
            sdkappid=APP,
            admin=ADMIN,
            signer=UserSigSigner(APP, KEY),
            retry=RetryPolicy(attempts=1),  # a refusal would show, not be retried away
            limits=CallLimits(per_api=40),
        )
        sends = [
            SendC2CMsg(
                from_account="@RBT#helper",
                to_account="alice",
                msg_random=n,
                msg_body=(TextElem.of(f"{n}"),),
            )
            for n in range(90)
        ]
        results = await asyncio.gather(*map(client.call, sends), return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(emu.messages(from_="@RBT#helper")) == 90


async def test_typing_notice_is_not_stored(setup: Setup) -> None:
    from timbridge.tencent.outbound import typing_notice

    notice = typing_notice("@RBT#helper", "alice", msg_random=1)
    answer = await setup.call("openim/sendmsg", orjson.loads(notice.to_json()))
    assert answer["ErrorCode"] == 0
    assert setup.emu.world.conversation("alice", "@RBT#helper") == []


async def test_waiters_await_messages(setup: Setup) -> None:
    mark = setup.emu.mark()
    setup.emu.user_send("alice", "bob", "one")
    setup.emu.user_send("alice", "bob", "two")
    [one, two] = await setup.emu.wait_messages(2, from_="alice", to="bob", after=mark)
    assert (one.text, two.text) == ("one", "two")
    with pytest.raises(TimeoutError):
        await setup.emu.wait_message(from_="bob", limit_s=0.2)


async def test_stream_ends_after_15s_gap(aiohttp_server: AiohttpServer) -> None:
    now = [1_700_000_000.0]
    emu = Emulator(
        EmulatorConfig(
            sdkappid=APP,
            secret_key=KEY,
            robots=("@RBT#helper",),
            users=("alice",),
            clock=lambda: now[0],
        )
    )
    element = {
        "MsgType": "TIMStreamElem",
        "MsgContent": {
            "CompatibleText": "c",
            "Chunks": [{"Index": 1, "Markdown": "a", "IsLast": False}],
        },
    }
    message = emu.world.stream_chunk(
        kind="c2c",
        from_account="@RBT#helper",
        to_account="alice",
        group_id=None,
        element=element,
        msg_random=1,
    )
    assert message.stream is not None
    stream_id = message.stream.stream_id
    later = {
        "MsgType": "TIMStreamElem",
        "MsgContent": {
            "StreamMsgID": stream_id,
            "Chunks": [{"Index": 2, "Markdown": "b", "IsLast": False}],
        },
    }
    now[0] += 14.9
    emu.world.stream_chunk(
        kind="c2c",
        from_account="@RBT#helper",
        to_account="alice",
        group_id=None,
        element=later,
        msg_random=1,
    )
    now[0] += 15.1
    emu.world.end_stale_streams()
    assert message.stream.finished
    from timbridge.errors import TencentAPIError

    with pytest.raises(TencentAPIError, match="stream has ended"):
        emu.world.stream_chunk(
            kind="c2c",
            from_account="@RBT#helper",
            to_account="alice",
            group_id=None,
            element={**later, "MsgContent": {**later["MsgContent"], "Chunks": [{"Index": 3}]}},
            msg_random=1,
        )
    assert message.text == "ab"


async def test_robot_send_stream_msg_appends_text(setup: Setup) -> None:
    first = await setup.call(
        "openim_robot_http_svc/send_stream_msg",
        {"From_Account": "@RBT#helper", "To_Account": "alice", "Chunk": "Hello, "},
    )
    done = await setup.call(
        "openim_robot_http_svc/send_stream_msg",
        {
            "From_Account": "@RBT#helper",
            "To_Account": "alice",
            "Chunk": "world",
            "MsgKey": first["MsgKey"],
            "Finish": 1,
        },
    )
    assert done["MsgKey"] == first["MsgKey"]
    [message] = setup.emu.world.conversation("alice", "@RBT#helper")
    assert message.text == "Hello, world"
    late = await setup.call(
        "openim_robot_http_svc/send_stream_msg",
        {
            "From_Account": "@RBT#helper",
            "To_Account": "alice",
            "Chunk": "!",
            "MsgKey": first["MsgKey"],
        },
    )
    assert late["ErrorCode"] != 0


async def test_admin_msgwithdraw_recalls_and_delivers_the_withdraw_callback(setup: Setup) -> None:
    sent = await setup.call(
        "openim/sendmsg",
        {
            "From_Account": "alice",
            "To_Account": "@RBT#helper",
            "MsgRandom": 5,
            "MsgBody": text("oops"),
        },
    )
    await setup.receiver.wait(1)
    body = {"From_Account": "alice", "To_Account": "@RBT#helper", "MsgKey": sent["MsgKey"]}
    answer = await setup.call("openim/admin_msgwithdraw", body)
    assert answer["ErrorCode"] == 0
    _, hook = await setup.receiver.wait(2)
    assert hook.query["CallbackCommand"] == "C2C.CallbackAfterMsgWithDraw"
    assert hook.body | {"UnreadMsgNum": 0} == {
        "CallbackCommand": "C2C.CallbackAfterMsgWithDraw",
        **body,
        "UnreadMsgNum": 0,
    }
    event = parse_event(orjson.dumps(hook.body), hook.query["CallbackCommand"])
    assert isinstance(event, C2CRecallEvent) and event.identities == (sent["MsgKey"],)
    # recalled messages stay listed in the roaming history, flagged (MsgFlagBits 8)
    roam = await setup.call(
        "openim/admin_getroammsg",
        {
            "Operator_Account": "alice",
            "Peer_Account": "@RBT#helper",
            "MaxCnt": 10,
            "MinTime": 0,
            "MaxTime": 2**31,
        },
    )
    assert [m["MsgFlagBits"] for m in roam["MsgList"]] == [8]
    again = await setup.call("openim/admin_msgwithdraw", body)
    assert again["ErrorCode"] == 10004 and "already recalled" in again["ErrorInfo"]


async def test_group_msg_recall_answers_per_message_and_delivers_the_recall_callback(
    setup: Setup,
) -> None:
    group = setup.emu.world.create_group(
        type="Public", name="G", owner="alice", group_id="g1", members=["bob", "@RBT#helper"]
    )
    message = setup.emu.user_send_group("bob", group.group_id, "@helper hi", ("@RBT#helper",))
    await setup.receiver.wait(1)
    answer = await setup.call(
        "group_open_http_svc/group_msg_recall",
        {"GroupId": "g1", "MsgSeqList": [{"MsgSeq": message.msg_seq}, {"MsgSeq": 999}]},
    )
    assert answer["RecallRetList"] == [
        {"MsgSeq": message.msg_seq, "RetCode": 0},
        {"MsgSeq": 999, "RetCode": 10004},
    ]
    _, hook = await setup.receiver.wait(2)
    event = parse_event(orjson.dumps(hook.body), hook.query["CallbackCommand"])
    assert isinstance(event, GroupRecallEvent)
    assert event.operator_account == ADMIN and event.identities == (f"g1|{message.msg_seq}",)
    history = await setup.call(
        "group_open_http_svc/group_msg_get_simple", {"GroupId": "g1", "ReqMsgNumber": 5}
    )
    assert [(m["IsPlaceMsg"], m["MsgBody"]) for m in history["RspMsgList"]] == [(2, [])]


async def test_a_user_recalls_only_their_own_recent_messages(setup: Setup) -> None:
    world = setup.emu.world
    mine = setup.emu.user_send("alice", "bob", "hi")
    with pytest.raises(TencentAPIError, match="only the sender"):
        world.user_recall("bob", mine.id)
    group = world.create_group(type="Work", name="G", owner="alice", group_id="g2", members=["bob"])
    bobs = setup.emu.user_send_group("bob", group.group_id, "in the group")
    world.user_recall("alice", bobs.id)  # the owner may recall anyone's group message
    assert bobs.recalled
    late = setup.emu.user_send("alice", "bob", "old news")
    late.time -= 121  # past the two-minute recall period
    with pytest.raises(TencentAPIError) as caught:
        world.user_recall("alice", late.id)
    assert caught.value.error_code == 20016
    world.user_recall("alice", mine.id)
    with pytest.raises(TencentAPIError, match="no message"):
        world.user_recall("alice", mine.id)
