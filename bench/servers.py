"""The benchmark's stand-ins, each run as its own process on uvloop:

* ``tencent``: a fast fake Tencent REST endpoint. It answers every call OK at once and records,
  for each reply, when it arrived (``time.monotonic()``, one clock for every process here).
* ``model``: a fake OpenAI-compatible server (Chat Completions, SSE streaming) answering
  ``echo: <last user message>`` after a delay settable at run time; it records each request's
  service time so the benchmark can subtract model time, and when each request reached it
  (``/started``), which shows how fast a caller sends a burst of calls.
* ``bare``: the baseline for acknowledgements, a bare aiohttp endpoint answering Tencent's OK
  acknowledgement.
* ``relay``: the baseline for replies, the least a Python bot can do on the same stack: it
  acknowledges each webhook, streams the answer from the model (``MODEL`` environment variable:
  its base URL) and sends it with ``sendmsg`` to Tencent (``TENCENT``), all on one aiohttp
  session, with no checks, memory, ordering, retries or logs. It is what serve is measured
  against: the cost of HTTP in and out on aiohttp, which no Python implementation avoids.

Usage: ``python bench/servers.py KIND PORT``; prints ``ready`` when listening.

Garbage collection: the fake Tencent and the fake model are instruments, so their cyclic
collector is off while a phase runs and collects when the benchmark resets them between
phases (left on, their full collections took 120-290 ms each as their records grew, and
every request in flight waited them out: the "episodes" of session 4). ``bare`` and
``relay`` are baselines, so they run with serve's own settings (`timbridge.runtime.heap`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web

from timbridge.runtime.heap import CollectionPacer, settle_heap

ACK = b'{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}'
USERSIG = {  # the fake Tencent endpoint does not check it; the query is the real one's shape
    "sdkappid": "1400000000",
    "identifier": "administrator",
    "usersig": "x" * 200,
    "random": "1",
    "contenttype": "json",
}


def tencent_app() -> web.Application:
    arrivals: dict[str, float] = {}
    counter = [0]

    async def call(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        elements = body.get("MsgBody") or []
        if elements and elements[0].get("MsgType") == "TIMTextElem":
            text = elements[0]["MsgContent"]["Text"]
            arrivals[text.removeprefix("echo: ")] = time.monotonic()
        elif elements and elements[0].get("MsgType") == "TIMStreamElem":  # first visible text
            chunks = elements[0]["MsgContent"].get("Chunks") or [{}]
            text = chunks[0].get("Markdown", "")
            if text:
                arrivals.setdefault(text.removeprefix("echo: "), time.monotonic())
        counter[0] += 1
        answer = {
            "ActionStatus": "OK",
            "ErrorCode": 0,
            "ErrorInfo": "",
            "MsgTime": 1,
            "MsgKey": f"{counter[0]}_1_1",
            "MsgSeq": counter[0],
            "StreamMsgID": f"s-{counter[0]}",
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"replies": len(arrivals), "arrivals": arrivals}),
            content_type="application/json",
        )

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        gc.collect()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v4/{service}/{command}", call)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


def _tool_call(base: dict[str, Any]) -> bytes:
    """A streamed answer that is one call of the built-in calculator, as OpenAI streams it."""
    call = {"index": 0, "id": "call_1", "type": "function"}
    call["function"] = {"name": "calculator", "arguments": '{"expression": "6*7"}'}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
    ]
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def model_app() -> web.Application:
    state: dict[str, Any] = {"delay": 0.0, "service": {}, "first": {}, "started": {}}

    async def completions(request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body = orjson.loads(await request.read())
        # the last user message (after a tool round trip, the last message is the tool's)
        question = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        state["started"][question] = started
        if state["delay"]:
            await asyncio.sleep(state["delay"])
        text = f"echo: {question}"
        base = {"id": "c", "created": 1, "model": body["model"], "object": "chat.completion.chunk"}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        state["first"][question] = time.monotonic() - started  # time to first token
        if body.get("tools") and body["messages"][-1]["role"] != "tool":
            await response.write(_tool_call(base))  # one calculator call, then the answer
            await response.write_eof()
            return response
        chunks = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": text},
                        "finish_reason": None,
                    }
                ],
            },
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
            },
        ]
        await response.write(
            b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        )
        await response.write_eof()
        state["service"][question] = time.monotonic() - started
        return response

    records = {"/stats": "service", "/first": "first", "/started": "started"}  # path: record

    async def control(request: web.Request) -> web.Response:
        state["delay"] = float((await request.json())["delay"])
        for record in records.values():
            state[record] = {}
        gc.collect()
        return web.Response(text="ok")

    def reader(record: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def read(request: web.Request) -> web.Response:
            return web.Response(body=orjson.dumps(state[record]), content_type="application/json")

        return read

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/delay", control)
    for path, record in records.items():
        app.router.add_get(path, reader(record))
    return app


def bare_app() -> web.Application:
    async def ack(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ACK, content_type="application/json")

    app = web.Application()
    app.router.add_post("/im", ack)
    return app


def relay_app() -> web.Application:
    model, tencent = os.environ["MODEL"], os.environ["TENCENT"]
    send_url = f"{tencent}/v4/openim/sendmsg"
    tasks: set[asyncio.Task[None]] = set()
    session: list[aiohttp.ClientSession] = []

    async def answer(event: dict[str, Any]) -> None:
        question = event["MsgBody"][0]["MsgContent"]["Text"]
        request = {
            "model": "bench",
            "messages": [{"role": "user", "content": question}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        text = []
        async with session[0].post(f"{model}/chat/completions", data=orjson.dumps(request)) as r:
            async for line in r.content:
                if line.startswith(b"data: {"):
                    choices = orjson.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        text.append(choices[0]["delta"]["content"])
        reply = {
            "From_Account": event["To_Account"],
            "To_Account": event["From_Account"],
            "MsgRandom": event["MsgRandom"],
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "".join(text)}}],
        }
        async with session[0].post(send_url, params=USERSIG, data=orjson.dumps(reply)) as r:
            await r.read()

    async def webhook(request: web.Request) -> web.Response:
        task = asyncio.get_running_loop().create_task(answer(orjson.loads(await request.read())))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.Response(body=ACK, content_type="application/json")

    def new_session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=10000)
        headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
        return aiohttp.ClientSession(connector=connector, headers=headers)

    async def open_session(app: web.Application) -> AsyncIterator[None]:
        session.append(new_session())
        yield
        await session[0].close()

    async def close_connections(request: web.Request) -> web.Response:
        """Close every connection to the fakes (10 000 after the 5 000-conversation phase).
        Left open, the relay's pool closes them as they idle out, and the fakes' burst of
        work on 10 000 disconnections landed in the middle of serve's phases (0.2 s of
        replies 200 ms late, in some runs only)."""
        await session[0].close()
        session[0] = new_session()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/im", webhook)
    app.router.add_post("/close", close_connections)
    app.cleanup_ctx.append(open_session)
    return app


async def main(kind: str, port: int) -> None:
    apps = {"tencent": tencent_app, "model": model_app, "bare": bare_app, "relay": relay_app}
    app = apps[kind]()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    if kind in ("tencent", "model"):
        gc.disable()  # they collect on /reset and /delay, between phases
    else:
        settle_heap()
        CollectionPacer().start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
