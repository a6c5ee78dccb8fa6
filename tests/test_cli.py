"""The real ``timbridge`` command in a subprocess, against a Tencent server on loopback."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import TLSSigAPIv2

from tests.conftest import SDKAPPID, SECRET_KEY
from tests.fakes.tencent import ScriptedTencent, fail, ok
from tests.processes import own_env
from timbridge.protocol import usersig

Fixture = tuple[ScriptedTencent, str]


@dataclass
class Result:
    code: int
    out: str
    err: str


def _env(base_url: str | None = None, **extra: str) -> dict[str, str]:
    env = own_env()
    env |= {
        "TIMBRIDGE_TENCENT__SDKAPPID": str(SDKAPPID),
        "TIMBRIDGE_TENCENT__SECRET_KEY": SECRET_KEY,
    }
    if base_url:
        env["TIMBRIDGE_TENCENT__API_BASE"] = base_url
    return env | extra


async def timbridge(*args: str, env: dict[str, str], cwd: Path | None = None) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "timbridge",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def test_usersig_matches_official_hmac(tmp_path: Path) -> None:
    result = await timbridge("usersig", "user01", "--expire", "3600", env=_env(), cwd=tmp_path)
    assert result.code == 0, result.err
    ours = usersig.decode(result.out.strip())
    official = usersig.decode(TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, SECRET_KEY).gen_sig("user01", 3600))
    assert ours.expire == 3600
    again = usersig.decode(
        usersig.sign(SDKAPPID, SECRET_KEY, "user01", expire=3600, now=official.time)
    )
    assert again.sig == official.sig
    if ours.time == official.time:  # same second: the whole signature must agree
        assert ours.sig == official.sig


async def test_usersig_verify_accepts_official_sig(tmp_path: Path) -> None:
    official = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, SECRET_KEY).gen_sig("user01")
    result = await timbridge(
        "usersig", "--verify", official, "--user", "user01", env=_env(), cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert "identifier: user01" in result.out
    assert f"sdkappid: {SDKAPPID}" in result.out


@pytest.mark.parametrize(
    ("sig_of", "fragment"),
    [
        (lambda: TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, "wrong-key").gen_sig("user01"), "bad_signature"),
        (lambda: TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, SECRET_KEY).gen_sig("user02"), "other_user"),
        (
            lambda: (
                TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, SECRET_KEY).gen_sig("user01").rstrip("_")[:-12]
            ),
            "malformed",
        ),
    ],
    ids=["other-key", "other-user", "truncated"],
)
async def test_usersig_verify_rejects(tmp_path: Path, sig_of: object, fragment: str) -> None:
    sig = sig_of()  # type: ignore[operator]
    result = await timbridge(
        "usersig", "--verify", sig, "--user", "user01", env=_env(), cwd=tmp_path
    )
    assert result.code == 1
    assert result.out == ""
    [line] = result.err.strip().splitlines()
    assert line.startswith("error: invalid UserSig: ") and fragment in line


async def test_send_retries_60007_with_same_msgrandom(scripted: Fixture, tmp_path: Path) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", fail(60007, "frequency"), ok(MsgKey="1_2_3", MsgTime=3))
    result = await timbridge(
        "send", "--from", "@RBT#bot", "--to", "user01", "hello", env=_env(base), cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert result.out.strip() == "MsgKey 1_2_3"
    first, second = fake.calls("openim/sendmsg")
    assert first.body["MsgRandom"] == second.body["MsgRandom"]
    assert first.query["random"] != second.query["random"]
    assert first.body["MsgBody"][0]["MsgContent"]["Text"] == "hello"


async def test_send_70107_exits_1_at_once(scripted: Fixture, tmp_path: Path) -> None:
    fake, base = scripted
    fake.script("openim/sendmsg", fail(70107, "To_Account not imported"))
    result = await timbridge(
        "send", "--from", "@RBT#bot", "--to", "ghost", "hello", env=_env(base), cwd=tmp_path
    )
    assert result.code == 1
    assert len(fake.calls("openim/sendmsg")) == 1
    assert "70107 user account not imported" in result.err


async def test_send_group_prints_msgseq(scripted: Fixture, tmp_path: Path) -> None:
    fake, base = scripted
    fake.script("group_open_http_svc/send_group_msg", ok(MsgSeq=42, MsgTime=1))
    result = await timbridge(
        "send", "--from", "@RBT#bot", "--group", "@TGS#1", "hi all", env=_env(base), cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert result.out.strip() == "MsgSeq 42"
    assert fake.received[0].body["GroupId"] == "@TGS#1"


async def test_send_needs_exactly_one_target(tmp_path: Path) -> None:
    result = await timbridge("send", "--from", "@RBT#bot", "hi", env=_env(), cwd=tmp_path)
    assert result.code == 2
    assert "exactly one of --to USER or --group GROUP" in result.err


async def test_robots_commands(scripted: Fixture, tmp_path: Path) -> None:
    fake, base = scripted
    fake.script("openim_robot_http_svc/get_all_robots", ok(Robot_Account=["@RBT#a", "@RBT#b"]))
    created = await timbridge(
        "robots", "create", "@RBT#a", "--nick", "A", env=_env(base), cwd=tmp_path
    )
    listed = await timbridge("robots", "list", env=_env(base), cwd=tmp_path)
    deleted = await timbridge("robots", "delete", "@RBT#a", env=_env(base), cwd=tmp_path)
    assert (created.code, listed.code, deleted.code) == (0, 0, 0)
    assert listed.out.splitlines() == ["@RBT#a", "@RBT#b"]
    assert fake.calls("openim_robot_http_svc/create_robot")[0].body == {
        "UserID": "@RBT#a",
        "Nick": "A",
    }
    assert fake.calls("openim_robot_http_svc/delete_robot")[0].body == {"Robot_Account": "@RBT#a"}
    bad = await timbridge("robots", "create", "helper", env=_env(base), cwd=tmp_path)
    assert bad.code == 2 and "@RBT#" in bad.err


async def test_missing_credentials_exit_2_naming_key(tmp_path: Path) -> None:
    env = own_env()
    result = await timbridge("robots", "list", env=env, cwd=tmp_path)
    assert result.code == 2
    assert "tencent.sdkappid (TIMBRIDGE_TENCENT__SDKAPPID): required" in result.err


async def test_config_file_option(scripted: Fixture, tmp_path: Path) -> None:
    fake, base = scripted
    config = tmp_path / "app.toml"
    config.write_text(f'[tencent]\nsdkappid = {SDKAPPID}\nadmin = "boss"\napi_base = "{base}"\n')
    env = own_env()
    env["TIMBRIDGE_TENCENT__SECRET_KEY"] = SECRET_KEY
    result = await timbridge("robots", "list", "--config", str(config), env=env, cwd=tmp_path)
    assert result.code == 0, result.err
    assert fake.received[0].query["identifier"] == "boss"


async def test_unreachable_tencent_is_one_line(tmp_path: Path) -> None:
    result = await timbridge("robots", "list", env=_env("http://127.0.0.1:9"), cwd=tmp_path)
    assert result.code == 1
    assert "connection failed" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["usersig"],
        ["robots"],
        ["robots", "create"],
        ["robots", "list"],
        ["robots", "delete"],
        ["send"],
    ],
)
async def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    result = await timbridge(*command, "--help", env=_env(), cwd=tmp_path)
    assert result.code == 0
    assert "Usage:" in result.out


async def test_emulator_command_serves_rest_and_page(tmp_path: Path) -> None:
    env = own_env()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "timbridge",
        "emulator",
        "--port",
        "0",
        "--robot",
        "@RBT#demo",
        "--user",
        "alice",
        env=env,
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        banner = []
        async with asyncio.timeout(20):
            while not any("REST API" in line for line in banner):
                banner.append((await proc.stderr.readline()).decode())
        page_line = next(line for line in banner if "chat page" in line)
        base = page_line.split("http://", 1)[1].strip().rstrip("/")
        assert any("SDKAppID 1400000000" in line for line in banner)
        from timbridge.emulator import DEMO_SECRET_KEY

        sig = TLSSigAPIv2.TLSSigAPIv2(1400000000, DEMO_SECRET_KEY).gen_sig("administrator")
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{base}/") as resp:
                assert resp.status == 200
            async with http.post(
                f"http://{base}/v4/openim_robot_http_svc/get_all_robots",
                params={
                    "sdkappid": "1400000000",
                    "identifier": "administrator",
                    "usersig": sig,
                    "random": "1",
                    "contenttype": "json",
                },
                data=b"{}",
            ) as resp:
                assert (await resp.json())["Robot_Account"] == ["@RBT#demo"]
    finally:
        proc.terminate()
        await proc.wait()
    assert proc.returncode == 0


async def test_a_worker_listens_on_loopback_unless_told(tmp_path: Path) -> None:
    result = await timbridge("worker", "--help", env=_env(), cwd=tmp_path)
    assert result.code == 0
    assert "[default: 127.0.0.1]" in " ".join(result.out.split())
