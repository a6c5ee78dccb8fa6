"""The REST client against a real HTTP server on loopback: signing, retries, limits, faults."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.conftest import ADMIN, SDKAPPID, SECRET_KEY
from tests.fakes.tencent import Answer, ScriptedTencent, fail, ok
from timbridge.errors import TencentAPIError, TencentTransportError
from timbridge.protocol import usersig
from timbridge.protocol.elements import TextElem
from timbridge.protocol.rest import (
    GetAllRobots,
    SendC2CMsg,
    SendGroupMsg,
)
from timbridge.tencent.client import RetryPolicy, TencentClient
from timbridge.tencent.limits import CallLimits
from timbridge.tencent.outbound import typing_notice

Fixture = tuple[ScriptedTencent, str]
MakeClient = Callable[..., TencentClient]


def _c2c(text: str = "hello") -> SendC2CMsg:
    return SendC2CMsg(
        from_account="@RBT#bot",
        to_account="user01",
        msg_random=123456,
        msg_seq=7,
        msg_body=(TextElem.of(text),),
    )


async def test_call_signs_url_and_returns_typed_response(
    scripted: Fixture, make_client: MakeClient
) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", ok(MsgTime=1700000000, MsgKey="7_123456_1700000000"))
    result = await make_client(base).call(_c2c())
    assert result.msg_key == "7_123456_1700000000"
    assert result.msg_time == 1700000000
    [call] = fake.received
    assert call.query["sdkappid"] == str(SDKAPPID)
    assert call.query["identifier"] == ADMIN
    assert call.query["contenttype"] == "json"
    assert 0 <= int(call.query["random"]) < 2**32
    sig = call.query["usersig"]
    info = usersig.verify(sig, sdkappid=SDKAPPID, key=SECRET_KEY, identifier=ADMIN)
    assert info.identifier == ADMIN
    assert call.body["From_Account"] == "@RBT#bot"
    assert call.body["MsgBody"] == [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello"}}]


async def test_empty_request_sends_empty_object(scripted: Fixture, make_client: MakeClient) -> None:
    fake, base = scripted
    fake.script("openim_robot_http_svc/get_all_robots", ok(Robot_Account=["@RBT#a", "@RBT#b"]))
    result = await make_client(base).call(GetAllRobots())
    assert result.robot_account == ("@RBT#a", "@RBT#b")
    assert fake.received[0].body == {}


@pytest.mark.parametrize("code", [60007, 60011, 60018, 60019, 60008, 10002, 20004, 20005])
async def test_transient_code_is_retried_with_same_body_and_new_random(
    scripted: Fixture, make_client: MakeClient, code: int
) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", fail(code), ok(MsgKey="k"))
    result = await make_client(base).call(_c2c())
    assert result.msg_key == "k"
    first, second = fake.calls("openim/sendmsg")
    assert first.body == second.body
    assert first.body["MsgRandom"] == 123456 and first.body["MsgSeq"] == 7
    assert first.query["random"] != second.query["random"]


async def test_permanent_code_raises_at_once(scripted: Fixture, make_client: MakeClient) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", fail(70107, "To_Account not imported"))
    with pytest.raises(TencentAPIError) as caught:
        await make_client(base).call(_c2c())
    assert caught.value.error_code == 70107
    assert caught.value.command == "openim/sendmsg"
    assert "To_Account not imported" in caught.value.error_info
    assert len(fake.received) == 1


async def test_transient_code_gives_up_after_attempts(
    scripted: Fixture, make_client: MakeClient
) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", *[fail(60007)] * 10)
    with pytest.raises(TencentAPIError) as caught:
        await make_client(base).call(_c2c())
    assert caught.value.error_code == 60007
    assert len(fake.received) == 4  # FAST_RETRY.attempts


async def test_expired_usersig_is_resigned_and_retried_once(
    scripted: Fixture, make_client: MakeClient
) -> None:
    fake, base = scripted
    ticks = iter(range(1_700_000_000, 1_800_000_000))  # every read of the clock is a new second
    signer = usersig.UserSigSigner(SDKAPPID, SECRET_KEY, clock=lambda: float(next(ticks)))
    fake.script("openim/sendmsg", fail(70001, "sig expired"), ok(MsgKey="k"))
    await make_client(base, signer=signer).call(_c2c())
    first, second = fake.calls("openim/sendmsg")
    assert first.query["usersig"] != second.query["usersig"]  # re-signed, not the cached sig
    assert first.body == second.body


async def test_expired_usersig_twice_raises(scripted: Fixture, make_client: MakeClient) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", fail(70001), fail(70001), ok())
    with pytest.raises(TencentAPIError) as caught:
        await make_client(base).call(_c2c())
    assert caught.value.error_code == 70001
    assert len(fake.received) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_http_5xx_and_429_are_retried(
    scripted: Fixture, make_client: MakeClient, status: int
) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", Answer(raw=b"<html>bad gateway</html>", status=status), ok())
    await make_client(base).call(_c2c())
    assert len(fake.received) == 2


async def test_http_404_is_permanent(scripted: Fixture, make_client: MakeClient) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", Answer(raw=b"nope", status=404))
    with pytest.raises(TencentTransportError) as caught:
        await make_client(base).call(_c2c())
    assert caught.value.status == 404
    assert not caught.value.transient
    assert len(fake.received) == 1


async def test_non_json_answer_is_retried_then_reported(
    scripted: Fixture, make_client: MakeClient
) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", *[Answer(raw=b"<html>proxy error</html>")] * 4)
    with pytest.raises(TencentTransportError) as caught:
        await make_client(base).call(_c2c())
    assert "not a Tencent JSON envelope" in str(caught.value)
    assert len(fake.received) == 4


async def test_timeout_is_retried(scripted: Fixture, make_client: MakeClient) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", Answer(json={"ActionStatus": "OK", "ErrorCode": 0}, delay_s=1.0))
    client = make_client(base, timeout_s=0.2)
    result = await client.call(_c2c())
    assert result.ok
    assert len(fake.received) == 2


async def test_dropped_connection_is_retried(scripted: Fixture, make_client: MakeClient) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", Answer(drop=True), ok(MsgKey="after-drop"))
    result = await make_client(base).call(_c2c())
    assert result.msg_key == "after-drop"


async def test_connection_refused_is_transport_error(make_client: MakeClient) -> None:
    client = make_client(
        "http://127.0.0.1:9", retry=RetryPolicy(attempts=2, wait_initial_s=0.001, wait_max_s=0.001)
    )
    with pytest.raises(TencentTransportError) as caught:
        await client.call(_c2c())
    assert caught.value.transient
    assert "connection failed" in str(caught.value)


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_answer_is_refused(
    scripted: Fixture, make_client: MakeClient, chunked: bool
) -> None:
    fake, base = scripted
    huge = b'{"ActionStatus":"OK","ErrorCode":0,"Pad":"' + b"x" * 300_000 + b'"}'
    fake.script("openim/sendmsg", Answer(raw=huge, chunked=chunked))
    with pytest.raises(TencentTransportError) as caught:
        await make_client(base, max_response_bytes=100_000).call(_c2c())
    assert "larger than 100000 bytes" in str(caught.value)
    assert len(fake.received) == 1


async def test_group_send_limiter_spaces_calls(scripted: Fixture, make_client: MakeClient) -> None:
    """A bucket of 5/s admits a burst of 5, then holds further sends to the same group back."""
    fake, base = scripted
    client = make_client(base, limits=CallLimits(per_api=1000, per_group=5))
    started = time.monotonic()
    for n in range(8):
        msg = SendGroupMsg(group_id="@TGS#g", random=n, msg_body=(TextElem.of("x"),))
        await client.call(msg)
    elapsed = time.monotonic() - started
    other = SendGroupMsg(group_id="@TGS#other", random=99, msg_body=(TextElem.of("x"),))
    other_started = time.monotonic()
    await client.call(other)
    assert len(fake.received) == 9
    # 3 sends past the burst at 5/s need about 0.6 s; another group is not held back.
    assert elapsed >= 0.45
    assert time.monotonic() - other_started < elapsed


async def test_typing_notice_is_online_only_custom_element(
    scripted: Fixture, make_client: MakeClient
) -> None:
    fake, base = scripted
    await make_client(base).call(typing_notice("@RBT#bot", "user01", msg_random=1))
    body = fake.received[0].body
    assert body["MsgLifeTime"] == 0
    assert body["SendMsgControl"] == ["NoUnread", "NoLastMsg"]
    assert body["OfflinePushInfo"] == {"PushFlag": 1}
    element = body["MsgBody"][0]
    assert element["MsgType"] == "TIMCustomElem"
    assert '"businessID":"user_typing_status"' in element["MsgContent"]["Data"]
    assert '"typingStatus":1' in element["MsgContent"]["Data"]
