"""The emulator's REST API at ``/v4/{service}/{command}``, with Tencent's URL rules and codes.

Order of checks, as Tencent answers them: injected faults, ``sdkappid`` (60012 missing, 70020
unknown), UserSig (70003 unreadable, 70014 / 70013 other app / user, 70001 expired, 70009 bad
key), admin identity (60010), call frequency (60007), body (60003 empty or not JSON, 10004 bad
field, 90002 bad ``MsgBody``), then the command's own rules (see `World`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from timbridge.emulator.faults import Faults
from timbridge.emulator.world import Message, World
from timbridge.errors import TencentAPIError, UserSigError, UserSigProblem
from timbridge.protocol import rest
from timbridge.protocol.base import payload_error
from timbridge.protocol.usersig import verify

__all__ = ["RestAPI"]

Handler = Callable[[Any], Awaitable[dict[str, Any]]]

_SIG_CODES = {
    UserSigProblem.MALFORMED: 70003,
    UserSigProblem.OTHER_APP: 70014,
    UserSigProblem.OTHER_USER: 70013,
    UserSigProblem.EXPIRED: 70001,
    UserSigProblem.BAD_SIGNATURE: 70009,
}


def _envelope(code: int = 0, info: str = "", **extra: Any) -> web.Response:
    body = {"ActionStatus": "OK" if code == 0 else "FAIL", "ErrorCode": code, "ErrorInfo": info}
    return web.Response(body=orjson.dumps(body | extra), content_type="application/json")


def _elements(body: tuple[Any, ...] | None) -> list[dict[str, Any]]:
    return [element.to_wire() for element in body or ()]


class _Frequency:
    """Calls per command in the current second, against a per-second limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._second = 0
        self._counts: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._counts = second, {}
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count <= self.limit


class RestAPI:
    """Serves Tencent's REST calls against a `World`."""

    def __init__(
        self,
        world: World,
        faults: Faults,
        *,
        sdkappid: int,
        secret_key: str,
        per_api_limit: int = 200,
        per_group_limit: int = 40,
    ) -> None:
        self.world = world
        self.faults = faults
        self.sdkappid = sdkappid
        self._key = secret_key
        self._api_rate = _Frequency(per_api_limit)
        self._group_rate = _Frequency(per_group_limit)
        self._verified: dict[str, tuple[str, float]] = {}
        self.calls: dict[str, int] = {}
        table: list[tuple[type[rest.RestRequest[Any]], Handler]] = [
            (rest.AccountImport, self._account_import),
            (rest.MultiAccountImport, self._multiaccount_import),
            (rest.CreateRobot, self._create_robot),
            (rest.DeleteRobot, self._delete_robot),
            (rest.GetAllRobots, self._get_all_robots),
            (rest.SendC2CMsg, self._sendmsg),
            (rest.SendGroupMsg, self._send_group_msg),
            (rest.ModifyC2CMsg, self._modify_c2c),
            (rest.ModifyGroupMsg, self._modify_group),
            (rest.AdminMsgWithdraw, self._withdraw),
            (rest.DeskTransferToHuman, self._transfer),
            (rest.GroupMsgRecall, self._group_recall),
            (rest.SendC2CStreamMsg, self._c2c_stream),
            (rest.SendGroupStreamMsg, self._group_stream),
            (rest.RobotSendStreamMsg, self._robot_stream),
            (rest.CreateGroup, self._create_group),
            (rest.AddGroupMember, self._add_group_member),
            (rest.AdminGetRoamMsg, self._roam),
            (rest.GroupMsgGetSimple, self._group_history),
        ]
        self._handlers = {cls.command: (cls, handler) for cls, handler in table}

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v4/{service}/{command}", self.handle)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        command = f"{request.match_info['service']}/{request.match_info['command']}"
        self.calls[command] = self.calls.get(command, 0) + 1
        refused = await self._inject(command, request) or self._authenticate(request.query)
        if refused is not None:
            return refused
        if not self._api_rate.allow(command):
            return _envelope(60007, f"{command}: REST call frequency over the limit")
        entry = self._handlers.get(command)
        if entry is None:
            return _envelope(60009, f"unknown service or command: {command}")
        model, handler = entry
        try:
            parsed = model.model_validate(self._body(command, await request.read()))
            return _envelope(**await handler(parsed))
        except ValidationError as exc:
            problem = payload_error(exc)
            code = 90002 if problem.field.startswith("MsgBody") else 10004
            return _envelope(code, f"invalid parameter: {problem}")
        except TencentAPIError as exc:
            return _envelope(exc.error_code, exc.error_info)

    async def _inject(self, command: str, request: web.Request) -> web.Response | None:
        fault = self.faults.take(command)
        if fault is None:
            return None
        if fault.latency_s:
            await asyncio.sleep(fault.latency_s)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        if fault.http_status is not None:
            return web.Response(status=fault.http_status, text="injected HTTP failure")
        if fault.error_code is not None:
            return _envelope(fault.error_code, fault.error_info)
        return None

    @staticmethod
    def _body(command: str, raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            raise TencentAPIError(60003, "request body must be a JSON object, not empty", command)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise TencentAPIError(
                60003, f"request body is not valid JSON: {exc}", command
            ) from None
        if not isinstance(data, dict):
            raise TencentAPIError(60003, "request body must be a JSON object", command)
        if command == rest.AdminGetRoamMsg.command:  # legacy names (reference §8.4)
            data.setdefault("Operator_Account", data.get("From_Account"))
            data.setdefault("Peer_Account", data.get("To_Account"))
        return data

    def _authenticate(self, query: Any) -> web.Response | None:
        try:
            sdkappid = int(query.get("sdkappid", ""))
        except ValueError:
            return _envelope(60012, "sdkappid missing or not a number in the URL")
        if sdkappid != self.sdkappid:
            return _envelope(70020, f"SDKAppID {sdkappid} not found")
        identifier = query.get("identifier", "")
        usersig = query.get("usersig", "")
        cached = self._verified.get(usersig)
        if cached is None or cached[0] != identifier or cached[1] < time.time():
            try:
                info = verify(usersig, sdkappid=sdkappid, key=self._key, identifier=identifier)
            except UserSigError as exc:
                return _envelope(_SIG_CODES[exc.problem], f"UserSig {exc}")
            if len(self._verified) > 1024:
                self._verified.clear()
            self._verified[usersig] = (identifier, float(info.expires_at))
        if identifier != self.world.admin:
            return _envelope(60010, f"{identifier!r} is not the app admin")
        return None

    # --- accounts and robots --------------------------------------------------------------

    async def _account_import(self, req: rest.AccountImport) -> dict[str, Any]:
        self.world.import_account(req.user_id, req.nick, req.face_url)
        return {}

    async def _multiaccount_import(self, req: rest.MultiAccountImport) -> dict[str, Any]:
        if len(req.account_list) > 100:
            raise TencentAPIError(70402, "at most 100 accounts per call", "multiaccount_import")
        failed = []
        for account in req.account_list:
            try:
                self.world.import_account(account.user_id, account.nick, account.face_url)
            except TencentAPIError:
                failed.append(account.user_id)
        return {"FailAccounts": failed}

    async def _create_robot(self, req: rest.CreateRobot) -> dict[str, Any]:
        self.world.create_robot(req.user_id, req.nick, req.face_url)
        return {}

    async def _delete_robot(self, req: rest.DeleteRobot) -> dict[str, Any]:
        self.world.delete_robot(req.robot_account)
        return {}

    async def _get_all_robots(self, req: rest.GetAllRobots) -> dict[str, Any]:
        return {"Robot_Account": self.world.robots()}

    # --- messages -------------------------------------------------------------------------

    async def _sendmsg(self, req: rest.SendC2CMsg) -> dict[str, Any]:
        online_only = req.msg_life_time == 0 or req.online_only_flag == 1
        message, _ = self.world.send_c2c(
            from_account=req.from_account or self.world.admin,
            to_account=req.to_account,
            body=_elements(req.msg_body),
            msg_random=req.msg_random,
            msg_seq=req.msg_seq,
            cloud_custom_data=req.cloud_custom_data or "",
            online_only=online_only,
        )
        return {"MsgTime": message.time, "MsgKey": message.key}

    async def _send_group_msg(self, req: rest.SendGroupMsg) -> dict[str, Any]:
        if not self._group_rate.allow(req.group_id):
            raise TencentAPIError(60007, "group message frequency over 40/s", req.command)
        at = [(a.group_at_account, a.group_at_all_flag == 1) for a in req.group_at_info or ()]
        message, _ = self.world.send_group(
            group_id=req.group_id,
            from_account=req.from_account or self.world.admin,
            body=_elements(req.msg_body),
            random_value=req.random,
            at=at,
            topic_id=req.topic_id,
            cloud_custom_data=req.cloud_custom_data or "",
            online_only=req.online_only_flag == 1,
        )
        return {"MsgTime": message.time, "MsgSeq": message.msg_seq}

    async def _modify_c2c(self, req: rest.ModifyC2CMsg) -> dict[str, Any]:
        body = _elements(req.msg_body) if req.msg_body is not None else None
        self.world.modify_c2c(
            req.from_account, req.to_account, req.msg_key, body, req.cloud_custom_data
        )
        return {}

    async def _modify_group(self, req: rest.ModifyGroupMsg) -> dict[str, Any]:
        body = _elements(req.msg_body) if req.msg_body is not None else None
        self.world.modify_group(req.group_id, req.msg_seq, body, req.cloud_custom_data)
        return {}

    async def _transfer(self, req: rest.DeskTransferToHuman) -> dict[str, Any]:
        self.world.transfer_to_human(req.session_id, req.agent_group_id)
        return {"AgentId": "agent@desk.example", "IsInQueue": 0}

    async def _withdraw(self, req: rest.AdminMsgWithdraw) -> dict[str, Any]:
        self.world.recall_c2c(req.from_account, req.to_account, req.msg_key, self.world.admin)
        return {}

    async def _group_recall(self, req: rest.GroupMsgRecall) -> dict[str, Any]:
        seqs = [item.msg_seq for item in req.msg_seq_list]
        results = self.world.recall_group(req.group_id, seqs, self.world.admin)
        return {"RecallRetList": [{"MsgSeq": seq, "RetCode": code} for seq, code in results]}

    @staticmethod
    def _stream_element(body: tuple[Any, ...]) -> dict[str, Any]:
        elements = _elements(body)
        if len(elements) != 1 or elements[0].get("MsgType") != "TIMStreamElem":
            raise TencentAPIError(90002, "MsgBody must be one TIMStreamElem", "stream_msg")
        return elements[0]

    @staticmethod
    def _stream_reply(message: Message) -> dict[str, Any]:
        assert message.stream is not None
        return {
            "StreamMsgID": message.stream.stream_id,
            "MsgKey": message.key,
            "MsgSeq": message.msg_seq,
            "MsgTime": message.time,
        }

    async def _c2c_stream(self, req: rest.SendC2CStreamMsg) -> dict[str, Any]:
        message = self.world.stream_chunk(
            kind="c2c",
            from_account=req.from_account,
            to_account=req.to_account,
            group_id=None,
            element=self._stream_element(req.msg_body),
            msg_random=req.msg_random,
            msg_seq=req.msg_seq,
        )
        return self._stream_reply(message)

    async def _group_stream(self, req: rest.SendGroupStreamMsg) -> dict[str, Any]:
        message = self.world.stream_chunk(
            kind="group",
            from_account=req.from_account,
            to_account=None,
            group_id=req.group_id,
            element=self._stream_element(req.msg_body),
            msg_random=req.msg_random,
            topic_id=req.topic_id,
        )
        return self._stream_reply(message)

    async def _robot_stream(self, req: rest.RobotSendStreamMsg) -> dict[str, Any]:
        message = self.world.robot_stream(
            from_account=req.from_account,
            to_account=req.to_account,
            chunk=req.chunk,
            msg_key=req.msg_key,
            finish=bool(req.finish),
        )
        return {"MsgKey": message.key}

    # --- groups and history ---------------------------------------------------------------

    async def _create_group(self, req: rest.CreateGroup) -> dict[str, Any]:
        group = self.world.create_group(
            type=req.type,
            name=req.name,
            owner=req.owner_account,
            group_id=req.group_id,
            members=[m.member_account for m in req.member_list or ()],
        )
        return {"GroupId": group.group_id}

    async def _add_group_member(self, req: rest.AddGroupMember) -> dict[str, Any]:
        if len(req.member_list) > 300:
            raise TencentAPIError(10005, "at most 300 accounts per call", req.command)
        results = self.world.add_members(req.group_id, [m.member_account for m in req.member_list])
        return {"MemberList": [{"Member_Account": a, "Result": r} for a, r in results]}

    async def _roam(self, req: rest.AdminGetRoamMsg) -> dict[str, Any]:
        page, complete = self.world.roam(
            req.operator_account,
            req.peer_account,
            max_cnt=req.max_cnt,
            min_time=req.min_time,
            max_time=req.max_time,
            last_msg_key=req.last_msg_key,
        )
        return {
            "Complete": 1 if complete else 0,
            "MsgCnt": len(page),
            "LastMsgTime": page[0].time if page else 0,
            "LastMsgKey": page[0].key if page else "",
            "MsgList": [
                {
                    "From_Account": m.from_account,
                    "To_Account": m.to_account,
                    "MsgSeq": m.msg_seq,
                    "MsgRandom": m.random,
                    "MsgTimeStamp": m.time,
                    "MsgFlagBits": 8 if m.recalled else 0,
                    "IsPeerRead": 0,
                    "MsgKey": m.key,
                    "MsgBody": m.body,
                    "CloudCustomData": m.cloud_custom_data,
                }
                for m in page
            ],
        }

    async def _group_history(self, req: rest.GroupMsgGetSimple) -> dict[str, Any]:
        page, finished = self.world.group_history(req.group_id, req.req_msg_number, req.req_msg_seq)
        items = []
        for m in page:
            item = {
                "From_Account": m.from_account,
                "IsPlaceMsg": 2 if m.recalled else 0,
                "MsgBody": [] if m.recalled else m.body,
                "MsgPriority": 2,
                "MsgRandom": m.random,
                "MsgSeq": m.msg_seq,
                "MsgTimeStamp": m.time,
            }
            if m.cloud_custom_data:
                item["CloudCustomData"] = m.cloud_custom_data
            items.append(item)
        return {"GroupId": req.group_id, "IsFinished": 1 if finished else 0, "RspMsgList": items}
