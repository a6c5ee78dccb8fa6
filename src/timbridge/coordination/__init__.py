"""Dedupe, per-conversation ordering and the job queue: in-process now, Redis at scale."""

from timbridge.coordination.base import Coordinator, Handler, Job
from timbridge.coordination.local import LocalCoordinator, TTLSet

__all__ = ["Coordinator", "Handler", "Job", "LocalCoordinator", "TTLSet"]
