"""Every sentence a robot says on its own (not the model's words): in one place, to read, to
change and, one day, to translate. Templates take their blanks by name. A robot's busy notice
is its own setting (`robots[].busy_text`)."""

from __future__ import annotations

__all__ = [
    "AGENT_HELP",
    "ALREADY_HANDED_TEXT",
    "APOLOGY",
    "ASKED_REASON",
    "BACK_TEXT",
    "BUDGET_TEXT",
    "CACHE_SHARE_TEXT",
    "CANCEL_TEXT",
    "CLOSED_POST",
    "COMMANDS",
    "COMPACT_TEXT",
    "COMPATIBLE_TEXT",
    "DESK_HANDOFF_TEXT",
    "EMPTY_TEXT",
    "FORGET_USAGE",
    "FORGOTTEN",
    "FORGOTTEN_ALL",
    "FORGOTTEN_HISTORY",
    "HANDOFF_TEXT",
    "HELP_TEXT",
    "IMAGE_FAILED",
    "INTERRUPTED",
    "LATE_REMINDER",
    "LIMIT_TEXT",
    "LOOKING_UP",
    "MEMORY_FOOTER",
    "MEMORY_LINE",
    "MEMORY_OFF",
    "MISSES_REASON",
    "NOTHING_REMEMBERED",
    "NOTHING_TO_CANCEL_TEXT",
    "NOTHING_TO_COMPACT_TEXT",
    "NOTHING_TO_FORGET",
    "NO_AGENT_TEXT",
    "NO_HANDOFF_TEXT",
    "NO_REMINDERS",
    "NO_SUCH_REMINDER",
    "NO_TICKET",
    "RATE_THANKS",
    "RATE_USAGE",
    "RELAY_POST",
    "REMEMBERED",
    "REMINDER",
    "REMINDER_CANCELLED",
    "REMINDER_LINE",
    "REMINDER_SET",
    "REMIND_USAGE",
    "RESET_TEXT",
    "ROLLOUT_REASON",
    "STEPS_SPENT",
    "STOPPED",
    "STORE_FAILED",
    "TEXT_ONLY",
    "TICKET_POST",
    "TIME_PASSED",
    "TOO_LONG",
    "TOO_MANY_REMINDERS",
    "UNKNOWN_TEXT",
    "WHAT_MISSING",
    "WHEN_UNCLEAR",
]

#: The chat commands, and what `/help` says of each.
COMMANDS: dict[str, str] = {
    "/help": "show what I can do",
    "/reset": "forget our conversation so far",
    "/compact": "summarise our conversation so far, to keep it short",
    "/usage": "show the tokens you have used today",
    "/cancel": "stop the answer I am writing for you",
    "/human": "ask for a person to take over (where one can)",
    "/rate": "rate my last answer, or a person's help: /rate 1 (poor) to 5 (excellent)",
    "/remind": "remind you later: /remind in 20 minutes call Lin, /remind tomorrow at 9 …",
    "/reminders": "list your reminders; /reminders cancel N cancels one",
    "/memory": "show what I remember about you",
    "/forget": "delete what I remember: /forget N, /forget words, /forget all",
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

# --- handing over to people (`bot.handoff`) ---------------------------------------------------
HANDOFF_TEXT = (
    "I have asked a colleague to help you (ticket #{ticket}). A person will answer you here; "
    "until then I pass on what you write."
)
DESK_HANDOFF_TEXT = "I have asked a colleague to help you; a person will answer you here shortly."
NO_AGENT_TEXT = "No colleague can take over right now, I am afraid; I will do my best myself."
ALREADY_HANDED_TEXT = "A colleague is already on it (ticket #{ticket}); I pass on what you write."
BACK_TEXT = (
    "You are back with me, the assistant. How did my colleague do? Reply /rate 1 (poor) to "
    "5 (excellent). How else can I help?"
)
CACHE_SHARE_TEXT = " {share} % of what I read came from the model provider's prompt cache."
RATE_THANKS = "Thank you for your rating ({score}/5)."
RATE_USAGE = "Please rate from 1 (poor) to 5 (excellent), for example: /rate 4"
NO_HANDOFF_TEXT = "No person can take over here, I am afraid; I will do my best myself."
#: Reasons a ticket is opened for, as the agents read them.
ASKED_REASON = "the customer asked for a person"
MISSES_REASON = "the knowledge base had no answer {misses} times in a row"
ROLLOUT_REASON = "this session is outside the AI's rollout"
#: What the agents' group reads.
TICKET_POST = (
    "New ticket #{ticket} from {who}{where}: {reason}.\n{brief}{recent}\n"
    "Answer with: @{robot} #{ticket} your words. Close with: @{robot} #{ticket} close"
)
RELAY_POST = "#{ticket} {who}: {text}"
CLOSED_POST = "Ticket #{ticket} is closed{why}; {robot} answers {who} again."
AGENT_HELP = (
    "To answer a customer, write @{robot} #N your words; to give the conversation back, "
    "@{robot} #N close. Open tickets: {open}."
)
NO_TICKET = "There is no open ticket #{ticket}. " + AGENT_HELP

# --- reminders (`bot.reminders`) --------------------------------------------------------------
REMINDER = "Reminder: {text}"
LATE_REMINDER = " (sent {minutes} min late: I could not send it on time)"
REMINDER_SET = "I will remind you at {when} (reminder #{number}): {text}"
NO_REMINDERS = "You have no reminders. Set one with /remind in 20 minutes …"
REMINDER_LINE = "#{number}  {when}  {text}"
REMINDER_CANCELLED = "Cancelled reminder #{number}."
NO_SUCH_REMINDER = "You have no pending reminder #{number}."
REMIND_USAGE = "Tell me when and what: /remind in 20 minutes call Lin, or /remind tomorrow at 9 …"
WHEN_UNCLEAR = "I could not tell when: say, for example, in 20 minutes, at 9:30, tomorrow at 8."
WHAT_MISSING = "What should I remind you of? Put it after the time."
TIME_PASSED = "That time has passed already."
TOO_MANY_REMINDERS = "You have {count} reminders already; cancel one with /reminders cancel N."

# --- long-term memory (`bot.memory`) ----------------------------------------------------------
REMEMBERED = "I'll remember that: {fact}"
MEMORY_OFF = "I keep no long-term memory here: I know only our conversation so far."
NOTHING_REMEMBERED = "I don't remember anything about you yet."
MEMORY_LINE = "{number}. {text}"
MEMORY_FOOTER = "\n\n/forget N deletes one, /forget all deletes everything."
FORGOTTEN = "Done: I have forgotten {what}."
FORGOTTEN_ALL = "Done: I have forgotten everything I knew about you ({count} facts){history}."
FORGOTTEN_HISTORY = " and our conversation"
NOTHING_TO_FORGET = "I remember nothing that matches {what!r}. /memory shows what I remember."
FORGET_USAGE = "Tell me what to forget: /forget N (from /memory), /forget words, or /forget all."
