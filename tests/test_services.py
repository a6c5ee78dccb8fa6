"""Services refuse configurations they cannot run, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from timbridge.errors import ConfigError
from timbridge.services import Services, build_model
from timbridge.settings import ModelProfile, Settings

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize("provider", ["offline", "gemini"])
def test_unbuilt_providers_name_the_key(provider: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_model("main", ModelProfile(provider=provider))  # type: ignore[arg-type]
    assert caught.value.key == "models.main.provider"
    assert "openai" in str(caught.value)


def test_openai_profile_needs_a_model_name() -> None:
    with pytest.raises(ConfigError, match=r"models.main.model: required"):
        build_model("main", ModelProfile(provider="openai"))


def test_empty_api_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "")
    profile = ModelProfile(provider="openai", model="m", api_key_env="MY_KEY")
    with pytest.raises(ConfigError) as caught:
        build_model("main", profile)
    assert caught.value.key == "models.main.api_key_env"
    assert "MY_KEY" in str(caught.value)
    monkeypatch.setenv("MY_KEY", "sk-123")
    assert build_model("main", profile).name == "openai:m"


async def test_services_refuse_redis_coordination_for_now(tmp_path: Path) -> None:
    settings = Settings(
        tencent={"sdkappid": 1400000000, "secret_key": SecretStr("k")},
        store={"url": f"sqlite:///{tmp_path / 'db'}"},
        coordination={"url": "redis://127.0.0.1:6379/0"},
        models={
            "default": {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
        },
        robots=[{"id": "@RBT#a"}],
    )
    with pytest.raises(ConfigError, match=r"coordination\.url"):
        async with Services.open(settings):
            pass


async def test_services_need_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tencent\.sdkappid"):
        async with Services.open(Settings()):
            pass
