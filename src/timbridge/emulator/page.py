"""The web chat page: static files, a small JSON API for it, live events over SSE, and the
control API for faults.

The page acts as a client app: it picks or creates a user, chats one-to-one with robots and
users, creates groups and @-mentions robots, and follows streamed and edited messages and typing
notices live. Its API is the emulator's own (not Tencent's): JSON in, JSON out, errors as
``{"error": code, "detail": text}``.
"""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from timbridge.emulator.faults import Fault, Faults
from timbridge.emulator.guard import PageGuard
from timbridge.emulator.rest import RestAPI
from timbridge.emulator.webhooks import WebhookDispatcher
from timbridge.emulator.world import Change, ChangeKind, Group, Message, World
from timbridge.errors import TencentAPIError
from timbridge.protocol.accounts import ROBOT_PREFIX, is_robot

__all__ = ["LiveEvents", "PageAPI", "message_json"]

# "@" (or its full-width form) then a name; a robot's UserID starts with "@" itself, so
# "@@RBT#helper" names "@RBT#helper" (reference §7.3's regex misses that case).
_MENTION = re.compile("(?:^|\\s)[@\uff20]([@\uff20]?[^\\s@\uff20]+)")
_STATIC = resources.files("timbridge.emulator") / "static"
_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def message_json(message: Message, world: World) -> dict[str, Any]:
    """How the page sees a message."""
    sender = world.accounts.get(message.from_account)
    return {
        "id": message.id,
        "key": message.key,
        "kind": message.kind,
        "from": message.from_account,
        "from_nick": sender.nick if sender else message.from_account,
        "to": message.to_account,
        "group": message.group_id,
        "text": "" if message.recalled else message.text,
        "recalled": message.recalled,
        "time": message.time,
        "at": list(message.at_accounts),
        "streaming": message.stream is not None and not message.stream.ended(world.clock()),
        "edits": message.edits,
    }


def _group_json(group: Group) -> dict[str, Any]:
    return {
        "id": group.group_id,
        "name": group.name,
        "type": group.type,
        "members": sorted(group.members),
    }


class LiveEvents:
    """Server-sent events for page clients, each following one user."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, asyncio.Queue[bytes | None]]] = []

    def publish(self, change: Change, world: World) -> None:
        if not self._subscribers:
            return
        message = change.message
        for user, queue in list(self._subscribers):
            if message is not None:
                if message.kind == "c2c" and not message.involves(user):
                    continue
                if message.kind == "group" and (
                    message.group_id not in world.groups
                    or user not in world.groups[message.group_id].members
                ):
                    continue
                payload: dict[str, Any] = {
                    "type": change.kind.value,
                    "message": message_json(message, world),
                }
                if change.kind is ChangeKind.TYPING:
                    payload["typing"] = change.typing
            else:
                payload = {"type": change.kind.value}
            if queue.qsize() < 1000:
                queue.put_nowait(orjson.dumps(payload))

    def close(self) -> None:
        for _, queue in self._subscribers:
            queue.put_nowait(None)

    async def stream(self, request: web.Request, user: str) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        entry = (user, queue)
        self._subscribers.append(entry)
        try:
            await response.write(b": connected\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), 15.0)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                await response.write(b"data: " + item + b"\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._subscribers.remove(entry)
        return response


class PageAPI:
    """Routes of the page, its API, and the control API."""

    def __init__(
        self,
        world: World,
        live: LiveEvents,
        faults: Faults,
        webhooks: WebhookDispatcher,
        rest: RestAPI,
        *,
        guard: PageGuard,
    ) -> None:
        self.world = world
        self.live = live
        self.faults = faults
        self.webhooks = webhooks
        self.rest = rest
        self.guard = guard

    def routes(self) -> list[web.RouteDef]:
        """Every page and control route, behind the guard (local host; token for changes)."""
        g = self.guard.guarded
        return [
            web.get("/", g(self._index)),
            web.get("/static/{name}", g(self._static)),
            web.get("/api/state", g(self._state)),
            web.get("/api/history", g(self._history)),
            web.get("/api/events", g(self._events)),
            web.post("/api/users", g(self._create_user)),
            web.post("/api/send", g(self._send)),
            web.post("/api/recall", g(self._recall)),
            web.post("/api/groups", g(self._create_group)),
            web.post("/api/members", g(self._add_members)),
            web.get("/emulator/stats", g(self._stats)),
            web.post("/emulator/faults", g(self._add_fault)),
            web.delete("/emulator/faults", g(self._clear_faults)),
            web.post("/emulator/callback", g(self._set_callback)),
        ]

    # --- static ---------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        """The page, with this run's token in it for the page's own calls."""
        page = self._file("index.html")
        assert isinstance(page.body, bytes)
        page.body = page.body.replace(b"{{TOKEN}}", self.guard.token.encode())
        page.headers["Cache-Control"] = "no-store"
        return page

    async def _static(self, request: web.Request) -> web.Response:
        return self._file(request.match_info["name"])

    @staticmethod
    def _file(name: str) -> web.Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in _STATIC_TYPES:
            raise web.HTTPNotFound
        resource = _STATIC / name
        if not resource.is_file():
            raise web.HTTPNotFound
        return web.Response(
            body=resource.read_bytes(), content_type=_STATIC_TYPES[suffix], charset="utf-8"
        )

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, detail: str) -> web.Response:
        return web.json_response(
            {"error": code, "detail": detail},
            status=status,
            dumps=lambda v: orjson.dumps(v).decode(),
        )

    @staticmethod
    def _ok(value: Any) -> web.Response:
        return web.Response(body=orjson.dumps(value), content_type="application/json")

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise web.HTTPBadRequest(
                text='{"error":"bad_json","detail":"body is not JSON"}',
                content_type="application/json",
            ) from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(
                text='{"error":"bad_json","detail":"body must be an object"}',
                content_type="application/json",
            )
        return data

    def _user(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.world.accounts:
            raise web.HTTPBadRequest(
                text=orjson.dumps(
                    {"error": "unknown_user", "detail": f"no account {value!r}"}
                ).decode(),
                content_type="application/json",
            )
        return value

    # --- page API -------------------------------------------------------------------------

    async def _state(self, request: web.Request) -> web.Response:
        user = request.query.get("user")
        accounts = [
            {"id": a.user_id, "nick": a.nick or a.user_id, "robot": a.robot}
            for a in self.world.accounts.values()
            if not a.deleted and a.user_id != self.world.admin
        ]
        groups = self.world.groups_of(user) if user else list(self.world.groups.values())
        return self._ok(
            {
                "sdkappid": self.rest.sdkappid,
                "accounts": accounts,
                "groups": [_group_json(g) for g in groups],
            }
        )

    async def _history(self, request: web.Request) -> web.Response:
        user = self._user(request.query.get("user"))
        if "group" in request.query:
            try:
                group = self.world.group(request.query["group"])
            except TencentAPIError as exc:
                return self._error(404, "unknown_group", exc.error_info)
            if user not in group.members:
                return self._error(403, "not_a_member", f"{user} is not in {group.group_id}")
            messages = group.messages
        else:
            messages = self.world.conversation(user, self._user(request.query.get("peer")))
        return self._ok([message_json(m, self.world) for m in messages[-200:]])

    async def _events(self, request: web.Request) -> web.StreamResponse:
        return await self.live.stream(request, self._user(request.query.get("user")))

    async def _create_user(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        user_id, nick = data.get("id"), data.get("nick")
        if not isinstance(user_id, str) or is_robot(user_id):
            return self._error(
                400, "bad_user", f"id must be a string not starting with {ROBOT_PREFIX}"
            )
        try:
            account = self.world.import_account(user_id, nick if isinstance(nick, str) else None)
        except TencentAPIError as exc:
            return self._error(400, "bad_user", exc.error_info)
        return self._ok({"id": account.user_id, "nick": account.nick})

    async def _send(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        sender = self._user(data.get("from"))
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            return self._error(400, "empty_text", "text must be a non-empty string")
        try:
            if isinstance(data.get("group"), str):
                group = self.world.group(data["group"])
                if sender not in group.members:
                    return self._error(403, "not_a_member", f"{sender} is not in the group")
                mentions = self._mentions(text, group)
                message = self.world.user_send_group(sender, group.group_id, text, mentions)
            else:
                message = self.world.user_send(sender, self._user(data.get("to")), text)
        except TencentAPIError as exc:
            return self._error(400, f"tencent_{exc.error_code}", exc.error_info)
        return self._ok(message_json(message, self.world))

    async def _recall(self, request: web.Request) -> web.Response:
        """`user` recalls message `id` (theirs, within the recall period), as a client would."""
        data = await self._json(request)
        user = self._user(data.get("user"))
        message_id = data.get("id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            return self._error(400, "bad_id", "id must be the message's number")
        try:
            message = self.world.user_recall(user, message_id)
        except TencentAPIError as exc:
            return self._error(400, f"tencent_{exc.error_code}", exc.error_info)
        return self._ok(message_json(message, self.world))

    def _mentions(self, text: str, group: Group) -> tuple[str, ...]:
        """Accounts of the group named by ``@id`` or ``@nick`` tokens in the text."""
        found: list[str] = []
        for token in _MENTION.findall(text):
            for member in group.members:
                account = self.world.accounts.get(member)
                names = {member, member.removeprefix("@")}
                if account is not None and account.nick:
                    names.add(account.nick)
                if token in names and member not in found:
                    found.append(member)
        return tuple(found)

    async def _create_group(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        owner = self._user(data.get("owner"))
        members = data.get("members") or []
        name = data.get("name")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            return self._error(400, "bad_members", "members must be a list of UserIDs")
        try:
            group = self.world.create_group(
                type=str(data.get("type") or "Public"),
                name=name if isinstance(name, str) else "",
                owner=owner,
                group_id=None,
                members=members,
            )
        except TencentAPIError as exc:
            return self._error(400, f"tencent_{exc.error_code}", exc.error_info)
        return self._ok(_group_json(group))

    async def _add_members(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        members = data.get("members")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            return self._error(400, "bad_members", "members must be a list of UserIDs")
        try:
            results = self.world.add_members(str(data.get("group")), members)
        except TencentAPIError as exc:
            return self._error(400, f"tencent_{exc.error_code}", exc.error_info)
        return self._ok({"results": dict(results)})

    # --- control API ----------------------------------------------------------------------

    async def _stats(self, request: web.Request) -> web.Response:
        log = self.webhooks.log
        return self._ok(
            {
                "calls": self.rest.calls,
                "messages": len(self.world.messages),
                "webhooks": {
                    "queued": len(log),
                    "delivered": sum(d.delivered for d in log),
                    "attempts": sum(d.attempts for d in log),
                },
            }
        )

    async def _add_fault(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        if "duplicate_webhooks" in data:
            copies = data["duplicate_webhooks"]
            if not isinstance(copies, int) or copies < 0:
                return self._error(400, "bad_fault", "duplicate_webhooks must be an integer ≥ 0")
            self.faults.duplicate(copies, int(data.get("times", -1)))
            return self._ok({"ok": True})
        command = data.get("command")
        if not isinstance(command, str) or not command:
            return self._error(400, "bad_fault", "command must name a REST command or '*'")
        try:
            fault = Fault.from_json(data)
        except ValueError as exc:
            return self._error(400, "bad_fault", str(exc))
        self.faults.add(command, fault)
        return self._ok({"ok": True})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return self._ok({"ok": True})

    async def _set_callback(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        url, token = data.get("url"), data.get("token")
        if url is not None and not (
            isinstance(url, str) and url.startswith(("http://", "https://"))
        ):
            return self._error(400, "bad_url", "url must start with http:// or https://")
        self.webhooks.url = url
        self.webhooks.token = token if isinstance(token, str) else None
        return self._ok({"ok": True})
