"""Tencent Chat REST: the client, its limits, the error codes, and the door replies go out by."""

from timbridge.tencent.client import RetryPolicy, TencentClient, is_transient
from timbridge.tencent.codes import CODES, Remedy, describe, remedy
from timbridge.tencent.limits import CallLimits
from timbridge.tencent.outbound import Destination, Outbound, Part, typing_notice

__all__ = [
    "CODES",
    "CallLimits",
    "Destination",
    "Outbound",
    "Part",
    "Remedy",
    "RetryPolicy",
    "TencentClient",
    "describe",
    "is_transient",
    "remedy",
    "typing_notice",
]
