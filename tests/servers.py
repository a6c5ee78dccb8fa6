"""Real Redis and PostgreSQL servers for tests: the machine's own when they run (127.0.0.1:6379,
127.0.0.1:5432 with trust auth), else throwaway ones started from the Debian binaries in a
temporary folder. Tests never share state: each Redis test has its own key prefix, each
PostgreSQL test its own database."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while not _answers(port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start on port {port}")
        time.sleep(0.05)


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A Redis URL: the machine's server, or one started here (killed on exit)."""
    if _answers(6379):
        yield "redis://127.0.0.1:6379/0"
        return
    with redis_server_on(folder) as (url, _restart, _stop):
        yield url


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"no PostgreSQL on 127.0.0.1:5432 and no {name}: .ci/run installs it")
    return found


@contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    """``postgresql://user@127.0.0.1:port``: the machine's server, or a throwaway cluster."""
    if _answers(5432):
        yield "postgresql://postgres@127.0.0.1:5432"
        return
    data = folder / "pgdata"
    user = "postgres"
    env = dict(os.environ)
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the unprivileged postgres user
        subprocess.run(["chown", "-R", "postgres", str(folder)], check=True)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, _pg_bin("initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    port = _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run_as,
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(folder / "pg.log"),
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, "postgres")
        yield f"postgresql://{user}@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )


@contextmanager
def redis_server_on(folder: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A redis-server of this test's own, to stop and restart on the same port:
    ``(url, restart, stop)``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no redis-server: .ci/run installs it")
    port = _free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        _wait_for(port, "redis-server", procs[-1])

    def stop() -> None:
        procs[-1].terminate()
        procs[-1].wait(10)

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", start, stop
    finally:
        if procs[-1].poll() is None:
            stop()
