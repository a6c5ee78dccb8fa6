"""Settings: file + environment, secrets from the environment only, one-line errors naming keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from timbridge.errors import ConfigError
from timbridge.settings import REGION_HOSTS, Settings, env_name, load_settings

pytestmark = pytest.mark.usefixtures("clean_env")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "timbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_defaults_without_any_file() -> None:
    settings = load_settings()
    assert settings.tencent.sdkappid is None
    assert settings.tencent.region == "singapore"
    assert settings.tencent.base_url == "https://adminapisgp.im.qcloud.com"
    assert settings.server.path == "/im"
    assert settings.server.max_body_bytes == 1024 * 1024
    assert settings.store.url == "sqlite:///timbridge.db"
    assert settings.coordination.url == "memory://"
    assert list(settings.models) == ["default"]
    assert settings.robots == ()


def test_file_is_read_from_working_directory(tmp_path: Path) -> None:
    _write(tmp_path, '[tencent]\nsdkappid = 1400000123\nregion = "china"\n')
    settings = load_settings()
    assert settings.tencent.sdkappid == 1400000123
    assert settings.tencent.base_url == "https://console.tim.qq.com"


@pytest.mark.parametrize(("region", "host"), sorted(REGION_HOSTS.items()))
def test_every_region_maps_to_its_host(tmp_path: Path, region: str, host: str) -> None:
    path = _write(tmp_path, f'[tencent]\nregion = "{region}"\n')
    assert load_settings(path).tencent.base_url == f"https://{host}"


def test_api_base_overrides_region(tmp_path: Path) -> None:
    path = _write(tmp_path, '[tencent]\nregion = "china"\napi_base = "http://127.0.0.1:9000/"\n')
    assert load_settings(path).tencent.base_url == "http://127.0.0.1:9000"


def test_environment_wins_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, '[tencent]\nsdkappid = 1\nadmin = "boss"\n[server]\nport = 1000\n')
    monkeypatch.setenv("TIMBRIDGE_TENCENT__SDKAPPID", "1400000999")
    monkeypatch.setenv("TIMBRIDGE_SERVER__PORT", "9090")
    settings = load_settings(path)
    assert settings.tencent.sdkappid == 1400000999
    assert settings.tencent.admin == "boss"  # untouched keys of the same section survive
    assert settings.server.port == 9090


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 7777\n", encoding="utf-8")
    monkeypatch.setenv("TIMBRIDGE_CONFIG", str(other))
    assert load_settings().server.port == 7777


def test_secrets_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMBRIDGE_TENCENT__SDKAPPID", "1400000000")
    monkeypatch.setenv("TIMBRIDGE_TENCENT__SECRET_KEY", "s3cret")
    monkeypatch.setenv("TIMBRIDGE_TENCENT__CALLBACK_TOKEN", "zq9-token-value")
    settings = load_settings()
    assert settings.tencent.credentials() == (1400000000, "s3cret")
    assert settings.tencent.callback_token is not None
    assert "s3cret" not in repr(settings)
    assert "zq9-token-value" not in str(settings.model_dump())


@pytest.mark.parametrize("key", ["secret_key", "callback_token"])
def test_secret_in_file_is_refused(tmp_path: Path, key: str) -> None:
    path = _write(tmp_path, f'[tencent]\n{key} = "oops"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.key == f"tencent.{key}"
    assert f"TIMBRIDGE_TENCENT__{key.upper()}" in str(caught.value)
    assert "oops" not in str(caught.value)


def test_missing_credentials_name_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings().tencent.credentials()
    assert str(caught.value).startswith("tencent.sdkappid (TIMBRIDGE_TENCENT__SDKAPPID): required")


@pytest.mark.parametrize(
    ("toml", "key", "fragment"),
    [
        ("[tencent]\nsdkappid = 'abc'\n", "tencent.sdkappid", "a number, not the string 'abc'"),
        ("[tencent]\nsdkappid = -5\n", "tencent.sdkappid", "greater than 0"),
        ("[tencent]\nregion = 'mars'\n", "tencent.region", "'china'"),
        ("[tencent]\napi_base = 'ftp://x'\n", "tencent.api_base", "http://"),
        ("[tencent]\nadmin = ''\n", "tencent.admin", "must not be empty"),
        ("[tencent]\nsdkapid = 1\n", "tencent.sdkapid", "unknown key"),
        ("[server]\nport = 70000\n", "server.port", "less than or equal to 65535"),
        ("[server]\nport = '8080'\n", "server.port", "not the string '8080'"),
        ("[models.a]\ntimeout_s = '5'\n", "models.a.timeout_s", "leave out the quotes"),
        ("[[robots]]\nid = '@RBT#x'\ncite_sources = 'yes'\n", "robots[0].cite_sources", "true"),
        ("[server]\npath = 'im'\n", "server.path", "must start with /"),
        ("[store]\nurl = 'mysql://x'\n", "store.url", "sqlite://"),
        ("[coordination]\nurl = 'kafka://x'\n", "coordination.url", "redis://"),
        ("[[robots]]\nid = 'helper'\n", "robots[0].id", "must start with @RBT#"),
        ("[[robots]]\nid = '@RBT#x'\nmodel = 'gpt'\n", "robots[0].model", "unknown profile"),
        (
            "[[robots]]\nid = '@RBT#x'\n[[robots]]\nid = '@RBT#x'\n",
            "robots[1].id",
            "configured twice",
        ),
        ("[models.a]\nfallback = ['b']\n", "models.a.fallback", "unknown profile 'b'"),
        ("[[robots]]\nid = '@RBT#x'\nreply_mode = 'loud'\n", "robots[0].reply_mode", "stream"),
    ],
)
def test_bad_value_names_key(tmp_path: Path, toml: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, toml))
    message = str(caught.value)
    assert caught.value.key == key
    assert message.startswith(key)
    assert fragment in message
    assert "\n" not in message


def test_bad_environment_value_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMBRIDGE_SERVER__PORT", "eighty")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("server.port (TIMBRIDGE_SERVER__PORT): ")
    assert "'eighty'" in str(caught.value)


def test_unreadable_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_write(tmp_path, "[tencent\n"))


def test_robots_and_models(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[models.default]
provider = "openai"
base_url = "https://api.deepseek.com/v1"
model = "deepseek-chat"
api_key_env = "DEEPSEEK_API_KEY"
fallback = ["backup"]

[models.backup]
provider = "anthropic"
model = "claude-sonnet"

[[robots]]
id = "@RBT#001"
nick = "MyRobot"
persona = "You are terse."
group_context = "member"
reply_mode = "stream"
""",
    )
    settings = load_settings(path)
    assert settings.models["default"].fallback == ("backup",)
    robot = settings.robot("@RBT#001")
    assert robot is not None and robot.group_context == "member"
    assert settings.robot("@RBT#nope") is None


def test_env_name() -> None:
    assert env_name("tencent.sdkappid") == "TIMBRIDGE_TENCENT__SDKAPPID"
    assert isinstance(Settings(), Settings)
