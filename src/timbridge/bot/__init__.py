"""The engine: robots, routing, commands, context, reply sending."""

from timbridge.bot.conversation import Conversation, MessageEvent
from timbridge.bot.engine import Engine
from timbridge.bot.gate import Verdict, gate
from timbridge.bot.models import Answer, ModelChain
from timbridge.bot.replies import ReplySender
from timbridge.bot.sentences import APOLOGY
from timbridge.bot.split import split_reply

__all__ = [
    "APOLOGY",
    "Answer",
    "Conversation",
    "Engine",
    "MessageEvent",
    "ModelChain",
    "ReplySender",
    "Verdict",
    "gate",
    "split_reply",
]
