"""Live replies: the answer appears while the model writes it (`reply_mode` stream, edit,
segments).

The model's deltas go into a buffer; one flusher task per reply turns the buffer into Tencent
calls at the pace each mode allows, so a slow Tencent call never holds the model up:

* ``stream``: Tencent's stream messages (``TIMStreamElem`` through ``stream_msg/send_*``), the
  first chunk as soon as there is text, then at most `STREAM_EVERY_S` apart (≤ 5 calls/s). A
  stream silent for `STREAM_IDLE_S` (the model stalls) is ended, and the answer continues in a
  new stream message, so Tencent's 15 s gap rule never cuts it off; a stream near 128 KB ends and
  the answer continues in a new one.
* ``edit``: a plain message with the first words, then ``modify_*_msg`` with the text so far
  about once every `EDIT_EVERY_S`; before the 12 KB ceiling that message is finished and the
  answer continues in a new one.
* ``segments``: a message per completed paragraph (a blank line outside a code fence).

A mode that Tencent refuses (the app's edition lacks it, say) falls back once to the next simpler
one (stream → edit → off, edit → off, segments → off), which carries on from what is already
visible, with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Literal

import structlog

from timbridge.bot.conversation import Conversation
from timbridge.bot.fences import Fences
from timbridge.bot.replies import ReplySender
from timbridge.bot.sentences import COMPATIBLE_TEXT
from timbridge.bot.split import DEFAULT_LIMIT, fitting_prefix, json_size, split_reply
from timbridge.errors import TencentAPIError
from timbridge.protocol.elements import StreamChunk, StreamContent
from timbridge.safety.rules import Verdict
from timbridge.tencent.outbound import Part, addressed

__all__ = ["COMPATIBLE_TEXT", "LiveReply", "Mode"]

_log = structlog.get_logger("timbridge.live")

Mode = Literal["off", "stream", "edit", "segments"]

STREAM_EVERY_S = 0.2  # Tencent: ≤ 5 continuation calls/s per stream, ~200 ms suggested
STREAM_IDLE_S = 10.0  # end a silent stream well before Tencent's 15 s gap ends it
STREAM_MAX_BYTES = 120 * 1024  # under Tencent's 128 KB per stream message
EDIT_EVERY_S = 1.0
#: Characters of a screened answer held back until more arrives (or it ends).
SCREEN_HOLD = 48
_EDIT_LIMIT = DEFAULT_LIMIT - 256  # room for the @mention in groups
_PART_BASE = 1000  # live parts get their own MsgRandom space, apart from plain reply parts
_FALLBACK: dict[str, Mode] = {"stream": "edit", "edit": "off", "segments": "off"}


class _Writer:
    """One mode's way of making buffered text visible."""

    def __init__(self, live: LiveReply) -> None:
        self.live = live
        self.shown = 0  # characters of the answer already handed to Tencent

    async def flush(self, *, final: bool) -> None:
        raise NotImplementedError

    async def idle(self) -> None:
        """Called when nothing was sent for a while (streams end before Tencent ends them)."""


class _StreamWriter(_Writer):
    def __init__(self, live: LiveReply) -> None:
        super().__init__(live)
        self._stream_id: str | None = None
        self._index = 0
        self._bytes = 0
        self._message = -1

    async def flush(self, *, final: bool) -> None:
        text = self.live.ready[self.shown :]
        if not text and (self._stream_id is None or not final):
            return
        room = STREAM_MAX_BYTES - self._bytes
        if len(text.encode()) > room:  # this stream is full: end it, continue in a new one
            cut = len(text.encode()[:room].decode(errors="ignore"))
            cut = text.rfind("\n", 0, cut) + 1 or cut
            await self._chunk(text[:cut], last=True)
            self.shown += cut
            text = text[cut:]
        await self._chunk(text, last=final)
        self.shown += len(text)

    async def idle(self) -> None:
        if self._stream_id is not None:
            await self._chunk("", last=True)

    async def _chunk(self, markdown: str, *, last: bool) -> None:
        live = self.live
        if self._stream_id is None:
            self._message += 1
            self._index = 0
            self._bytes = 0
            markdown = addressed(live.destination, markdown, mention=self._message == 0)
        self._index += 1
        content = StreamContent(
            compatible_text=COMPATIBLE_TEXT,
            stream_msg_id=self._stream_id,
            chunks=(StreamChunk(index=self._index, markdown=markdown, is_last=last),),
        )
        part = Part(live.identity, _PART_BASE + self._message)
        stream_id, handle = await live.replies.outbound.stream(live.destination, part, content)
        if self._stream_id is None:
            live.handles.append(handle)
        self._bytes += len(markdown.encode())
        self._stream_id = None if last else (self._stream_id or stream_id)


class _MessageWriter(_Writer):
    """Plain messages: shared by edit and segments."""

    def __init__(self, live: LiveReply) -> None:
        super().__init__(live)
        self._messages = 0

    async def post(self, text: str) -> str:
        """Post `text` as a new message; its handle (C2C ``MsgKey``, group ``MsgSeq``)."""
        part = _PART_BASE + self._messages
        mention = self._messages == 0
        self._messages += 1
        live = self.live
        handle = await live.replies.send_part(
            live.conversation, live.identity, part, text, mention=mention
        )
        live.handles.append(handle)
        return handle

    async def modify(self, handle: str, text: str, *, first: bool) -> None:
        live = self.live
        await live.replies.outbound.modify(live.destination, handle, text, mention=first)


class _EditWriter(_MessageWriter):
    def __init__(self, live: LiveReply) -> None:
        super().__init__(live)
        self._handle: str | None = None
        self._start = 0  # where the current message's text begins in the answer
        self._sent_text = ""
        self._first = False

    async def flush(self, *, final: bool) -> None:
        text = self.live.ready[self._start :]
        status = "" if final else self.live.status
        if not text.strip() and not status:
            return
        if json_size(text) > _EDIT_LIMIT:  # finish this message; continue in a new one
            cut = _cut(text, _EDIT_LIMIT)
            await self._show(text[:cut])
            self._handle, self._start, self._sent_text = None, self._start + cut, ""
            text = self.live.ready[self._start :]
            if not text.strip() and not status:
                self.shown = self._start
                return
        # the status line (tools running) follows the text until the model writes again
        await self._show(f"{text.rstrip()}\n\n{status}".strip() if status else text)
        self.shown = self._start + len(text)

    async def _show(self, text: str) -> None:
        if self._handle is None:
            self._handle = await self.post(text)
            self._first = self._messages == 1
        elif text != self._sent_text:
            await self.modify(self._handle, text, first=self._first)
        self._sent_text = text


class _SegmentWriter(_MessageWriter):
    async def flush(self, *, final: bool) -> None:
        text = self.live.ready[self.shown :]
        end = len(text) if final else _last_paragraph_end(self.live.ready, self.shown)
        if end <= 0:
            return
        for paragraph in _paragraphs(text[:end]):
            for part in split_reply(paragraph):
                await self.post(part)
        self.shown += end


class _PlainWriter(_MessageWriter):
    """``off``, as the last fallback: what is not yet visible, as plain messages at the end."""

    async def flush(self, *, final: bool) -> None:
        if not final:
            return
        text = self.live.ready[self.shown :]
        if text.strip():
            for part in split_reply(text.strip()):
                await self.post(part)
        self.shown = len(self.live.ready)


def _cut(text: str, limit: int) -> int:
    """Where to end a message: after the last line that fits in `limit` JSON bytes, else (one
    very long line) after the last character that fits."""
    fits = fitting_prefix(text, limit)
    return text.rfind("\n", 0, fits) + 1 or fits


def _paragraphs(text: str) -> list[str]:
    """Paragraphs of `text` split at blank lines outside code fences (fences stay whole)."""
    found: list[str] = []
    current: list[str] = []
    fences = Fences()
    for line in text.split("\n"):
        fences.feed(line)
        if not line.strip() and not fences.inside:
            if any(x.strip() for x in current):
                found.append("\n".join(current).strip("\n"))
            current = []
            continue
        current.append(line)
    if any(x.strip() for x in current):
        found.append("\n".join(current).strip("\n"))
    return found


def _last_paragraph_end(text: str, start: int) -> int:
    """Offset (from `start`) just after the last blank line outside a fence; 0 when none."""
    fences = Fences.after(text[:start])
    best = 0
    position = start
    for line in text[start:].split("\n")[:-1]:  # the last piece may be an unfinished line
        position += len(line) + 1
        if not fences.feed(line) and not line.strip() and not fences.inside:
            best = position - start
    return best


_WRITERS: dict[str, type[_Writer]] = {
    "stream": _StreamWriter,
    "edit": _EditWriter,
    "segments": _SegmentWriter,
    "off": _PlainWriter,
}
_EVERY: dict[str, float] = {"stream": STREAM_EVERY_S, "edit": EDIT_EVERY_S, "segments": 0.0}


class LiveReply:
    """One answer shown as it is written: `feed` deltas, then `close`."""

    def __init__(
        self,
        replies: ReplySender,
        conversation: Conversation,
        identity: str,
        mode: Mode,
        *,
        screen: Callable[[str], Verdict] | None = None,
    ) -> None:
        self.replies = replies
        self.conversation = conversation
        self.destination = conversation.destination
        self.identity = identity
        self.mode: Mode = mode
        self.raw = ""  # what the model wrote
        self.text = ""  # what may be shown of it (masked where the robot's rules say)
        #: Why the answer must not be shown (a safety rule blocked it); then nothing more is.
        self.blocked: Verdict | None = None
        self._screen = screen
        #: Every message shown so far (its ``MsgKey`` or group ``MsgSeq``), to withdraw them.
        self.handles: list[str] = []
        #: A line shown after the text while the tools run (`progress`).
        self.status = ""
        self.first_visible: float | None = None
        self._writer = _WRITERS[mode](self)
        self._fell_back = False
        self._wake = asyncio.Event()
        self._closing = False
        self._aborted = False
        self._task: asyncio.Task[None] | None = None
        self._last_call = 0.0

    async def feed(self, delta: str) -> None:
        """Add text from the model (never blocks on Tencent); it replaces the status line."""
        if not delta or self.blocked is not None:
            return
        self.raw += delta
        if self._screen is None:
            self.text = self.raw
        else:
            verdict = self._screen(self.raw)
            if verdict.action in ("block", "self_harm"):
                self.blocked = verdict
                self._aborted = True  # not one more call: the engine takes back what is shown
                self._wake.set()
                return
            self.text = verdict.text  # masks keep the length: what was shown stays in place
        self.status = ""
        self._start_flusher()
        self._wake.set()

    @property
    def ready(self) -> str:
        """What the writers may show now: everything once the answer is complete; while it is
        written and screened, all but the last `SCREEN_HOLD` characters (a word to mask may
        still be arriving)."""
        if self._closing or self._screen is None:
            return self.text
        return self.text[: max(0, len(self.text) - SCREEN_HOLD)]

    async def progress(self, status: str) -> None:
        """Show `status` after the text until the model writes again (tools are running).
        Only `edit` can take a line back; in the other modes this shows nothing."""
        if self.mode != "edit":
            return
        self.status = status
        self._start_flusher()
        self._wake.set()

    def _start_flusher(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Show the rest and end the reply; Tencent errors after a fallback propagate."""
        self._closing = True
        self._wake.set()
        self._start_flusher()
        assert self._task is not None
        await self._task

    async def abort(self) -> None:
        """Show nothing more: the call under way finishes (so that its message is known in
        `handles`), no other is made."""
        self._aborted = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            every = _EVERY.get(self.mode, 0.0)
            wait = max(0.0, self._last_call + every - time.monotonic())
            if wait and not self._aborted:  # the pace holds for the last call too
                await asyncio.sleep(wait)
            if self._aborted:
                return
            if self._closing:
                await self._step(final=True)
                return
            before = self._writer.shown
            self._wake.clear()  # before the step: a feed or close during it wakes the next wait
            await self._step(final=False)
            if self._writer.shown != before:
                self._last_call = time.monotonic()
                if self.first_visible is None:
                    self.first_visible = self._last_call
            if self._writer.shown < len(self.ready) and self.mode != "segments":
                continue  # more arrived meanwhile
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), STREAM_IDLE_S)
                continue
            await self._step(idle=True)

    async def _step(self, *, final: bool = False, idle: bool = False) -> None:
        try:
            if idle:
                await self._writer.idle()
            else:
                await self._writer.flush(final=final)
        except TencentAPIError as exc:
            simpler = _FALLBACK.get(self.mode)
            if self._fell_back or simpler is None:
                raise
            _log.warning(
                "reply.mode_fallback", mode=self.mode, to=simpler, error_code=exc.error_code
            )
            shown = self._writer.shown
            self.mode = simpler
            self._fell_back = True
            self._writer = _WRITERS[simpler](self)
            self._writer.shown = shown
            if not idle:
                await self._writer.flush(final=final)
