"""Every sentence a robot says on its own (not the model's words): in one place, to read, to
change and, one day, to translate. Templates take their blanks by name. A robot's busy notice
is its own setting (`robots[].busy_text`)."""

from __future__ import annotations

__all__ = [
    "APOLOGY",
    "BUDGET_TEXT",
    "CANCEL_TEXT",
    "COMMANDS",
    "COMPACT_TEXT",
    "COMPATIBLE_TEXT",
    "EMPTY_TEXT",
    "HELP_TEXT",
    "IMAGE_FAILED",
    "INTERRUPTED",
    "LIMIT_TEXT",
    "LOOKING_UP",
    "NOTHING_TO_CANCEL_TEXT",
    "NOTHING_TO_COMPACT_TEXT",
    "RESET_TEXT",
    "STEPS_SPENT",
    "STOPPED",
    "STORE_FAILED",
    "TEXT_ONLY",
    "TOO_LONG",
    "UNKNOWN_TEXT",
]

#: The chat commands, and what `/help` says of each.
COMMANDS: dict[str, str] = {
    "/help": "show what I can do",
    "/reset": "forget our conversation so far",
    "/compact": "summarise our conversation so far, to keep it short",
    "/usage": "show the tokens you have used today",
    "/cancel": "stop the answer I am writing for you",
}

HELP_TEXT = "Commands:\n" + "\n".join(f"{name} — {what}" for name, what in COMMANDS.items())
RESET_TEXT = "Done: I have forgotten our conversation. What shall we talk about?"
UNKNOWN_TEXT = "I don't know the command {name}. " + HELP_TEXT
BUDGET_TEXT = (
    "{who} used today's {limit} tokens. You can write again after 00:00 UTC, "
    "in {hours} h {minutes} min."
)
COMPACT_TEXT = "Done: I summarised our conversation ({turns} turns) to keep it short."
NOTHING_TO_COMPACT_TEXT = "There is nothing to summarise yet."
CANCEL_TEXT = "Stopped: I did not finish that answer."
NOTHING_TO_CANCEL_TEXT = "There was no answer in progress to stop."
#: Ends what was shown of an answer its sender stopped with /cancel.
STOPPED = "\n\n(stopped)"
LIMIT_TEXT = (
    "You are writing faster than I can answer (at most {limit} messages a minute). "
    "Please write again in {seconds} s; messages until then go unanswered."
)

APOLOGY = "Sorry, I can't answer right now: the model is unavailable. Please try again shortly."
STORE_FAILED = (
    "Sorry, I can't answer right now: my memory is unavailable. Please try again shortly."
)
TEXT_ONLY = "I can read text only: please describe the image in words."
IMAGE_FAILED = "I could not open that image ({reason}). Please try another, or describe it."
EMPTY_TEXT = "I can only read text messages. Please write your question as text."
#: Ends an answer the model stopped giving midway.
INTERRUPTED = "\n\n[The answer was cut off: the model stopped responding. Please ask again.]"
#: Ends an answer longer than the profile's `max_answer_chars`.
TOO_LONG = "\n\n[The answer was cut here: it was longer than this robot sends.]"
#: Shown by clients too old to render stream messages.
COMPATIBLE_TEXT = "Please upgrade your app to see this reply."

#: The end of an answer whose model kept calling tools past `tools.max_steps`.
STEPS_SPENT = (
    "\n\n(I stopped here: I had used all the tool steps I may take for one answer without "
    "reaching a final answer. Ask again more narrowly, or split the question.)"
)

#: Shown (in `edit` mode) while the model's tools run, replaced by the answer as it comes.
LOOKING_UP = "_Looking that up…_"
