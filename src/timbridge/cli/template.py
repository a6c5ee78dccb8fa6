"""The commented ``timbridge.toml`` that `timbridge init` writes for a real Tencent app."""

from __future__ import annotations

from timbridge.errors import ConfigError
from timbridge.llm.registry import PROVIDERS
from timbridge.protocol.accounts import NOT_A_ROBOT, ROBOT_PREFIX, is_robot
from timbridge.settings import REGION_HOSTS

__all__ = ["render_config"]

_TEMPLATE = """\
# timbridge configuration (every key: the README's configuration table).
# Every key can be overridden by TIMBRIDGE_<SECTION>__<KEY>; secrets live only in the environment:
#   export TIMBRIDGE_TENCENT__SECRET_KEY=...      # console → your app → Basic configuration → key
#   export TIMBRIDGE_TENCENT__CALLBACK_TOKEN=...  # console → callback configuration → auth token
{key_line}
# Then: timbridge check

[tencent]
{sdkappid_line}
admin = "administrator"          # an app admin account: REST calls are made as it
region = "{region}"{region_pad}# data centre: {regions}
# api_base = "http://127.0.0.1:9000"   # overrides region: a local emulator or a proxy

[server]
host = "0.0.0.0"
port = 8080
path = "/im"                     # the console's callback URL must end with this path

[store]
url = "sqlite:///timbridge.db"   # or postgresql://user@host/db

[coordination]
url = "memory://"

[models.default]
provider = "{provider}"{provider_pad}# {providers}
{model_lines}timeout_s = 60
retries = 2
fallback = []                    # other [models.*] profiles to try when this one fails

[[robots]]
id = "{robot}"
nick = "{nick}"
model = "default"
persona = "You are a helpful assistant. Answer briefly."
group_context = "group"          # group: one history per group; member: one per member
reply_mode = "off"
messages_per_minute = 20         # per user; 0 = no limit
# knowledge = "faq"              # a knowledge base: timbridge kb ingest docs/ --kb faq
"""


def _pad(value: str, width: int = 22) -> str:
    return " " * max(1, width - len(value))


def render_config(*, sdkappid: int | None, region: str, robot: str, provider: str) -> str:
    """The file's text; `ConfigError` for a region, robot or provider that cannot work."""
    if region not in REGION_HOSTS:
        raise ConfigError("tencent.region", f"one of {', '.join(REGION_HOSTS)} (got {region!r})")
    if not is_robot(robot):
        raise ConfigError("robots[0].id", f"{NOT_A_ROBOT} (got {robot!r})")
    found = PROVIDERS.get(provider)
    if found is None:
        raise ConfigError("models.default.provider", f"one of {', '.join(PROVIDERS)}")
    if found.api_key_env:
        key_line = f"#   export {found.api_key_env}=...   # the {provider} API key"
    else:
        key_line = "#   (this provider needs no API key)"
    if found.model:
        model_lines = f'# model = "{found.model}"          # the preset\'s; set to choose another\n'
    elif found.family == "offline":
        model_lines = ""
    elif found.family == "openai":
        model_lines = 'model = ""                       # required: the served model\'s name\n'
    else:
        model_lines = 'model = ""                       # required: the model name\n'
    sdkappid_line = (
        f"sdkappid = {sdkappid}"
        if sdkappid is not None
        else "# sdkappid = 1400000000          # required: your app's SDKAppID"
    )
    return _TEMPLATE.format(
        key_line=key_line,
        sdkappid_line=sdkappid_line,
        region=region,
        region_pad=_pad(f'region = "{region}"', 33),
        regions=", ".join(REGION_HOSTS),
        provider=provider,
        provider_pad=_pad(f'provider = "{provider}"', 33),
        providers=", ".join(PROVIDERS),
        model_lines=model_lines,
        robot=robot,
        nick=robot.removeprefix(ROBOT_PREFIX),
    )
