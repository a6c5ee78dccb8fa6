"""Services refuse configurations they cannot run, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from timbridge.errors import ConfigError
from timbridge.llm.build import build_model
from timbridge.runtime.services import Services
from timbridge.settings import ModelProfile, Settings

pytestmark = pytest.mark.usefixtures("clean_env")


def test_the_offline_provider_needs_no_key() -> None:
    assert build_model("main", ModelProfile(provider="offline")).name == "offline:retrieval"


def test_empty_api_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "")
    profile = ModelProfile(provider="openai", model="m", api_key_env="MY_KEY")
    with pytest.raises(ConfigError) as caught:
        build_model("main", profile)
    assert caught.value.key == "models.main.api_key_env"
    assert "MY_KEY" in str(caught.value)
    monkeypatch.setenv("MY_KEY", "sk-123")
    assert build_model("main", profile).name == "openai:m"


async def test_services_pick_the_coordinator_from_the_url(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    from timbridge.coordination.local import LocalCoordinator
    from timbridge.coordination.redis import RedisCoordinator

    settings = Settings(
        tencent={"sdkappid": 1400000000, "secret_key": SecretStr("k")},
        store={"url": f"sqlite:///{tmp_path / 'db'}"},
        coordination={"url": redis_url, "prefix": redis_prefix},
        models={
            "default": {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
        },
        robots=[{"id": "@RBT#a"}],
    )
    async with Services.open(settings) as services:
        assert isinstance(services.coordination, RedisCoordinator)
        await services.coordination.ping()
    local = settings.model_copy(
        update={"coordination": settings.coordination.model_copy(update={"url": "memory://"})}
    )
    async with Services.open(local) as services:
        assert isinstance(services.coordination, LocalCoordinator)


async def test_services_need_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tencent\.sdkappid"):
        async with Services.open(Settings()):
            pass


@pytest.mark.parametrize(
    ("provider", "base", "model", "key_env"),
    [
        ("openai", "https://api.openai.com/v1/", "gpt-4o-mini", "OPENAI_API_KEY"),
        ("deepseek", "https://api.deepseek.com/v1/", "deepseek-chat", "DEEPSEEK_API_KEY"),
        ("minimax", "https://api.minimax.io/v1/", "MiniMax-M2.5", "MINIMAX_API_KEY"),
        (
            "qwen",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/",
            "qwen-plus",
            "DASHSCOPE_API_KEY",
        ),
        ("moonshot", "https://api.moonshot.ai/v1/", "moonshot-v1-8k", "MOONSHOT_API_KEY"),
        ("ollama", "http://127.0.0.1:11434/v1/", "llama3.2", None),
    ],
)
def test_presets_fill_endpoint_model_and_key(
    monkeypatch: pytest.MonkeyPatch, provider: str, base: str, model: str, key_env: str | None
) -> None:
    from timbridge.llm.providers.openai import OpenAICompatible

    if key_env is not None:
        with pytest.raises(ConfigError, match=key_env):
            build_model("m", ModelProfile(provider=provider))  # type: ignore[arg-type]
        monkeypatch.setenv(key_env, "sk-x")
    built = build_model("m", ModelProfile(provider=provider))  # type: ignore[arg-type]
    assert isinstance(built, OpenAICompatible)
    assert built.name == f"{provider}:{model}"
    assert built.base_url == base
    custom = build_model(
        "m",
        ModelProfile(
            provider=provider,
            model="mine",  # type: ignore[arg-type]
            base_url="http://127.0.0.1:1/v1",
        ),
    )
    assert custom.name == f"{provider}:mine"


def test_vllm_preset_needs_a_model() -> None:
    with pytest.raises(ConfigError, match=r"models\.m\.model: required for provider vllm"):
        build_model("m", ModelProfile(provider="vllm"))


async def test_alias_provider_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.openai import FakeOpenAI
    from tests.stack import running_stack

    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deep")
    llm = FakeOpenAI()
    async with running_stack(
        tmp_path, llm=llm, model_options={"provider": "deepseek", "model": ""}
    ) as stack:
        stack.emu.user_send("alice", "@RBT#helper", "via preset")
        reply = await stack.emu.wait_message(from_="@RBT#helper", to="alice")
        assert reply.text == "echo: via preset"
        assert llm.requests[0]["model"] == "deepseek-chat"  # the preset's default model
