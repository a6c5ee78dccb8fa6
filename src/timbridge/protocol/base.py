"""The base of every Tencent wire model: frozen, tolerant of extra fields, Tencent's field names."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_pascal

from timbridge.errors import PayloadError

__all__ = ["WireModel", "payload_error"]


class WireModel(BaseModel):
    """A Tencent JSON object.

    Python names are snake_case; on the wire they are Tencent's (``msg_type`` ↔ ``MsgType``;
    irregular ones such as ``From_Account`` are spelled out with ``Field(alias=...)``). Unknown
    fields are kept, never dropped, so a message passes through unchanged.
    """

    model_config = ConfigDict(
        alias_generator=to_pascal,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="allow",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict, with Tencent's names and without unset optional fields."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> bytes:
        """The JSON body as bytes."""
        return orjson.dumps(self.to_wire())


def payload_error(exc: ValidationError, *, what: str = "") -> PayloadError:
    """Name the first offending field of a validation failure, in Tencent's spelling."""
    error = exc.errors()[0]
    parts: list[str] = []
    previous: object = None
    for part in error["loc"]:
        # An element's union tag (its MsgType, or "unknown") follows its index in the path;
        # the JSON path a sender can act on does not have it.
        is_tag = isinstance(previous, int) and (
            part == "unknown" or (str(part).startswith("TIM") and str(part).endswith("Elem"))
        )
        if not is_tag and not str(part).startswith(("function-", "tagged-union")):
            parts.append(str(part))
        previous = part
    field = ".".join(parts)
    if error["type"] in ("json_invalid", "json_type"):
        return PayloadError("body", f"not valid JSON: {error['msg']}")
    message = error["msg"]
    if what:
        message = f"{message} in {what}"
    return PayloadError(field or "body", message)
