"""Typed configuration: the tree of sections and keys (`settings.tree`), read from
``timbridge.toml`` and ``TIMBRIDGE_*`` variables (`settings.loading`). Every part imports it from
here."""

from timbridge.settings.loading import DEFAULT_CONFIG_PATH, config_path, load_settings, overridden
from timbridge.settings.tree import (
    ENV_PREFIX,
    REGION_HOSTS,
    CoordinationSettings,
    DeskSettings,
    HandoffSettings,
    KnowledgeSettings,
    McpServerSettings,
    MediaSettings,
    ModelProfile,
    RemindersSettings,
    RobotSettings,
    SafetyRule,
    SafetySettings,
    ScheduleSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    TencentSettings,
    ToolsSettings,
    env_name,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "REGION_HOSTS",
    "CoordinationSettings",
    "DeskSettings",
    "HandoffSettings",
    "KnowledgeSettings",
    "McpServerSettings",
    "MediaSettings",
    "ModelProfile",
    "RemindersSettings",
    "RobotSettings",
    "SafetyRule",
    "SafetySettings",
    "ScheduleSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "TencentSettings",
    "ToolsSettings",
    "config_path",
    "env_name",
    "load_settings",
    "overridden",
]
