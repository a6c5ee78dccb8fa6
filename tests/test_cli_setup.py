"""`timbridge kb …`, `init` and `check` as a user runs them: the real command in a subprocess,
against the emulator and a fake OpenAI server on loopback."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import structlog
from aiohttp.test_utils import TestServer

from tests.fakes.openai import Failure, FakeOpenAI
from tests.test_cli import _env, timbridge
from timbridge.emulator import Emulator, EmulatorConfig
from timbridge.logs import configure_logging
from timbridge.redact import public_url, remember
from timbridge.settings import Settings

APP = 1400000555
KEY = "check-secret-key"

pytestmark = pytest.mark.usefixtures("clean_env")


# --- kb -----------------------------------------------------------------------------------


async def test_kb_ingest_search_list_drop(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns.md").write_text(
        "# Returns\nItems can be returned within 30 days with the receipt.\n", encoding="utf-8"
    )
    (docs / "faq.jsonl").write_text(
        '{"question": "Do you ship to Europe?", "answer": "Yes, in 3 to 5 days."}\n',
        encoding="utf-8",
    )
    (docs / "bad.csv").write_text("title\nx\n", encoding="utf-8")
    env = _env(TIMBRIDGE_STORE__URL=f"sqlite:///{tmp_path / 'kb.db'}")

    ingest = await timbridge("kb", "ingest", str(docs), "--kb", "shop", env=env, cwd=tmp_path)
    assert ingest.code == 1  # one file failed: said, and the rest is in
    assert "shop: 2 added, 0 updated, 0 unchanged, 1 failed; 2 passages embedded" in ingest.out
    assert "bad.csv: row 2: needs text fields 'question' and 'answer'" in ingest.err

    search = await timbridge(
        "kb", "search", "how many days do I have to return an item?", "--kb", "shop", env=env
    )
    assert search.code == 0, search.err
    assert search.out.splitlines()[0].endswith("returns.md › Returns")
    nothing = await timbridge("kb", "search", "football scores", "--kb", "shop", env=env)
    assert nothing.code == 1 and "no passage scores over knowledge.min_score" in nothing.out
    unknown = await timbridge("kb", "search", "x", "--kb", "nope", env=env)
    assert unknown.code == 1 and "no knowledge base named 'nope'" in unknown.err

    listed = await timbridge("kb", "list", env=env)
    assert listed.out.split("\t")[:3] == ["shop", "2 documents", "2 passages"]
    assert (await timbridge("kb", "drop", "--kb", "shop", env=env)).out == "dropped shop\n"
    again = await timbridge("kb", "drop", "--kb", "shop", env=env)
    assert again.code == 1 and "no knowledge base named 'shop'" in again.err
    empty = await timbridge("kb", "ingest", str(tmp_path / "missing"), "--kb", "x", env=env)
    assert empty.code == 1 and "missing: No such file or directory" in empty.err


# --- init ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["deepseek", "vllm", "anthropic", "offline"])
async def test_init_writes_a_config_that_loads(tmp_path: Path, provider: str) -> None:
    result = await timbridge(
        "init",
        "--sdkappid",
        "1400123456",
        "--region",
        "tokyo",
        "--robot",
        "@RBT#shop",
        "--provider",
        provider,
        env=_env(),
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    data = tomllib.loads((tmp_path / "timbridge.toml").read_text(encoding="utf-8"))
    settings = Settings(**data)
    assert settings.tencent.sdkappid == 1400123456 and settings.tencent.region == "tokyo"
    assert settings.robots[0].id == "@RBT#shop"
    assert settings.models["default"].provider == provider
    again = await timbridge("init", env=_env(), cwd=tmp_path)
    assert again.code == 2 and "timbridge.toml exists; use --force" in again.err


async def test_init_refuses_what_cannot_work(tmp_path: Path) -> None:
    bad = await timbridge("init", "--region", "mars", env=_env(), cwd=tmp_path)
    assert bad.code == 2 and "tencent.region: one of china, singapore" in bad.err
    bad = await timbridge("init", "--robot", "helper", env=_env(), cwd=tmp_path)
    assert bad.code == 2 and "must start with @RBT#" in bad.err
    assert not (tmp_path / "timbridge.toml").exists()


# --- check --------------------------------------------------------------------------------


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeOpenAI, str, str]]:
    llm = FakeOpenAI()
    emu = Emulator(EmulatorConfig(sdkappid=APP, secret_key=KEY, robots=("@RBT#shop",)))
    llm_server = TestServer(llm.app(), host="127.0.0.1", port=0)
    emu_server = TestServer(emu.create_app(), host="127.0.0.1", port=0)
    await llm_server.start_server()
    await emu_server.start_server()
    try:
        yield llm, str(emu_server.make_url("")).rstrip("/"), str(llm_server.make_url("/v1"))
    finally:
        await emu_server.close()
        await llm_server.close()


def _check_env(**extra: str) -> dict[str, str]:
    """The environment with the secrets given and nothing else of ours: the file says the rest."""
    env = _env(**extra)
    env.pop("TIMBRIDGE_TENCENT__SDKAPPID")
    if "TIMBRIDGE_TENCENT__SECRET_KEY" not in extra:
        env.pop("TIMBRIDGE_TENCENT__SECRET_KEY")
    return env


def _config(tmp_path: Path, emulator: str, llm: str, robots: list[str]) -> Path:
    robot_tables = "".join(f'[[robots]]\nid = "{r}"\n' for r in robots)
    path = tmp_path / "timbridge.toml"
    path.write_text(
        f'[tencent]\nsdkappid = {APP}\napi_base = "{emulator}"\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "t.db"}"\n'
        f'[models.default]\nprovider = "openai"\nbase_url = "{llm}"\nmodel = "fake"\n'
        f"retries = 0\n{robot_tables}",
        encoding="utf-8",
    )
    return path


async def test_check_passes_a_good_setup(
    tmp_path: Path, servers: tuple[FakeOpenAI, str, str]
) -> None:
    llm, emulator, llm_url = servers
    config = _config(tmp_path, emulator, llm_url, ["@RBT#shop"])
    env = _check_env(TIMBRIDGE_TENCENT__SECRET_KEY=KEY, TIMBRIDGE_TENCENT__CALLBACK_TOKEN="t")
    result = await timbridge("check", "--config", str(config), env=env, cwd=tmp_path)
    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert lines[0] == "ok    usersig: signed and verified for administrator"
    assert f"ok    tencent: {emulator} answers get_all_robots (1 robots)" in lines
    assert "ok    robot @RBT#shop: exists in the app" in lines
    assert any(line.startswith("ok    model default: openai:fake answered") for line in lines)
    assert lines[-1] == "7 checks, 0 failed"
    assert llm.requests[0]["messages"][-1]["content"] == "Are you there?"


async def test_check_names_each_failure_with_its_fix(
    tmp_path: Path, servers: tuple[FakeOpenAI, str, str]
) -> None:
    llm, emulator, llm_url = servers
    llm.fail(Failure(status=500))
    config = _config(tmp_path, emulator, llm_url, ["@RBT#shop", "@RBT#ghost"])
    env = _check_env(TIMBRIDGE_TENCENT__SECRET_KEY=KEY)
    result = await timbridge("check", "--config", str(config), env=env, cwd=tmp_path)
    assert result.code == 1
    out = result.out
    assert "FAIL  robot @RBT#ghost: not found in the app\n" in out
    assert "      fix: timbridge robots create '@RBT#ghost' --nick Robot\n" in out
    assert "FAIL  model default: " in out and "500" in out
    assert "warn  webhook: path /im; webhooks are accepted unsigned" in out
    assert out.splitlines()[-1] == "8 checks, 2 failed"

    wrong_key = _check_env(TIMBRIDGE_TENCENT__SECRET_KEY="not-the-key")
    result = await timbridge("check", "--config", str(config), env=wrong_key, cwd=tmp_path)
    assert result.code == 1
    assert "ErrorCode 70009" in result.out
    assert "fix: check TIMBRIDGE_TENCENT__SECRET_KEY and tencent.sdkappid" in result.out
    assert "warn  robot @RBT#shop: not checked: Tencent is unreachable" in result.out

    no_key = _check_env()
    result = await timbridge("check", "--config", str(config), env=no_key, cwd=tmp_path)
    assert result.code == 1
    assert (
        "FAIL  usersig: tencent.secret_key (TIMBRIDGE_TENCENT__SECRET_KEY): required" in result.out
    )


async def test_check_reports_redis_coordination(
    tmp_path: Path, servers: tuple[FakeOpenAI, str, str], redis_url: str, redis_prefix: str
) -> None:
    _llm, emulator, llm_url = servers
    config = _config(tmp_path, emulator, llm_url, ["@RBT#shop"])
    good = _check_env(
        TIMBRIDGE_TENCENT__SECRET_KEY=KEY,
        TIMBRIDGE_COORDINATION__URL=redis_url,
        TIMBRIDGE_COORDINATION__PREFIX=redis_prefix,
    )
    redis = aioredis.Redis.from_url(redis_url)
    appendonly = (await redis.config_get("appendonly"))["appendonly"]
    try:
        await redis.config_set("appendonly", "no")
        result = await timbridge("check", "--config", str(config), env=good, cwd=tmp_path)
        assert (
            f"warn coordination: {public_url(redis_url)} answers, but Redis keeps no "
            "append-only file (appendonly no): messages acknowledged but not yet answered are "
            "lost if Redis restarts"
        ) in " ".join(result.out.split())
        assert "fix: in redis.conf: appendonly yes, appendfsync everysec" in result.out
        await redis.config_set("appendonly", "yes")
        result = await timbridge("check", "--config", str(config), env=good, cwd=tmp_path)
        shown = public_url(redis_url)
        assert f"ok    coordination: {shown} answers (0 jobs queued)" in result.out
    finally:
        await redis.config_set("appendonly", appendonly)
        await redis.aclose()
    bad = good | {"TIMBRIDGE_COORDINATION__URL": "redis://127.0.0.1:1/0"}
    result = await timbridge("check", "--config", str(config), env=bad, cwd=tmp_path)
    assert result.code == 1
    assert "FAIL  coordination: redis redis://127.0.0.1:1/0: ping: " in result.out
    assert "fix: check coordination.url and that Redis is up" in result.out


async def test_check_never_shows_an_api_key_a_provider_echoes_and_says_which_url_it_tried(
    tmp_path: Path, servers: tuple[FakeOpenAI, str, str]
) -> None:
    llm, emulator, llm_url = servers
    secret = "sk-live-0123456789abcdef"
    llm.fail(Failure(status=401, message=f"Incorrect API key provided: {secret}."))
    config = _config(tmp_path, emulator, llm_url, ["@RBT#shop"])
    text = config.read_text(encoding="utf-8").replace(
        'model = "fake"\n', 'model = "fake"\napi_key_env = "SHOP_KEY"\n'
    )
    config.write_text(text, encoding="utf-8")
    env = _check_env(TIMBRIDGE_TENCENT__SECRET_KEY=KEY, SHOP_KEY=secret)
    result = await timbridge("check", "--config", str(config), env=env, cwd=tmp_path)
    assert result.code == 1
    assert llm.headers[0]["authorization"] == f"Bearer {secret}"  # it was sent, and echoed
    assert secret not in result.out + result.err
    assert "Incorrect API key provided: [redacted]." in result.out
    assert f"(tried {llm_url})" in result.out
    assert KEY not in result.out + result.err


def test_logs_never_carry_a_configured_secret(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "hunter2-but-longer"
    remember([secret])
    saved = structlog.get_config()
    try:
        configure_logging("json")
        structlog.configure(cache_logger_on_first_use=False)  # nothing keeps the captured stream
        try:
            raise RuntimeError(f"upstream said: bad key {secret}")
        except RuntimeError as exc:
            structlog.get_logger("t").error(
                "model.failed", error=str(exc), exc_info=True, note=f"key={secret}"
            )
        configure_logging("console")
        structlog.configure(cache_logger_on_first_use=False)
        structlog.get_logger("t").warning("again", error=f"{secret}!")
    finally:
        structlog.configure(**saved)
    err = capsys.readouterr().err
    assert secret not in err
    assert err.count("[redacted]") >= 4  # the field, the note, the traceback, the console line


async def test_check_says_when_the_environment_hides_a_file_value(
    tmp_path: Path, servers: tuple[FakeOpenAI, str, str]
) -> None:
    _, emulator, llm_url = servers
    config = _config(tmp_path, emulator, llm_url, ["@RBT#shop"])
    config.write_text(config.read_text(encoding="utf-8") + "[server]\nport = 99999\n")
    env = _check_env(TIMBRIDGE_TENCENT__SECRET_KEY=KEY, TIMBRIDGE_SERVER__PORT="8080")
    result = await timbridge("check", "--config", str(config), env=env, cwd=tmp_path)
    assert (
        "warn  config: server.port in the file is not used: TIMBRIDGE_SERVER__PORT overrides it"
        in result.out.splitlines()
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:pw@db:5432/timbridge?sslmode=require", "postgresql://db:5432/timbridge"),
        ("redis://:pw@localhost:6379/0", "redis://localhost:6379/0"),
        ("sqlite:///var/lib/timbridge.db", "sqlite:///var/lib/timbridge.db"),
        ("https://key@api.example.com/v1?key=sk-1", "https://api.example.com/v1"),
        ("memory://", "memory://"),
        ("http://[::1]:8080/im", "http://[::1]:8080/im"),
    ],
)
def test_every_url_shown_in_messages_loses_its_credentials_and_query(url: str, shown: str) -> None:
    assert public_url(url) == shown
