"""The configuration tree: every section and key, its type, default and checks. `Settings` is
the root; `settings.loading` reads it from the file and the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from timbridge.errors import ConfigError
from timbridge.protocol.accounts import NOT_A_ROBOT, is_robot
from timbridge.redact import remember

__all__ = [
    "ENV_PREFIX",
    "REGION_HOSTS",
    "CoordinationSettings",
    "KnowledgeSettings",
    "McpServerSettings",
    "MediaSettings",
    "ModelProfile",
    "RobotSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "TencentSettings",
    "ToolsSettings",
    "env_name",
]

ENV_PREFIX = "TIMBRIDGE_"

Region = Literal[
    "china", "singapore", "seoul", "tokyo", "frankfurt", "usa", "jakarta", "mumbai", "riyadh"
]

#: Tencent's REST host for each data-centre region (protocol reference §1.2).
REGION_HOSTS: Mapping[str, str] = {
    "china": "console.tim.qq.com",
    "singapore": "adminapisgp.im.qcloud.com",
    "seoul": "adminapikr.im.qcloud.com",
    "tokyo": "adminapijpn.im.qcloud.com",
    "frankfurt": "adminapiger.im.qcloud.com",
    "usa": "adminapiusa.im.qcloud.com",
    "jakarta": "adminapiidn.im.qcloud.com",
    "mumbai": "adminapiind.im.qcloud.com",
    "riyadh": "adminapiksa.im.qcloud.com",
}

_MAX_USERID_BYTES = 32


def env_name(key: str) -> str:
    """The variable for a dotted key: ``tencent.sdkappid`` → ``TIMBRIDGE_TENCENT__SDKAPPID``."""
    return ENV_PREFIX + key.replace(".", "__").upper()


def _check_user_id(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if not value.isascii() or not value.isprintable():
        raise ValueError("must be printable ASCII")
    if len(value.encode()) > _MAX_USERID_BYTES:
        raise ValueError(f"must be at most {_MAX_USERID_BYTES} bytes")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TencentSettings(_Section):
    """Which Tencent Chat app to talk to, and how."""

    sdkappid: Annotated[int, Field(gt=0, lt=2**32)] | None = None
    admin: str = "administrator"
    region: Region = "singapore"
    api_base: str | None = None
    secret_key: SecretStr | None = None
    callback_token: SecretStr | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    api_rate_limit: Annotated[float, Field(gt=0)] = 200.0
    group_rate_limit: Annotated[float, Field(gt=0)] = 40.0

    @field_validator("admin")
    @classmethod
    def _admin_is_user_id(cls, value: str) -> str:
        return _check_user_id(value)

    @field_validator("api_base")
    @classmethod
    def _api_base_is_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def base_url(self) -> str:
        """Where REST calls go: `api_base` when set, else the region's host over HTTPS."""
        return self.api_base or f"https://{REGION_HOSTS[self.region]}"

    def credentials(self) -> tuple[int, str]:
        """``(sdkappid, secret_key)``, or `ConfigError` naming the one that is missing."""
        if self.sdkappid is None:
            raise ConfigError(
                "tencent.sdkappid",
                "required: the SDKAppID from the Tencent Chat console",
                env=env_name("tencent.sdkappid"),
            )
        if self.secret_key is None or not self.secret_key.get_secret_value():
            raise ConfigError(
                "tencent.secret_key",
                "required: the app's secret key, from the environment only",
                env=env_name("tencent.secret_key"),
            )
        return self.sdkappid, self.secret_key.get_secret_value()


class ServerSettings(_Section):
    """The webhook HTTP server and the workers behind it."""

    host: str = "0.0.0.0"  # a server listens on every interface unless told otherwise
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    path: str = "/im"
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    model_concurrency: Annotated[int, Field(ge=1)] = 256
    ack_first_s: Annotated[float, Field(ge=0)] = 5.0
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 20.0
    #: A message that waited longer than this before its answer could start is not sent to
    #: the model: the user gets the robot's `busy_text` instead (0: never shed).
    max_wait_s: Annotated[float, Field(ge=0)] = 30.0
    #: At most one busy notice per conversation within this many seconds.
    busy_notice_every_s: Annotated[float, Field(ge=0)] = 300.0
    #: Runs of a job whose store fails before its answer goes out (0.5 s, 1 s, … apart; a
    #: scale-out worker takes no work meanwhile) before the user gets the apology.
    store_tries: Annotated[int, Field(ge=1, le=10)] = 3
    #: Accepted jobs held in memory at most (embedded mode); the rest wait in the inbox.
    jobs_in_memory: Annotated[int, Field(ge=16)] = 2048
    #: ... and at most this many bytes of their webhook bodies.
    jobs_in_memory_bytes: Annotated[int, Field(ge=1024 * 1024)] = 32 * 1024 * 1024

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class StoreSettings(_Section):
    """Where history, usage and sent replies live."""

    url: str = "sqlite:///timbridge.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value


class CoordinationSettings(_Section):
    """Queue, dedupe, ordering and rate limits: in-process or Redis."""

    url: str = "memory://"
    prefix: str = "timbridge"
    visibility_s: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must start with memory:// or redis://")
        return value


class KnowledgeSettings(_Section):
    """How knowledge bases are embedded and searched."""

    embedder: Literal["local", "openai"] = "local"
    base_url: str | None = None
    model: str = "text-embedding-3-small"
    api_key_env: str = "OPENAI_API_KEY"
    top_k: Annotated[int, Field(ge=1, le=20)] = 3
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.35


class ToolsSettings(_Section):
    """How robots with `tools` run them: the model may call tools, read their results and call
    again, up to `max_steps` model calls per answer; each call within `timeout_s`, its result
    cut at `max_result_chars`."""

    max_steps: Annotated[int, Field(ge=1, le=16)] = 4
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    max_result_chars: Annotated[int, Field(ge=100, le=100_000)] = 8000
    #: Hosts `fetch_url` may fetch from (shell patterns: ``docs.example.com``, ``*.gov.cn``).
    fetch_allowed_hosts: tuple[str, ...] = ()
    #: Whether those hosts may resolve to loopback or private addresses (an intranet wiki).
    fetch_allow_private: bool = False
    fetch_max_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 2 * 1024 * 1024
    fetch_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class ScheduleSettings(_Section):
    """A message a robot sends on a schedule: a fixed `text`, or the model's answer to a
    `prompt` (a daily check-in), to users (`to`) and groups (`groups`), at the times of a cron
    expression read in the robot's `time_zone`."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    cron: str
    to: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    text: str | None = Field(default=None, min_length=1, max_length=4000)
    prompt: str | None = Field(default=None, min_length=1, max_length=4000)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from timbridge.settings.cron import valid_cron  # noqa: PLC0415 - croniter only here

        if not valid_cron(value):
            raise ValueError(f"not a cron expression (minute hour day month weekday): {value!r}")
        return value

    @model_validator(mode="after")
    def _what_and_whom(self) -> ScheduleSettings:
        if (self.text is None) == (self.prompt is None):
            raise ValueError("give either text (sent as is) or prompt (the model answers it)")
        if not self.to and not self.groups:
            raise ValueError("give the users (to) or the groups (groups) it goes to")
        return self


class RemindersSettings(_Section):
    """Sending what users asked to be reminded of (``/remind``, the ``schedule`` tool)."""

    #: How often the workers look for due reminders.
    every_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    #: A reminder found this late (the service was down) is still sent, saying how late; later
    #: than this it is dropped as missed.
    grace_s: Annotated[float, Field(ge=0)] = 6 * 3600.0
    #: The most pending reminders one user may have with one robot.
    per_user: Annotated[int, Field(ge=1, le=1000)] = 50


class MemorySettings(_Section):
    """Long-term memory: what robots with ``memory = "long"`` keep about each user."""

    #: The most tokens of remembered facts put into one context; when a user's facts take
    #: more, the ones nearest the message (and the newest) are chosen.
    budget_tokens: Annotated[int, Field(ge=0, le=8192)] = 300
    #: The model is asked what was worth remembering once a conversation has this many new
    #: messages (and always before older turns are folded out of the context).
    extract_every: Annotated[int, Field(ge=1, le=50)] = 6
    #: The most facts kept per user (per robot and chat): the longest unused go first.
    per_user: Annotated[int, Field(ge=1, le=2000)] = 100
    #: A new fact this similar (cosine, 0 to 1) to a known one replaces it. High on purpose:
    #: a wrong merge loses a fact, a missed one only costs budget (with the local model,
    #: paraphrases score 0.96-0.98, "sister"/"brother" of the same name 0.95).
    same_above: Annotated[float, Field(gt=0, le=1)] = 0.96


class SafetyRule(_Section):
    """One rule: `words` (matched anywhere, any case) and/or a regular expression `pattern`;
    what it does (`block` the message, `mask` what matches, or answer with the robot's
    `self_harm_text`), on what users send (`in`), on what the robot sends (`out`), or `both`."""

    name: str = Field(default="", max_length=64)
    words: tuple[str, ...] = ()
    pattern: str | None = None
    action: Literal["block", "mask", "self_harm"] = "block"
    direction: Literal["in", "out", "both"] = "both"

    @model_validator(mode="after")
    def _something_to_match(self) -> SafetyRule:
        if not self.words and not self.pattern:
            raise ValueError("give words, a pattern, or both")
        if any(not word.strip() for word in self.words):
            raise ValueError("words may not be empty")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression: {exc}") from None
        return self


class SafetySettings(_Section):
    """A robot's content safety: rules, and an optional moderation endpoint."""

    rules: tuple[SafetyRule, ...] = ()
    #: An OpenAI-compatible ``/moderations`` endpoint (its base URL, ending ``/v1``), asked
    #: about every message both ways; flagged: blocked (self-harm categories: `self_harm_text`).
    moderation_url: str | None = None
    moderation_model: str = "omni-moderation-latest"
    moderation_key_env: str = "OPENAI_API_KEY"
    moderation_timeout_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    #: When the endpoint fails or is slow: let the message through (true) or block it (false).
    fail_open: bool = True
    blocked_text: str = "Sorry, I can't help with that."
    blocked_answer_text: str = "Sorry, I can't share that answer."
    self_harm_text: str = (
        "I'm really sorry you're going through this. You don't have to face it alone: please "
        "reach out to someone you trust, or to a local crisis line (in China, the Beijing "
        "Psychological Crisis Research and Intervention Center: 010-82951332; elsewhere, your "
        "local emergency number)."
    )
    #: Whether the safety log lines carry the text that was blocked or masked.
    log_text: bool = False


class DeskSettings(_Section):
    """The robot is a Tencent Desk (智能客服) customer-service account answered as a self-built
    AI: Desk's ``ChatBot.UserSendMsg`` events are its messages, and a handoff transfers the
    session to Desk's human agents (``desk_http_svc/transfer_to_human``)."""

    #: The share of Desk sessions this robot answers (by a hash of the session); the others go
    #: to a person at their first message. For a gradual rollout of the AI.
    rollout_percent: Annotated[int, Field(ge=0, le=100)] = 100
    #: The Desk agent group sessions are transferred to (none: Desk's default assignment).
    agent_group: Annotated[int, Field(ge=0)] | None = None


class HandoffSettings(_Section):
    """Handing a robot's conversation to people: the agents' group that takes tickets, and
    what opens one (besides ``/human``)."""

    #: The GroupId of the Tencent group of human agents (the robot must be a member); a Desk
    #: robot (`[robots.desk]`) hands over through Desk instead and needs none.
    group: str | None = Field(default=None, min_length=1, max_length=64)
    #: Phrases that ask for a person (matched anywhere in a message, case-insensitively).
    phrases: tuple[str, ...] = (
        "human agent",
        "real person",
        "talk to a human",
        "转人工",
        "人工客服",
    )
    #: Answers in a row the knowledge base found nothing for, before a person is asked (0: off).
    after_misses: Annotated[int, Field(ge=0, le=100)] = 0
    #: A ticket with no message either way for this long goes back to the robot.
    idle_close_s: Annotated[float, Field(gt=0)] = 24 * 3600.0
    #: Whether the model may hand over itself, through the ``handoff`` tool (with a reason).
    tool: bool = True


class McpServerSettings(_Section):
    """One MCP server whose tools robots may call: a command run over stdio, or a streamable
    HTTP endpoint. Secrets never go in the file: `pass_env` names variables of timbridge's own
    environment handed to the command, `headers_env` the variables that hold header values."""

    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    pass_env: tuple[str, ...] = ()
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    #: This server's tools with side effects (``*``: all): only a robot's `admins` may have
    #: them called. Tools the server annotates ``destructiveHint: true`` are so as well.
    admin_tools: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (stdio) or url (streamable HTTP)")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"url must be http:// or https:// (got {self.url!r})")
        return self


class MediaSettings(_Section):
    """Fetching images users send, for models that can see them."""

    allowed_hosts: tuple[str, ...] = (
        "*.myqcloud.com",
        "*.qcloud.com",
        "*.tencentcos.cn",
        "*.tencent-cloud.com",
    )
    max_bytes: Annotated[int, Field(ge=1024)] = 5 * 1024 * 1024
    timeout_s: Annotated[float, Field(gt=0)] = 10.0


class ModelProfile(_Section):
    """One way to reach a model: provider, endpoint, model name, key, limits, fallbacks."""

    provider: Literal[
        "openai",
        "deepseek",
        "minimax",
        "qwen",
        "moonshot",
        "ollama",
        "vllm",
        "anthropic",
        "gemini",
        "offline",
    ] = "offline"
    base_url: str | None = None
    model: str = ""
    api_key_env: str | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    stream: bool = True
    #: Anthropic: mark the stable prefix (the system prompt, the conversation so far) for the
    #: provider's prompt cache, which bills the cached part at a tenth of the price.
    cache_prompts: bool = True
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    #: The longest answer kept, in characters: the rest is not read, and the answer ends with a
    #: note saying it was cut. The default (about 8 000 tokens) takes 3 messages of Tencent's
    #: 12 KB in English or Chinese, 12 at the very most (four-byte characters only).
    max_answer_chars: Annotated[int, Field(ge=100, le=1_000_000)] = 32_000
    context_tokens: Annotated[int, Field(ge=256)] = 8000
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    vision: bool = False
    #: OpenAI-compatible providers: timbridge's own Chat Completions client ("direct", about a
    #: tenth of the SDK's CPU per call) or the official ``openai`` SDK ("sdk").
    client: Literal["direct", "sdk"] = "direct"
    breaker_failures: Annotated[int, Field(ge=1)] = 5
    breaker_cooldown_s: Annotated[float, Field(ge=0)] = 30.0
    fallback: tuple[str, ...] = ()

    def api_key(self, name: str, default_env: str | None = None) -> str:
        """The key from the variable `api_key_env` (else `default_env`) names.

        `ConfigError` when that variable is empty or unset; with no variable at all, no key is
        needed (local servers such as Ollama or vLLM take any).
        """
        variable = self.api_key_env or default_env
        if not variable:
            return "not-needed"
        value = os.environ.get(variable, "")
        if not value:
            raise ConfigError(
                f"models.{name}.api_key_env",
                f"the environment variable {variable} is empty or unset",
            )
        remember([value])  # a provider's error page may echo it: keep it out of every log
        return value


class RobotSettings(_Section):
    """One robot account and how it behaves."""

    #: A Tencent Desk customer-service account instead of a robot (`[robots.desk]`); first,
    #: so that the check of `id` knows of it.
    desk: DeskSettings | None = None
    id: str
    nick: str = ""
    model: str = "default"
    persona: str = "You are a helpful assistant."
    group_context: Literal["group", "member"] = "group"
    reply_mode: Literal["off", "stream", "edit", "segments"] = "off"
    messages_per_minute: Annotated[int, Field(ge=0)] = 0
    burst_window_s: Annotated[float, Field(ge=0, le=30)] = 1.5
    tokens_per_user_per_day: Annotated[int, Field(ge=0)] = 0
    tokens_per_group_per_day: Annotated[int, Field(ge=0)] = 0
    knowledge: str | None = None
    cite_sources: bool = True
    #: The tools this robot's model may call: built-in names (`current_time`, `calculator`) and
    #: MCP servers' tools (``mcp:NAME/*`` for all of a server's, ``mcp:NAME/TOOL`` for one).
    tools: tuple[str, ...] = ()
    #: The UserIDs that administer this robot: only they may have it call the tools with side
    #: effects (an MCP server's `admin_tools`, and those its server marks destructive).
    admins: tuple[str, ...] = ()
    #: Handing conversations to human agents (`[robots.handoff]`; none: never).
    handoff: HandoffSettings | None = None
    #: ``long``: facts about each user are kept beyond the context window (`[memory]`); the
    #: default keeps the conversation's history alone.
    memory: Literal["history", "long"] = "history"
    #: The time zone users' times are read in (``/remind at 9:00``), an IANA name.
    time_zone: str = "UTC"
    #: Messages the robot sends on a schedule (`[[robots.schedules]]`).
    schedules: tuple[ScheduleSettings, ...] = ()
    #: Content safety on what users send and what the robot sends (`[robots.safety]`).
    safety: SafetySettings | None = None
    busy_text: str = (
        "Sorry, I'm getting a lot of messages right now and couldn't get to yours in time. "
        "Please try again in a moment."
    )

    @field_validator("id")
    @classmethod
    def _robot_id(cls, value: str, info: ValidationInfo) -> str:
        _check_user_id(value)
        if info.data.get("desk") is None and not is_robot(value):
            raise ValueError(NOT_A_ROBOT)
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone (such as Asia/Shanghai): {value!r}") from None
        return value

    @field_validator("schedules")
    @classmethod
    def _unique_schedules(cls, value: tuple[ScheduleSettings, ...]) -> tuple[ScheduleSettings, ...]:
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError(f"schedule names must differ: {names}")
        return value

    @model_validator(mode="after")
    def _handoff_target(self) -> RobotSettings:
        if self.handoff is not None and self.handoff.group is None and self.desk is None:
            raise ValueError("handoff.group: name the agents' group (only Desk robots need none)")
        return self


def _default_models() -> dict[str, ModelProfile]:
    return {"default": ModelProfile()}


class Settings(BaseSettings):
    """All of timbridge's configuration. Build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    tencent: TencentSettings = TencentSettings()
    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    media: MediaSettings = MediaSettings()
    tools: ToolsSettings = ToolsSettings()
    reminders: RemindersSettings = RemindersSettings()
    memory: MemorySettings = MemorySettings()
    mcp: dict[str, McpServerSettings] = Field(default_factory=dict)
    models: dict[str, ModelProfile] = Field(default_factory=_default_models)
    robots: tuple[RobotSettings, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init values; the environment must win over it.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _references_resolve(self) -> Settings:
        for name, profile in self.models.items():
            for other in profile.fallback:
                if other not in self.models:
                    raise ValueError(
                        f"models.{name}.fallback: names unknown profile {other!r}; "
                        f"known: {', '.join(sorted(self.models))}"
                    )
        seen: set[str] = set()
        for index, robot in enumerate(self.robots):
            if robot.id in seen:
                raise ValueError(f"robots[{index}].id: {robot.id!r} is configured twice")
            seen.add(robot.id)
            if robot.model not in self.models:
                raise ValueError(
                    f"robots[{index}].model: names unknown profile {robot.model!r}; "
                    f"known: {', '.join(sorted(self.models))}"
                )
            for tool in robot.tools:
                server = tool.removeprefix("mcp:").split("/", 1)[0]
                if tool.startswith("mcp:") and ("/" not in tool or server not in self.mcp):
                    raise ValueError(
                        f"robots[{index}].tools: {tool!r} names no configured MCP server "
                        f"(mcp:NAME/* or mcp:NAME/TOOL, with [mcp.NAME]; configured: "
                        f"{', '.join(sorted(self.mcp)) or 'none'})"
                    )
        return self

    def secrets(self) -> list[str]:
        """Every secret this configuration holds: the Tencent secret key and callback token,
        the API keys its model profiles name (those set in the environment), and passwords in
        the store and coordination URLs. For `timbridge.redact`."""
        found = [
            secret.get_secret_value()
            for secret in (self.tencent.secret_key, self.tencent.callback_token)
            if secret is not None
        ]
        found += [
            os.environ.get(profile.api_key_env, "")
            for profile in self.models.values()
            if profile.api_key_env
        ]
        for server in self.mcp.values():  # what MCP servers get from the environment
            found += [os.environ.get(name, "") for name in server.pass_env]
            found += [os.environ.get(name, "") for name in server.headers_env.values()]
        for url in (self.store.url, self.coordination.url):
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                found += [password, quote(password, safe="")]
        return [value for value in found if value]

    def robot(self, robot_id: str) -> RobotSettings | None:
        """The configured robot with this UserID, if any."""
        return next((r for r in self.robots if r.id == robot_id), None)
