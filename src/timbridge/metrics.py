"""Prometheus metrics, on a registry of their own per process (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric timbridge exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhooks = Counter(
            "timbridge_webhooks",
            "Webhooks by command and outcome",
            ["command", "outcome"],
            registry=r,
        )
        self.queue_depth = Gauge("timbridge_queue_depth", "Jobs accepted, not finished", registry=r)
        self.model_latency = Histogram(
            "timbridge_model_latency_seconds",
            "Model answer time by profile",
            ["profile"],
            buckets=_LATENCY,
            registry=r,
        )
        self.model_first_token = Histogram(
            "timbridge_model_first_token_seconds",
            "Model time to first token by profile",
            ["profile"],
            buckets=_LATENCY,
            registry=r,
        )
        self.first_visible = Histogram(
            "timbridge_first_visible_seconds",
            "Live replies: time from starting the answer to the first text the user sees, by mode",
            ["mode"],
            buckets=_LATENCY,
            registry=r,
        )
        self.model_answers = Counter(
            "timbridge_model_answers",
            "Answers by the profile that gave them (a fallback shows here)",
            ["profile"],
            registry=r,
        )
        self.limited = Counter(
            "timbridge_limited_messages",
            "Messages over a robot's per-user limit (not answered)",
            ["robot"],
            registry=r,
        )
        self.model_failures = Counter(
            "timbridge_model_failures",
            "Answers that failed after every fallback",
            ["robot"],
            registry=r,
        )
        self.rest_calls = Counter(
            "timbridge_rest_calls",
            "Tencent REST calls by command and ErrorCode (-1: no answer)",
            ["command", "code"],
            registry=r,
        )
        self.reply_latency = Histogram(
            "timbridge_reply_latency_seconds",
            "Webhook received to last reply part sent",
            buckets=_LATENCY,
            registry=r,
        )

    def rest_result(self, command: str, code: int) -> None:
        self.rest_calls.labels(command, str(code)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
