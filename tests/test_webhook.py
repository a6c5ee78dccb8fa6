"""The webhook under bad input: every refusal says what is wrong, with the right status, never a
5xx; nothing reaches the model; the server keeps answering afterwards."""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.stack import APP, TOKEN, Stack, running_stack
from tests.test_protocol import C2C_SAMPLE, GROUP_SAMPLE
from timbridge.emulator import Fault
from timbridge.protocol.callbacks import callback_sign

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as running:
        yield running


def signed(
    command: str = "Bot.OnC2CMessage",
    *,
    app: int = APP,
    token: str = TOKEN,
    at: int | None = None,
    **extra: str,
) -> dict[str, str]:
    request_time = str(int(time.time()) if at is None else at)
    query = {
        "SdkAppid": str(app),
        "CallbackCommand": command,
        "contenttype": "json",
        "ClientIP": "127.0.0.1",
        "OptPlatform": "RESTAPI",
        "RequestTime": request_time,
        "Sign": callback_sign(token, request_time),
    }
    return query | extra


def c2c(text: str = "hi", **fields: Any) -> dict[str, Any]:
    body = {
        **C2C_SAMPLE,
        "To_Account": "@RBT#helper",
        "From_Account": "alice",
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
    }
    body["MsgKey"] = f"{body['MsgSeq']}_{time.monotonic_ns()}_{body['MsgTime']}"
    return body | fields


async def post(
    stack: Stack, query: dict[str, str], body: bytes | Any
) -> tuple[int, dict[str, Any]]:
    data = io.BytesIO(body) if isinstance(body, bytes) and len(body) > 1_000_000 else body
    async with (
        aiohttp.ClientSession() as http,
        http.post(stack.webhook_url, params=query, data=data) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


async def test_chunked_oversized_body_is_413(stack: Stack) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    status, answer = await post(stack, signed(), chunks())
    assert status == 413
    assert answer["ErrorInfo"].startswith("too_large: ")
    await assert_still_serving(stack)


async def test_a_gzipped_body_small_on_the_wire_but_over_the_cap_inflated_is_413(
    stack: Stack,
) -> None:
    body = gzip.compress(orjson.dumps(c2c("x" * 2_000_000)))  # 2 MB inflated, ~10 KB sent
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            stack.webhook_url,
            params=signed(),
            data=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        ) as resp,
    ):
        status, answer = resp.status, orjson.loads(await resp.read())
    assert len(body) < stack.settings.server.max_body_bytes < 2_000_000
    assert status == 413
    assert answer["ErrorInfo"].startswith("too_large: ")
    assert stack.llm.requests == []
    await assert_still_serving(stack)


async def assert_still_serving(stack: Stack) -> None:
    status, answer = await post(stack, signed(), orjson.dumps(c2c("still there?")))
    assert (status, answer["ErrorCode"]) == (200, 0)
    reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    assert reply.text == "echo: still there?"


async def test_valid_webhook_is_acked_ok(stack: Stack) -> None:
    status, answer = await post(stack, signed(), orjson.dumps(c2c()))
    assert status == 200
    assert answer == {"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}


# Queries are built when the test runs, not when it is collected: a signature made at
# collection time could be over 60 s old by then and fail as stale instead.
@pytest.mark.parametrize(
    ("make_query", "status", "code"),
    [
        (lambda: signed(token="forged-token"), 401, "bad_sign"),
        (lambda: signed(at=int(time.time()) - 3600), 401, "stale_request"),
        (lambda: signed(at=int(time.time()) + 3600), 401, "stale_request"),
        (lambda: {k: v for k, v in signed().items() if k != "Sign"}, 401, "missing_sign"),
        (lambda: signed(RequestTime="yesterday"), 401, "bad_request_time"),
        (lambda: signed(app=1400000001), 403, "foreign_sdkappid"),
        (lambda: {k: v for k, v in signed().items() if k != "SdkAppid"}, 400, "missing_sdkappid"),
    ],
    ids=["forged", "stale", "future", "no-sign", "bad-time", "foreign-app", "no-app"],
)
async def test_refused_requests(
    stack: Stack, make_query: Callable[[], dict[str, str]], status: int, code: str
) -> None:
    query = make_query()
    got, answer = await post(stack, query, orjson.dumps(c2c()))
    assert got == status
    assert answer["ActionStatus"] == "FAIL"
    assert answer["ErrorInfo"].startswith(code + ": ")
    assert TOKEN not in answer["ErrorInfo"]
    assert stack.llm.requests == []
    await assert_still_serving(stack)


def _nested(depth: int) -> bytes:
    return b'{"CallbackCommand":"Bot.OnC2CMessage","x":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"", 400, "not valid JSON"),
        (b"this is not json", 400, "not valid JSON"),
        (b"\xff\xfe\x00garbage", 400, "not valid JSON"),
        (orjson.dumps(c2c())[:-1] + b"\xff}", 400, "not valid JSON"),
        (b"[1, 2, 3]", 400, "body"),
        (orjson.dumps(c2c(MsgSeq="abc")), 400, "MsgSeq"),
        (orjson.dumps(c2c(MsgBody="hello")), 400, "MsgBody"),
        (
            orjson.dumps({k: v for k, v in c2c().items() if k != "From_Account"}),
            400,
            "From_Account",
        ),
        (_nested(100_000), 400, ""),
        (orjson.dumps(c2c(MsgBody=[{"MsgType": ["TIMTextElem"]}])), 400, "MsgType"),
        (orjson.dumps(c2c(From_Account="a" * 65)), 400, "From_Account"),
        (orjson.dumps(c2c(From_Account="ali\u0000ce")), 400, "From_Account"),
        (orjson.dumps(c2c(MsgKey="k" * 129)), 400, "MsgKey"),
        (orjson.dumps(c2c(MsgSeq=2**63)), 400, "MsgSeq"),
        (orjson.dumps(c2c(MsgBody=[{"MsgType": {"a": 1}, "MsgContent": {}}])), 400, "MsgType"),
        (b'{"a": "' + b"x" * (8 * 1024 * 1024) + b'"}', 413, "too_large"),
    ],
    ids=[
        "empty",
        "not-json",
        "binary",
        "bad-utf8",
        "array",
        "wrong-type",
        "body-string",
        "missing-field",
        "deep-nesting",
        "msgtype-array",
        "long-account",
        "nul-account",
        "long-msgkey",
        "huge-seq",
        "msgtype-object",
        "8MiB",
    ],
)
async def test_malformed_bodies(stack: Stack, body: bytes, status: int, fragment: str) -> None:
    got, answer = await post(stack, signed(), body)
    assert got == status
    assert answer["ActionStatus"] == "FAIL" and answer["ErrorCode"] == status
    assert fragment in answer["ErrorInfo"]
    assert stack.llm.requests == []
    await assert_still_serving(stack)


@pytest.mark.parametrize(
    ("command", "body", "reason"),
    [
        ("Bot.OnC2CMessage", c2c(From_Account="@RBT#other"), "robot_sender"),
        ("Bot.OnC2CMessage", c2c(From_Account="administrator"), "admin_sender"),
        ("Bot.OnC2CMessage", c2c(OnlineOnlyFlag=1), "online_only"),
        ("Bot.OnC2CMessage", c2c(To_Account="@RBT#stranger"), "unconfigured_robot"),
        ("Bot.OnC2CMessage", c2c(SendMsgResult=1), "send_failed"),
        (
            "Bot.OnC2CMessage",
            c2c(
                MsgBody=[
                    {
                        "MsgType": "TIMCustomElem",
                        "MsgContent": {
                            "Data": '{"businessID":"user_typing_status","typingStatus":1}'
                        },
                    }
                ]
            ),
            "typing_notice",
        ),
        ("Bot.OnGroupMessage", {**GROUP_SAMPLE, "AtRobots_Account": []}, "no_mention"),
        (
            "Bot.OnGroupMessage",
            {**GROUP_SAMPLE, "AtRobots_Account": ["@RBT#stranger"]},
            "unconfigured_robot",
        ),
    ],
)
async def test_gated_events_are_acked_and_dropped(
    stack: Stack, command: str, body: dict[str, Any], reason: str
) -> None:
    got, answer = await post(stack, signed(command), orjson.dumps(body))
    assert (got, answer["ErrorCode"]) == (200, 0)
    metrics = stack.services.metrics.render().decode()
    assert f'outcome="dropped_{reason}"' in metrics
    assert stack.llm.requests == []


async def test_unknown_command_is_acked_and_ignored(stack: Stack) -> None:
    got, answer = await post(stack, signed("State.StateChange"), b'{"Info": {}}')
    assert (got, answer["ErrorCode"]) == (200, 0)
    assert 'outcome="ignored"' in stack.services.metrics.render().decode()


async def test_made_up_commands_share_one_metrics_label(stack: Stack) -> None:
    """The command label is the sender's to choose: unknown ones, signed or forged, count as
    "other" instead of each growing the metrics by a series."""
    for n in range(50):
        await post(stack, signed(f"Made.Up{n}"), b"{}")
        await post(stack, signed(f"Forged.{n}", token="wrong"), b"{}")
    metrics = stack.services.metrics.render().decode()
    assert "Made.Up" not in metrics and "Forged." not in metrics
    assert 'timbridge_webhooks_total{command="other",outcome="ignored"} 50.0' in metrics
    assert 'timbridge_webhooks_total{command="other",outcome="bad_sign"} 50.0' in metrics


async def test_duplicate_delivery_acked_once_answered(stack: Stack) -> None:
    body = orjson.dumps(c2c("only once"))
    for _ in range(4):
        status, answer = await post(stack, signed(), body)
        assert (status, answer["ErrorCode"]) == (200, 0)
    await stack.emu.wait_message(from_="@RBT#helper", to="alice")
    await stack.services.coordination.idle()  # type: ignore[attr-defined]
    assert len(stack.llm.requests) == 1
    assert 'outcome="duplicate"} 3.0' in stack.services.metrics.render().decode()


async def test_health_ready_metrics(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        base = stack.webhook_url.removesuffix("/im")
        async with http.get(base + "/healthz") as resp:
            assert resp.status == 200
        async with http.get(base + "/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ready"
        async with http.get(base + "/metrics") as resp:
            text = await resp.text()
            assert "timbridge_webhooks_total" in text and "timbridge_queue_depth" in text
        stack.emu.faults.add(
            "openim_robot_http_svc/get_all_robots",
            Fault(error_code=70009, times=-1),
        )
        problems = await stack.services.check_ready(fresh=True)
        assert any("70009" in p for p in problems)
        async with http.get(base + "/readyz") as resp:  # the cached verdict, for 30 s
            assert resp.status == 503
            assert (await resp.json())["problems"] == problems


@pytest.mark.parametrize(
    ("command", "body", "status", "fragment"),
    [
        (
            "C2C.CallbackAfterMsgWithDraw",
            {"From_Account": "alice", "To_Account": "@RBT#helper"},
            400,
            "MsgKey",
        ),
        (
            "C2C.CallbackAfterMsgWithDraw",
            {"From_Account": "alice", "To_Account": "@RBT#helper", "MsgKey": ""},
            400,
            "MsgKey",
        ),
        ("Group.CallbackAfterRecallMsg", {"GroupId": "g1", "MsgSeqList": []}, 400, "MsgSeqList"),
        (
            "Group.CallbackAfterRecallMsg",
            {"GroupId": "g1", "MsgSeqList": [{"MsgSeq": "x"}]},
            400,
            "MsgSeqList.0.MsgSeq",
        ),
    ],
)
async def test_malformed_recalls_are_refused_naming_the_field(
    stack: Stack, command: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    got, answer = await post(stack, signed(command), orjson.dumps(body))
    assert got == status and answer["ActionStatus"] == "FAIL"
    assert fragment in answer["ErrorInfo"]


async def test_recalls_are_noted_and_a_recall_between_people_is_ignored(stack: Stack) -> None:
    group = {  # Tencent's examples send EventTime as a string as well as a number
        "GroupId": "g1",
        "Operator_Account": "bob",
        "MsgSeqList": [{"MsgSeq": 130, "MsgId": "144115213033478435-1739361321-2512805311"}],
        "EventTime": "1670574414123",
    }
    got, answer = await post(stack, signed("Group.CallbackAfterRecallMsg"), orjson.dumps(group))
    assert (got, answer["ErrorCode"]) == (200, 0)
    people = {"From_Account": "alice", "To_Account": "bob", "MsgKey": "1_2_3"}
    got, answer = await post(stack, signed("C2C.CallbackAfterMsgWithDraw"), orjson.dumps(people))
    assert (got, answer["ErrorCode"]) == (200, 0)
    metrics = stack.services.metrics.render().decode()
    assert 'command="Group.CallbackAfterRecallMsg",outcome="recalled"} 1.0' in metrics
    assert 'command="C2C.CallbackAfterMsgWithDraw",outcome="ignored"} 1.0' in metrics
    noted = await stack.services.coordination.notes(["recall:g1|130", "recall:1_2_3"])
    assert noted == ["1", None]
