"""Reading the configuration: ``timbridge.toml`` plus ``TIMBRIDGE_<SECTION>__<KEY>`` overrides.

The file is found at ``--config``, else ``$TIMBRIDGE_CONFIG``, else ``./timbridge.toml`` when it
exists; with none, the embedded defaults apply. The environment wins over the file. Secrets
(`tencent.secret_key`, `tencent.callback_token`, model API keys) come only from the environment:
a secret written into the file stops start-up. Every bad value raises `ConfigError` with one line
naming the key, its environment variable, and what was expected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, cast, get_args, get_origin

from pydantic import BaseModel, ValidationError

from timbridge.errors import ConfigError
from timbridge.redact import remember
from timbridge.settings.tree import ENV_PREFIX, Settings, env_name

__all__ = ["DEFAULT_CONFIG_PATH", "config_path", "load_settings", "overridden"]

DEFAULT_CONFIG_PATH = Path("timbridge.toml")

#: Keys that hold secrets: accepted from the environment only.
_SECRET_KEYS = (("tencent", "secret_key"), ("tencent", "callback_token"))


def _dotted(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")):
            continue
        else:
            key += f".{part}" if key else part
    return key


def _config_error(exc: ValidationError) -> ConfigError:
    error = exc.errors()[0]
    key = _dotted(tuple(error["loc"]))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see the README's configuration table)"
    elif error["type"] not in ("missing", "value_error"):
        message = f"{message} (got {error['input']!r})"
    if not key:  # a cross-key check: its message starts with "key: "
        key, _, message = message.partition(": ")
    env = env_name(key) if "[" not in key else None
    return ConfigError(key, message, env=env)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("config", f"file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    for section, key in _SECRET_KEYS:
        if key in data.get(section, {}):
            dotted = f"{section}.{key}"
            raise ConfigError(
                dotted,
                f"secrets live only in the environment: remove it from {path} and set "
                f"{env_name(dotted)}",
            )
    _no_quoted_numbers(Settings, data, "")
    return data


def _scalar(annotation: Any) -> type | None:
    """The number or flag type a field holds (through ``Annotated`` and ``| None``), if any."""
    for candidate in (annotation, *get_args(annotation)):
        inner = get_args(candidate)[0] if get_origin(candidate) is Annotated else candidate
        if inner in (int, float, bool):
            return cast(type, inner)
    return None


def _no_quoted_numbers(model: type[BaseModel], data: Any, where: str) -> None:
    """Refuse ``port = "8080"`` in the file: TOML has numbers and booleans, and a quoted one is
    a mistake that validation would silently forgive (the environment, which has only strings,
    is not checked here)."""
    if not isinstance(data, dict):
        return
    for name, field in model.model_fields.items():
        value = data.get(field.alias or name, data.get(name))
        if value is None:
            continue
        dotted = f"{where}{name}"
        kind = _scalar(field.annotation)
        if kind is not None and isinstance(value, str):
            wanted = "true or false" if kind is bool else "a number"
            raise ConfigError(
                dotted, f"must be {wanted}, not the string {value!r}: leave out the quotes"
            )
        inner = [a for a in (field.annotation, *get_args(field.annotation)) if isinstance(a, type)]
        section = next((a for a in inner if issubclass(a, BaseModel)), None)
        if section is None:
            continue
        if get_origin(field.annotation) is dict and isinstance(value, dict):  # models.NAME
            for key, item in value.items():
                _no_quoted_numbers(section, item, f"{dotted}.{key}.")
        elif isinstance(value, list):  # robots[]
            for index, item in enumerate(value):
                _no_quoted_numbers(section, item, f"{dotted}[{index}].")
        else:  # a section
            _no_quoted_numbers(section, value, f"{dotted}.")


def config_path(path: str | Path | None = None) -> Path | None:
    """The file `load_settings` reads: `path`, else ``$TIMBRIDGE_CONFIG``, else
    ``./timbridge.toml`` when it exists (None: the embedded defaults)."""
    chosen = path if path is not None else os.environ.get(f"{ENV_PREFIX}CONFIG") or None
    if chosen is not None:
        return Path(chosen)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def overridden(path: str | Path | None = None) -> list[tuple[str, str]]:
    """``(key, variable)`` for each value of the file that an environment variable replaces:
    whatever the file says there, valid or not, is not used."""
    chosen = config_path(path)
    if chosen is None:
        return []
    found: list[tuple[str, str]] = []

    def walk(data: Any, where: str) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                walk(value, f"{where}.{key}" if where else str(key))
        elif where and env_name(where) in os.environ:
            found.append((where, env_name(where)))

    walk(_read_file(chosen), "")
    return found


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the configuration; raise `ConfigError` on the first bad value.

    `path` (the ``--config`` option) wins over ``$TIMBRIDGE_CONFIG``; either must exist. With
    neither, ``./timbridge.toml`` is read when present, else the embedded defaults apply.
    """
    chosen = config_path(path)
    data = _read_file(chosen) if chosen is not None else {}
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise _config_error(exc) from None
    remember(settings.secrets())
    return settings
