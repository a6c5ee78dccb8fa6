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
        self._robots_seen: set[str] = set()
        self.webhooks = Counter(
            "timbridge_webhooks",
            "Webhooks by command and outcome",
            ["command", "outcome"],
            registry=r,
        )
        self.queue_depth = Gauge("timbridge_queue_depth", "Jobs accepted, not finished", registry=r)
        self.backlog = Gauge(
            "timbridge_backlog_jobs", "Jobs accepted, not finished, by robot", ["robot"], registry=r
        )
        self.oldest_wait = Gauge(
            "timbridge_backlog_oldest_seconds",
            "How long the oldest unfinished job has waited",
            registry=r,
        )
        self.shed = Counter(
            "timbridge_shed_messages",
            "Messages not sent to the model because they waited longer than server.max_wait_s",
            ["robot"],
            registry=r,
        )
        self.busy_notices = Counter(
            "timbridge_busy_notices", "Busy notices sent to users, by robot", ["robot"], registry=r
        )
        self.tencent_alerts = Counter(
            "timbridge_tencent_alerts",
            "Alert callbacks from Tencent (e.g. Alert.RequestOverLimit), by command",
            ["command"],
            registry=r,
        )
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
        self.model_cached_tokens = Counter(
            "timbridge_model_cached_tokens",
            "Prompt tokens the providers read from their prompt caches",
            ["profile"],
            registry=r,
        )
        self.safety = Counter(
            "timbridge_safety_decisions",
            "Messages a robot's safety rules masked or blocked, by rule and direction",
            ["robot", "rule", "direction", "action"],
            registry=r,
        )
        self.ratings = Counter(
            "timbridge_ratings",
            "Ratings users gave (/rate), of an answer or of a ticket",
            ["robot", "score", "of"],
            registry=r,
        )
        self.reminders = Counter(
            "timbridge_reminders",
            "Reminders by outcome: due, sent, late (sent late), missed (past the grace), failed",
            ["robot", "outcome"],
            registry=r,
        )
        self.memory_facts = Counter(
            "timbridge_memory_facts",
            "Long-term memory's facts by what happened: added, updated (replaced), forgotten",
            ["robot", "outcome"],
            registry=r,
        )
        self.memory_extractions = Counter(
            "timbridge_memory_extractions",
            "Batches of messages the model read for facts: read, failed (read again later)",
            ["robot", "outcome"],
            registry=r,
        )
        self.stopped = Counter(
            "timbridge_stopped_answers",
            "Answers stopped: their question was recalled, or its sender wrote /cancel",
            ["robot", "why"],
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

    def observe_backlog(self, backlog: dict[str, int], oldest_wait_s: float) -> None:
        """Set the backlog gauges (robots gone from `backlog` read 0)."""
        self.queue_depth.set(sum(backlog.values()))
        for robot in {*self._robots_seen, *backlog}:
            self.backlog.labels(robot).set(backlog.get(robot, 0))
        self._robots_seen |= backlog.keys()
        self.oldest_wait.set(oldest_wait_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
