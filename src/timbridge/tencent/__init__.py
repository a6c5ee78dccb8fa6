"""Tencent Chat REST: the async client, its limits, the error-code table, request helpers."""

from timbridge.tencent.client import RetryPolicy, TencentClient, is_transient
from timbridge.tencent.codes import CODES, Remedy, describe, remedy
from timbridge.tencent.limits import CallLimits
from timbridge.tencent.notices import typing_notice

__all__ = [
    "CODES",
    "CallLimits",
    "Remedy",
    "RetryPolicy",
    "TencentClient",
    "describe",
    "is_transient",
    "remedy",
    "typing_notice",
]
