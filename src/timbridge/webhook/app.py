"""The webhook application: Tencent's callbacks in, OK JSON out, within milliseconds.

POST ``server.path``: cap the body ▸ verify SdkAppid + Sign ▸ parse ▸ gate ▸ dedupe ▸ enqueue
▸ ``{"ActionStatus":"OK",...}``. Bad input is refused with a non-OK envelope, a specific
``ErrorInfo`` and 400/401/403/413, never a 5xx; only a failure to queue (the backend is down)
answers 503 so that Tencent delivers again. Also ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable

import orjson
import structlog
from aiohttp import web
from prometheus_client import Counter

from timbridge.bot.cancels import Cancels
from timbridge.bot.commands import is_cancel
from timbridge.bot.conversation import Conversation
from timbridge.bot.gate import gate
from timbridge.coordination.base import Coordinator, Job
from timbridge.errors import PayloadError, TimbridgeError
from timbridge.metrics import Metrics
from timbridge.protocol.callbacks import (
    ACK_OK,
    KNOWN_COMMANDS,
    C2CRecallEvent,
    GroupRecallEvent,
    RecallEvent,
    UnknownEvent,
    ack,
    parse_event,
)
from timbridge.settings import Settings
from timbridge.webhook.verify import Refusal, check_request

__all__ = ["create_app"]

_log = structlog.get_logger("timbridge.webhook")
_JSON = "application/json"


def _ok() -> web.Response:
    return web.Response(body=ACK_OK, content_type=_JSON)


def _refuse(refusal: Refusal) -> web.Response:
    body = ack(refusal.status, f"{refusal.code}: {refusal.detail}")
    return web.Response(status=refusal.status, body=body, content_type=_JSON)


#: The problems that make the process unready (none: ready), for ``/readyz``.
ReadyCheck = Callable[[], Awaitable[list[str]]]


class WebhookHandler:
    def __init__(self, settings: Settings, queue: Coordinator, metrics: Metrics) -> None:
        self._queue = queue
        self._cancels = Cancels(queue)
        self._metrics = metrics
        self._sdkappid = settings.tencent.sdkappid
        token = settings.tencent.callback_token
        self._token = token.get_secret_value() if token else None
        self._robots = frozenset(r.id for r in settings.robots)
        self._member_scoped = {r.id: r.group_context == "member" for r in settings.robots}
        self._admin = settings.tencent.admin
        self._limit = settings.server.max_body_bytes
        self._counters: dict[tuple[str, str], Counter] = {}

    async def handle(self, request: web.Request) -> web.Response:
        command = request.query.get("CallbackCommand", "")
        outcome, response = await self._process(request, command)
        # the label is a known command or "other": the query is the sender's to choose, and a
        # label per value would let anyone grow the metrics without bound
        label = command if command in KNOWN_COMMANDS else "other" if command else "none"
        counter = self._counters.get((label, outcome))
        if counter is None:
            counter = self._counters[label, outcome] = self._metrics.webhooks.labels(label, outcome)
        counter.inc()
        return response

    def _alert(self, body: bytes) -> None:
        """Tencent says a REST API runs at over 80 % of its rate limit (the REST client
        already paces itself to `tencent.api_rate_limit`; this tells the operator)."""
        _log.warning("tencent.request_over_limit", **_alert_fields(body))
        self._metrics.tencent_alerts.labels(ALERT_OVER_LIMIT).inc()

    async def _process(self, request: web.Request, command: str) -> tuple[str, web.Response]:
        refusal = check_request(request.query, sdkappid=self._sdkappid, token=self._token)
        if refusal is not None:
            _log.warning("webhook.rejected", reason=refusal.code, callback_command=command)
            return refusal.code, _refuse(refusal)
        if request.content_length is not None and request.content_length > self._limit:
            return "too_large", _refuse(Refusal(413, "too_large", f"body over {self._limit} bytes"))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return "too_large", _refuse(Refusal(413, "too_large", f"body over {self._limit} bytes"))
        try:
            event = parse_event(body, command or None)
        except PayloadError as exc:
            _log.warning(
                "webhook.bad_payload", field=exc.field, error=str(exc), callback_command=command
            )
            return "bad_payload", _refuse(Refusal(400, "bad_payload", str(exc)))
        if isinstance(event, UnknownEvent):
            if event.callback_command == ALERT_OVER_LIMIT:
                self._alert(body)
                return "alert", _ok()
            _log.info("webhook.ignored", callback_command=event.callback_command)
            return "ignored", _ok()
        if isinstance(event, C2CRecallEvent | GroupRecallEvent):
            return await self._recalled(event)
        verdict = gate(event, self._robots, self._admin)
        if not verdict.robots:
            _log.info("webhook.dropped", reason=verdict.reason, callback_command=command)
            return f"dropped_{verdict.reason}", _ok()
        identity = event.identity
        trace_id = f"{random.getrandbits(64):016x}"
        now = time.time()
        conversations = [
            Conversation.of(robot, event, member_scoped=self._member_scoped[robot])
            for robot in verdict.robots
        ]
        jobs = [
            Job(
                conversation=conversation.key,
                robot=conversation.robot,
                command=event.callback_command,
                body=body,
                identity=identity,
                trace_id=trace_id,
                received_at=now,
                event=event,
            )
            for conversation in conversations
        ]
        try:
            accepted = await self._queue.submit(identity, jobs)
        except TimbridgeError as exc:
            _log.error("webhook.enqueue_failed", error=str(exc))
            return "unavailable", _refuse(
                Refusal(503, "unavailable", "cannot queue the message now; retry")
            )
        if not accepted:
            _log.info("webhook.duplicate", identity=identity)
            return "duplicate", _ok()
        if is_cancel(event):  # stops the sender's answers ahead of it in the conversation
            await self._note_cancel(conversations, now, identity)
        return "accepted", _ok()

    async def _note_cancel(
        self, conversations: list[Conversation], now: float, identity: str
    ) -> None:
        try:
            for conversation in conversations:
                await self._cancels.cancel(conversation.key, conversation.sender, now, identity)
        except TimbridgeError as exc:  # the command is queued; it will say nothing was stopped
            _log.error("webhook.cancel_not_noted", error=str(exc))

    async def _recalled(self, event: RecallEvent) -> tuple[str, web.Response]:
        """A recall: noted, so that the answer to the recalled message stops or never starts.
        A C2C recall between two people, not a robot, is not noted."""
        if isinstance(event, C2CRecallEvent) and event.to_account not in self._robots:
            return "ignored", _ok()
        try:
            await self._cancels.recalled(event.identities)
        except TimbridgeError as exc:
            _log.error("webhook.recall_not_noted", error=str(exc))
            return "unavailable", _refuse(
                Refusal(503, "unavailable", "cannot note the recall now; retry")
            )
        _log.info("webhook.recalled", identities=len(event.identities))
        return "recalled", _ok()


ALERT_OVER_LIMIT = "Alert.RequestOverLimit"


def _alert_fields(body: bytes) -> dict[str, object]:
    """The fields of an over-limit alert worth logging: which API, its rate and its limit."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key.lower(): str(data[key])[:64]
        for key in ("ServiceName", "Command", "Request", "Limit")
        if key in data
    }


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(
    settings: Settings,
    queue: Coordinator,
    metrics: Metrics,
    *,
    ready: ReadyCheck,
    webhook: bool = True,
) -> web.Application:
    """The webhook application, putting accepted messages on `queue` (which it does not own or
    close); with ``webhook=False`` only health, readiness and metrics (a worker's HTTP face)."""
    handler = WebhookHandler(settings, queue, metrics)
    # aiohttp stops reading past client_max_size; the handler answers 413 with our envelope.
    app = web.Application(client_max_size=settings.server.max_body_bytes)

    async def readyz(request: web.Request) -> web.Response:
        problems = await ready()
        status = 503 if problems else 200
        return web.json_response(
            {"status": "unready" if problems else "ready", "problems": problems}, status=status
        )

    async def scrape(request: web.Request) -> web.Response:
        metrics.observe_backlog(queue.backlog(), queue.oldest_wait_s())
        metrics.queue_depth.set(queue.depth())
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    if webhook:
        app.router.add_post(settings.server.path, handler.handle)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
    return app
