"""The webhook HTTP application: verify, parse, gate, dedupe, enqueue, acknowledge."""

from timbridge.webhook.app import create_app
from timbridge.webhook.verify import Refusal, check_request

__all__ = ["Refusal", "check_request", "create_app"]
