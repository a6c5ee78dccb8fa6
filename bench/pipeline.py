"""End-to-end pipeline benchmark: signed webhooks in, replies out, on loopback.

Processes: ``timbridge serve`` (the real command, embedded deployment: SQLite + in-process
queue), a fast fake Tencent REST endpoint, a fake OpenAI-compatible model, a bare aiohttp
endpoint answering the same acknowledgement (the baseline), and this script as the load
generator. Every process shares the machine's cores, so figures are compared with the baseline
measured in the same run.

Phases:
1. ack throughput: N webhooks, closed loop, 64 in flight, at the bare endpoint then at serve
   (whose workers answer every message meanwhile, with a zero-latency model);
2. replies/s: N / (last reply at the fake Tencent - first webhook sent), same run as 1, and
   the CPU time the endpoint's process spent per reply meanwhile (``/proc``; every process
   here is single-threaded on the loop, so this is what bounds replies/s on one core);
3. latency at a fixed rate (500 messages/s): webhook ack p50/p99, and webhook→reply overhead
   p50/p99 = reply arrival - webhook sent - the model's own service time;
4. 2 s model: M conversations write at once; wall time until every reply arrived, and until
   the fake model had received every call (how fast the endpoint sends a burst); serve's RSS.
5. stream mode (a robot with ``reply_mode = "stream"``), model first token after 300 ms, 50
   messages/s: first visible text (the first stream chunk at Tencent) minus webhook sent minus
   the model's time to first token, p50/p99. Then tools: serve's CPU per answer for a robot
   whose every answer takes one tool round trip (the calculator), against a plain answer.
6. saturation: webhooks in a closed loop at full speed (64 in flight) for ``--saturate``
   seconds, zero-latency model: acks/s (against the bare endpoint), answers/s that reached
   Tencent meanwhile (against serve's capacity of phase 2), serve's peak RSS sampled during the
   phase, the backlog at its end, and how long it took to drain. Shedding
   (``server.max_wait_s``) is off in every phase, so that each message is answered. Then the
   floor: the relay flooded the same way, its acks/s and answers/s against its own capacity.

With ``--scale N`` it measures the scale-out deployment instead: one ``serve --no-workers``
front-end, Redis coordination, a PostgreSQL store, and first 1 then N ``timbridge worker``
processes; for each, replies/s over ``--requests`` messages from 1 000 users, and the ratio.
Redis and PostgreSQL are the machine's (``--redis``, ``--postgres``); a fresh database and key
prefix are used and removed.

Usage: python bench/pipeline.py [--requests 20000] [--rate 500] [--seconds 10]
                                [--conversations 5000]
       python bench/pipeline.py --scale 2 [--requests 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from timbridge.protocol.callbacks import callback_sign

ROOT = Path(__file__).resolve().parents[1]
APP, KEY, TOKEN, ROBOT = 1400000000, "bench-secret", "bench-token", "@RBT#bench"
STREAM_ROBOT = "@RBT#stream"  # the same, answering in reply_mode = "stream"
TOOL_ROBOT = "@RBT#tools"  # the same, with the calculator: each answer is one tool round trip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start(
    *args: str, ready: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    logs_to_stderr = ready.startswith("{") or "serve" in args or "worker" in args
    stream = proc.stderr if logs_to_stderr else proc.stdout
    assert stream is not None
    async with asyncio.timeout(60):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise RuntimeError(f"{args} exited: {(await proc.stderr.read()).decode()}")  # type: ignore[union-attr]
            if ready in line:
                for pipe in (proc.stdout, proc.stderr):  # keep the pipes from filling up
                    assert pipe is not None
                    _DRAINS.append(asyncio.get_running_loop().create_task(_drain(pipe)))
                return proc, line


_DRAINS: list[asyncio.Task[None]] = []


async def _drain(pipe: asyncio.StreamReader) -> None:
    while await pipe.read(65536):
        pass


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def cpu_s(pid: int) -> float:
    """The user + system CPU time process `pid` has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """One phase's webhooks. The generator's cyclic collector is off (see `main`): it collects
    here, before a phase, so that no collection pauses the sending of a phase."""

    def __init__(self, session: aiohttp.ClientSession, url: str, robot: str = ROBOT) -> None:
        gc.collect()
        self.session = session
        self.url = url
        self.robot = robot
        self.sent: dict[str, float] = {}
        self.acks: list[float] = []
        self.failures = 0
        self._seq = 0

    def query(self) -> dict[str, str]:
        now = str(int(time.time()))
        return {
            "SdkAppid": str(APP),
            "CallbackCommand": "Bot.OnC2CMessage",
            "contenttype": "json",
            "ClientIP": "127.0.0.1",
            "OptPlatform": "RESTAPI",
            "RequestTime": now,
            "Sign": callback_sign(TOKEN, now),
        }

    def body(self, user: str, ident: str) -> bytes:
        self._seq += 1
        return orjson.dumps(
            {
                "CallbackCommand": "Bot.OnC2CMessage",
                "From_Account": user,
                "To_Account": self.robot,
                "MsgSeq": self._seq,
                "MsgRandom": self._seq,
                "MsgTime": int(time.time()),
                "MsgKey": f"{self._seq}_{ident}",
                "OnlineOnlyFlag": 0,
                "SendMsgResult": 0,
                "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": ident}}],
            }
        )

    async def one(self, query: dict[str, str], user: str, ident: str) -> None:
        body = self.body(user, ident)
        started = time.monotonic()
        self.sent[ident] = started
        async with self.session.post(self.url, params=query, data=body) as resp:
            await resp.read()
            if resp.status != 200:
                self.failures += 1
        self.acks.append(time.monotonic() - started)

    async def closed_loop(self, count: int, users: int, prefix: str, inflight: int = 64) -> float:
        query = self.query()
        queue = iter(range(count))

        async def worker() -> None:
            for n in queue:
                await self.one(query, f"u{n % users}", f"{prefix}{n}")

        started = time.monotonic()
        await asyncio.gather(*[worker() for _ in range(inflight)])
        return count / (time.monotonic() - started)

    async def closed_loop_for(
        self, seconds: float, users: int, prefix: str, inflight: int = 64
    ) -> int:
        """Webhooks back to back from `inflight` senders for `seconds`; how many were sent."""
        query = self.query()
        stop = time.monotonic() + seconds
        counter = iter(range(10**9))

        async def worker() -> None:
            for n in counter:
                if time.monotonic() >= stop:
                    return
                await self.one(query, f"u{n % users}", f"{prefix}{n}")

        await asyncio.gather(*[worker() for _ in range(inflight)])
        return len(self.acks)

    async def open_loop(self, rate: float, seconds: float, users: int, prefix: str) -> None:
        query = self.query()
        tasks = []
        started = time.monotonic()
        for n in range(int(rate * seconds)):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(query, f"u{n % users}", f"{prefix}{n}")))
        await asyncio.gather(*tasks)


async def replies(
    session: aiohttp.ClientSession, tencent: str, expect: int, limit_s: float = 300
) -> dict[str, float]:
    async with asyncio.timeout(limit_s):
        while True:
            async with session.get(f"{tencent}/stats") as resp:
                stats = await resp.json()
            if stats["replies"] >= expect:
                return dict(stats["arrivals"])
            await asyncio.sleep(0.05)


async def start_fakes(
    ports: dict[str, int], kinds: tuple[str, ...]
) -> list[asyncio.subprocess.Process]:
    """The fake servers of `bench/servers.py` (tencent, model, bare, relay), each on its port."""
    started = []
    env = {
        **os.environ,
        "MODEL": f"http://127.0.0.1:{ports['model']}/v1",
        "TENCENT": f"http://127.0.0.1:{ports['tencent']}",
    }
    for kind in kinds:
        proc, _ = await start(
            sys.executable,
            str(ROOT / "bench" / "servers.py"),
            kind,
            str(ports[kind]),
            ready="ready",
            env=env,
        )
        started.append(proc)
    return started


def write_config(
    path: Path,
    ports: dict[str, int],
    *,
    port: int,
    store: str,
    server: str = "",
    coordination: str = "",
    model: str = "",
    robots: str = "",
) -> Path:
    """A serve/worker configuration against the fakes: the benchmark robot (bursts off, so no
    first reply waits for a burst), the fake model and the fake Tencent; extra lines per section."""
    path.write_text(f"""
[tencent]
sdkappid = {APP}
api_base = "http://127.0.0.1:{ports["tencent"]}"
api_rate_limit = 1000000
[server]
host = "127.0.0.1"
port = {port}
{server}
[store]
url = "{store}"
{f"[coordination]{chr(10)}{coordination}" if coordination else ""}
[models.default]
provider = "openai"
base_url = "http://127.0.0.1:{ports["model"]}/v1"
model = "bench"
{model}
[[robots]]
id = "{ROBOT}"
burst_window_s = 0
{robots}
""")
    return path


def serve_env() -> dict[str, str]:
    """The environment of serve and workers: the app's secret key and callback token."""
    return {
        **os.environ,
        "TIMBRIDGE_TENCENT__SECRET_KEY": KEY,
        "TIMBRIDGE_TENCENT__CALLBACK_TOKEN": TOKEN,
    }


@asynccontextmanager
async def processes(tmp: Path, model_concurrency: int) -> AsyncIterator[dict[str, Any]]:
    ports = {k: free_port() for k in ("tencent", "model", "bare", "relay", "serve")}
    procs: list[asyncio.subprocess.Process] = []
    try:
        kinds = ("tencent", "model", "bare", "relay")
        fakes = dict(zip(kinds, await start_fakes(ports, kinds), strict=True))
        procs += fakes.values()
        config = write_config(
            tmp / "timbridge.toml",
            ports,
            port=ports["serve"],
            store=f"sqlite:///{tmp / 'bench.db'}",
            # no shedding: every phase counts answers, and a shed message's busy notice is not
            # one (on a slow machine phase 2's last messages wait past the 30 s default)
            server=f"model_concurrency = {model_concurrency}\nmax_wait_s = 0",
            model="timeout_s = 30",
            robots=f'[[robots]]\nid = "{STREAM_ROBOT}"\nreply_mode = "stream"\nburst_window_s = 0'
            f'\n[[robots]]\nid = "{TOOL_ROBOT}"\ntools = ["calculator"]\nburst_window_s = 0',
        )
        env = serve_env()
        serve, _ = await start(  # at serve's default log level (info), as in production
            sys.executable,
            "-m",
            "timbridge",
            "serve",
            "--config",
            str(config),
            ready="serve.started",
            env=env,
        )
        procs.append(serve)
        yield {"ports": ports, "serve": serve, "relay": fakes["relay"]}
    finally:
        for proc in procs:
            proc.terminate()
        await asyncio.gather(*[p.wait() for p in procs])


@dataclass
class Figures:
    """What the reply phases measured at one endpoint (serve, or the relay baseline)."""

    acks_per_s: float = 0.0
    replies_per_s: float = 0.0
    cpu_us_per_reply: float = 0.0
    ack_p50: float = 0.0
    ack_p99: float = 0.0
    overhead_p50: float = 0.0
    overhead_p99: float = 0.0
    wall_s: float = 0.0
    calls_sent_s: float = 0.0
    failures: int = 0


async def reply_phases(
    session: aiohttp.ClientSession,
    url: str,
    *,
    pid: int,
    tencent: str,
    model: str,
    args: argparse.Namespace,
) -> Figures:
    """Phases 1-4 against the webhook endpoint at `url`, served by process `pid`."""
    figures = Figures()
    warm = Load(session, url)
    await warm.closed_loop(1000, 100, "warm-")
    await replies(session, tencent, 1000)
    await session.post(f"{tencent}/reset")

    load = Load(session, url)
    cpu_before = cpu_s(pid)
    first = time.monotonic()
    figures.acks_per_s = await load.closed_loop(args.requests, 1000, "m-")
    arrivals = await replies(session, tencent, args.requests)
    figures.replies_per_s = args.requests / (max(arrivals.values()) - first)
    figures.cpu_us_per_reply = (cpu_s(pid) - cpu_before) / args.requests * 1e6

    await session.post(f"{tencent}/reset")
    await session.post(f"{model}/delay", json={"delay": 0})
    timed = Load(session, url)
    await timed.open_loop(args.rate, args.seconds, 1000, "r-")
    arrivals = await replies(session, tencent, int(args.rate * args.seconds))
    async with session.get(f"{model}/stats") as resp:
        service = await resp.json()
    overhead = [
        (arrivals[i] - timed.sent[i] - service.get(i, 0.0)) * 1000
        for i in timed.sent
        if i in arrivals
    ]
    figures.ack_p50, figures.ack_p99 = pct(timed.acks, 0.5) * 1000, pct(timed.acks, 0.99) * 1000
    figures.overhead_p50, figures.overhead_p99 = pct(overhead, 0.5), pct(overhead, 0.99)

    await session.post(f"{tencent}/reset")
    await session.post(f"{model}/delay", json={"delay": 2.0})
    burst = Load(session, url)
    started = time.monotonic()
    query = burst.query()
    await asyncio.gather(*[burst.one(query, f"c{n}", f"s-{n}") for n in range(args.conversations)])
    arrivals = await replies(session, tencent, args.conversations)
    figures.wall_s = max(arrivals.values()) - started
    async with session.get(f"{model}/started") as resp:
        calls = await resp.json()
    figures.calls_sent_s = max(calls.values()) - started
    await session.post(f"{tencent}/reset")
    await session.post(f"{model}/delay", json={"delay": 0})
    figures.failures = load.failures + timed.failures + burst.failures
    return figures


async def run(args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=512)  # a sender reuses a pool of connections
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            processes(Path(tmp), args.conversations + 100) as env,
            aiohttp.ClientSession(connector=connector) as session,
        ):
            ports = env["ports"]
            tencent = f"http://127.0.0.1:{ports['tencent']}"
            model = f"http://127.0.0.1:{ports['model']}"
            print(
                f"timbridge pipeline benchmark ({os.cpu_count()} cores; every process shares them)",
                flush=True,
            )
            bare = Load(session, f"http://127.0.0.1:{ports['bare']}/im")
            await bare.closed_loop(1000, 100, "warm-bare-")
            bare_rate = await bare.closed_loop(args.requests, 1000, "bare-")
            relay_url = f"http://127.0.0.1:{ports['relay']}/im"
            relay = await reply_phases(
                session, relay_url, pid=env["relay"].pid, tencent=tencent, model=model, args=args
            )
            await session.post(f"http://127.0.0.1:{ports['relay']}/close")
            await asyncio.sleep(2)  # the fakes see the relay's connections go before serve runs
            serve_url = f"http://127.0.0.1:{ports['serve']}/im"
            serve = await reply_phases(
                session, serve_url, pid=env["serve"].pid, tencent=tencent, model=model, args=args
            )
            rss, peak = rss_mb(env["serve"].pid)
            row("", "baseline", "serve", "ratio")
            row("webhook acks/s (baseline: bare ack)", bare_rate, serve.acks_per_s, ratio=True)
            row(
                "replies/s, zero-latency model (baseline: relay)",
                relay.replies_per_s,
                serve.replies_per_s,
                ratio=True,
            )
            row(
                "CPU per reply meanwhile (µs; baseline: relay)",
                relay.cpu_us_per_reply,
                serve.cpu_us_per_reply,
                ratio=True,
            )
            row(f"at {args.rate:.0f} msg/s: webhook ack p50 (ms)", relay.ack_p50, serve.ack_p50)
            row(f"at {args.rate:.0f} msg/s: webhook ack p99 (ms)", relay.ack_p99, serve.ack_p99)
            row(
                f"at {args.rate:.0f} msg/s: webhook→reply overhead p50 (ms)",
                relay.overhead_p50,
                serve.overhead_p50,
            )
            row(
                f"at {args.rate:.0f} msg/s: webhook→reply overhead p99 (ms)",
                relay.overhead_p99,
                serve.overhead_p99,
            )
            row(
                f"{args.conversations} conversations at once, 2 s model: wall (s)",
                relay.wall_s,
                serve.wall_s,
            )
            row(
                f"  of which until the model had all {args.conversations} calls (s)",
                relay.calls_sent_s,
                serve.calls_sent_s,
            )
            row("serve RSS now / peak (MB)", "", f"{rss:.0f} / {peak:.0f}")

            streamed = await stream_phase(
                session, tencent, model, f"http://127.0.0.1:{ports['serve']}/im"
            )
            plain_us, tool_us = await tool_phase(
                session, serve_url, tencent=tencent, pid=env["serve"].pid, count=args.requests // 4
            )
            row(
                "CPU per answer (µs): plain / with one tool round trip",
                plain_us,
                tool_us,
                ratio=True,
            )
            flood = await saturation_phase(
                session,
                serve_url,
                tencent=tencent,
                pid=env["serve"].pid,
                seconds=args.saturate,
            )
            sat_rate = flood.acks / args.saturate
            row(
                f"saturation, {args.saturate:.0f} s closed loop: acks/s",
                bare_rate,
                sat_rate,
                ratio=True,
            )
            row(
                "  answers/s meanwhile (baseline: serve's capacity above)",
                serve.replies_per_s,
                flood.answered / args.saturate,
                ratio=True,
            )
            row("  serve peak RSS during it (MB)", "", f"{flood.peak_rss_mb:.0f}")
            row("  backlog at its end (jobs)", "", str(flood.backlog))
            row("  drain time after the load stopped (s)", "", f"{flood.drain_s:.1f}")
            # the floor: the relay flooded the same way (last: its own backlog is left running)
            floor = await saturation_phase(
                session,
                relay_url,
                tencent=tencent,
                pid=env["relay"].pid,
                seconds=args.saturate,
                prefix="rsat-",
                drain=False,
            )
            row(
                "  the relay flooded alike (floor): acks/s",
                bare_rate,
                floor.acks / args.saturate,
                ratio=True,
            )
            row(
                "  the relay's answers/s meanwhile (baseline: relay's capacity)",
                relay.replies_per_s,
                floor.answered / args.saturate,
                ratio=True,
            )
            failures = relay.failures + serve.failures + streamed.failures + flood.load.failures
            row("failed webhooks", "", str(failures))


async def _admin_sql(postgres: str, sql: str) -> None:
    import asyncpg  # noqa: PLC0415 - only the scale run needs it

    connection = await asyncpg.connect(f"{postgres}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def run_scale(args: argparse.Namespace) -> None:
    import redis.asyncio as aioredis  # noqa: PLC0415 - only the scale run needs it

    ports = {k: free_port() for k in ("tencent", "model", "front")}
    database = f"tb_bench_{os.getpid()}"
    await _admin_sql(args.postgres, f'CREATE DATABASE "{database}"')
    procs: list[asyncio.subprocess.Process] = []
    env = serve_env()
    rates: dict[int, float] = {}
    print(f"timbridge scale-out benchmark ({os.cpu_count()} cores; every process shares them)")
    try:
        procs += await start_fakes(ports, ("tencent", "model"))
        with tempfile.TemporaryDirectory() as tmp:
            for workers in (1, args.scale):
                prefix = f"tbbench{os.getpid()}w{workers}"
                config = write_config(
                    Path(tmp) / f"w{workers}.toml",
                    ports,
                    port=ports["front"],
                    store=f"{args.postgres}/{database}",
                    coordination=f'url = "{args.redis}"\nprefix = "{prefix}"',
                )
                base = [sys.executable, "-m", "timbridge", "--log-level", "info"]
                round_procs = []
                front, _ = await start(
                    *base,
                    "serve",
                    "--no-workers",
                    "--config",
                    str(config),
                    ready="serve.started",
                    env=env,
                )
                round_procs.append(front)
                for _ in range(workers):
                    worker, _ = await start(
                        *base, "worker", "--config", str(config), ready="worker.started", env=env
                    )
                    round_procs.append(worker)
                connector = aiohttp.TCPConnector(limit=256)
                async with aiohttp.ClientSession(connector=connector) as session:
                    tencent = f"http://127.0.0.1:{ports['tencent']}"
                    await session.post(f"{tencent}/reset")
                    load = Load(session, f"http://127.0.0.1:{ports['front']}/im")
                    first = time.monotonic()
                    await load.closed_loop(args.requests, 1000, f"w{workers}-")
                    arrivals = await replies(session, tencent, args.requests)
                    rates[workers] = args.requests / (max(arrivals.values()) - first)
                    row(f"{workers} worker(s): replies/s", f"{rates[workers]:.0f}")
                    if load.failures:
                        row("  failed webhooks", str(load.failures))
                for proc in round_procs:
                    proc.terminate()
                await asyncio.gather(*[p.wait() for p in round_procs])
                cleanup = aioredis.Redis.from_url(args.redis)
                keys = [k async for k in cleanup.scan_iter(f"{prefix}:*")]
                if keys:
                    await cleanup.delete(*keys)
                await cleanup.aclose()
        row(f"ratio {args.scale} workers / 1 worker", f"{rates[args.scale] / rates[1]:.2f}")
    finally:
        for proc in procs:
            proc.terminate()
        await asyncio.gather(*[p.wait() for p in procs])
        await _admin_sql(args.postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def stream_phase(
    session: aiohttp.ClientSession, tencent: str, model: str, serve_url: str
) -> Load:
    """Stream mode: time from the webhook to the first visible text, beyond the model's own
    time to first token (300 ms here), at 50 messages/s."""
    await session.post(f"{tencent}/reset")
    await session.post(f"{model}/delay", json={"delay": 0.3})
    streamed = Load(session, serve_url, STREAM_ROBOT)
    await streamed.open_loop(50, 4, 200, "st-")
    arrivals = await replies(session, tencent, 200)
    async with session.get(f"{model}/first") as resp:
        model_first = await resp.json()
    extra = [
        (arrivals[i] - streamed.sent[i] - model_first.get(i, 0.0)) * 1000
        for i in streamed.sent
        if i in arrivals
    ]
    row(
        "stream mode, 300 ms model: first text beyond model TTFT p50 / p99 (ms)",
        f"{pct(extra, 0.5):.1f} / {pct(extra, 0.99):.1f}",
    )
    return streamed


async def tool_phase(
    session: aiohttp.ClientSession, url: str, *, tencent: str, pid: int, count: int
) -> tuple[float, float]:
    """Serve's CPU per answer, zero-latency model: a plain answer (the baseline), then an
    answer that takes one tool round trip (the model calls the calculator, is called again
    with the result, answers)."""
    spent = []
    for robot, prefix in ((ROBOT, "tp-"), (TOOL_ROBOT, "tt-")):
        await session.post(f"{tencent}/reset")
        load = Load(session, url, robot)
        before = cpu_s(pid)
        await load.closed_loop(count, 1000, prefix)
        await replies(session, tencent, count)
        spent.append((cpu_s(pid) - before) / count * 1e6)
    return spent[0], spent[1]


@dataclass
class Saturation:
    load: Load
    acks: int = 0
    answered: int = 0
    peak_rss_mb: float = 0.0
    backlog: int = 0
    drain_s: float = 0.0


def metric(text: str, name: str) -> float:
    """The sum of every sample of metric `name` in a Prometheus text page."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def saturation_phase(
    session: aiohttp.ClientSession,
    url: str,
    *,
    tencent: str,
    pid: int,
    seconds: float,
    prefix: str = "sat-",
    drain: bool = True,
) -> Saturation:
    """Phase 6: serve flooded for `seconds`, then left to drain its backlog (`drain`; the
    relay, flooded the same way as the floor, has no backlog to wait for)."""
    await session.post(f"{tencent}/reset")
    flood = Saturation(Load(session, url))
    metrics_url = url.rsplit("/", 1)[0] + "/metrics"
    stop = time.monotonic() + seconds

    async def sample() -> None:
        while time.monotonic() < stop:
            flood.peak_rss_mb = max(flood.peak_rss_mb, rss_mb(pid)[0])
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    flood.acks = await flood.load.closed_loop_for(seconds, 1000, prefix)
    ended = time.monotonic()
    await sampler
    async with session.get(f"{tencent}/stats") as resp:
        arrivals = (await resp.json())["arrivals"]
    flood.answered = sum(
        1 for key, at in arrivals.items() if key.startswith(prefix) and started <= at <= ended
    )
    if not drain:
        return flood
    async with session.get(metrics_url) as resp:
        flood.backlog = int(metric(await resp.text(), "timbridge_queue_depth"))
    async with asyncio.timeout(300):
        while True:
            async with session.get(metrics_url) as resp:
                page = await resp.text()
            if metric(page, "timbridge_queue_depth") == 0:
                break
            await asyncio.sleep(0.5)
    flood.drain_s = time.monotonic() - ended
    return flood


def row(label: str, *values: float | str, ratio: bool = False) -> None:
    """One line of the table: a label, then the baseline's and serve's figures (and their
    ratio when `ratio`)."""
    cells = [v if isinstance(v, str) else f"{v:.2f}" if v < 100 else f"{v:.0f}" for v in values]
    if ratio:
        baseline, measured = values[0], values[1]
        assert isinstance(baseline, float) and isinstance(measured, float)
        cells.append(f"{measured / baseline:.2f}")
    print(f"{label:58}" + "".join(f"{c:>12}" for c in cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--conversations", type=int, default=5000)
    parser.add_argument("--saturate", type=float, default=15, help="seconds of the flood")
    parser.add_argument("--scale", type=int, default=0, help="workers for the scale-out run")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    gc.disable()  # measured: full collections of 135-170 ms here delayed sends mid-phase
    uvloop.run(run_scale(args) if args.scale else run(args))


if __name__ == "__main__":
    main()
