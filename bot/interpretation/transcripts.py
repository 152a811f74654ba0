"""Transcripts of a live session: kept in memory, posted to Discord, exported as .txt and .srt.

Posting: one message per utterance, under the speaker's name and avatar (a channel webhook). The
partial transcript is edited in place as it grows, coalesced to at most one edit per `partial_interval_s`
per channel (only the newest text of each utterance is kept while waiting); the final transcript with
its translations is never dropped: it stays queued and is retried until Discord takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import discord

from bot.interpretation.srt import format_srt
from bot.messages import clip
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

WEBHOOK_NAME = "Interpreter"
DEFAULT_PARTIAL_INTERVAL_S = 1.0
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # then keeps retrying every 8 s until drained or closed


@dataclass(frozen=True)
class Speaker:
    user_id: int | None
    name: str
    avatar_url: str | None = None


UNKNOWN_SPEAKER = Speaker(None, "Unknown speaker")


@dataclass
class Line:
    """One utterance: what was said, by whom, when (session timeline seconds), and its translations."""

    transcription_id: str
    speaker: Speaker = UNKNOWN_SPEAKER
    start: float | None = None
    end: float | None = None
    language: str | None = None
    text: str = ""
    translations: dict[str, str] = field(default_factory=dict)
    final: bool = False
    order: int = 0
    _parts: dict[str, dict[int, str]] = field(default_factory=dict, repr=False)

    def add_translation(self, language: str, text: str, part: int | None = None) -> str:
        """Record one translation message; Palabra may send a long translation in parts
        (`translation_part_id` 0, 1, ...), in any order and repeated. Returns the language's whole text."""
        parts = self._parts.setdefault(language, {})
        parts[part if part is not None else 0] = text
        self.translations[language] = " ".join(parts[index] for index in sorted(parts) if parts[index])
        return self.translations[language]


class Transcript:
    """The session's utterances in arrival order; finals are the transcript proper."""

    def __init__(self) -> None:
        self.lines: dict[str, Line] = {}

    def line(self, transcription_id: str) -> Line:
        if transcription_id not in self.lines:
            self.lines[transcription_id] = Line(transcription_id, order=len(self.lines))
        return self.lines[transcription_id]

    def finals(self) -> list[Line]:
        found = [line for line in self.lines.values() if line.final and line.text]
        return sorted(found, key=lambda line: (line.start is None, line.start or 0.0, line.order))

    def to_txt(self, targets: list[str]) -> str:
        blocks = []
        for line in self.finals():
            stamp = clock_time(line.start) if line.start is not None else "--:--:--"
            rows = [f"[{stamp}] {line.speaker.name}: {line.text}"]
            rows += [f"    {lang}: {line.translations[lang]}" for lang in targets if line.translations.get(lang)]
            blocks.append("\n".join(rows))
        return "\n\n".join(blocks) + ("\n" if blocks else "")

    def to_srt(self, targets: list[str]) -> str:
        return format_srt(
            (
                line.start,
                line.end,
                [f"{line.speaker.name}: {line.text}"]
                + [f"{lang}: {line.translations[lang]}" for lang in targets if line.translations.get(lang)],
            )
            for line in self.finals()
        )


def clock_time(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def render(line: Line, targets: list[str]) -> str:
    """The message text of an utterance: the growing partial in italics, or the final with translations."""
    if not line.final:
        return clip(f"*{_escape(line.text)} …*")
    rows = [_escape(line.text)]
    rows += [f"> **{lang}**: {_escape(line.translations[lang])}" for lang in targets if line.translations.get(lang)]
    return clip("\n".join(rows))


def _escape(text: str) -> str:
    return discord.utils.escape_mentions(text)


# --- posting ----------------------------------------------------------------------------------------


class MessageSink(Protocol):
    """Where transcript messages go; ids are Discord message ids."""

    async def send(self, speaker: Speaker, content: str) -> int: ...
    async def edit(self, message_id: int, content: str) -> None: ...
    async def delete(self, message_id: int) -> None: ...


WebhookHost = (discord.TextChannel, discord.VoiceChannel, discord.StageChannel, discord.ForumChannel)


class WebhookSink:
    """A channel webhook named "Interpreter" (created if missing): messages carry the speaker's name and
    avatar. Threads post through their parent channel's webhook."""

    def __init__(self, webhook: discord.Webhook, thread: discord.Thread | None = None) -> None:
        self.webhook = webhook
        self.thread = thread

    @classmethod
    async def for_channel(cls, channel: discord.abc.GuildChannel | discord.Thread, bot_user_id: int) -> WebhookSink:
        thread = channel if isinstance(channel, discord.Thread) else None
        host = thread.parent if thread is not None else channel
        if not isinstance(host, WebhookHost):
            raise TypeError(f"channel {channel.id} cannot host a webhook")
        for webhook in await host.webhooks():
            if (
                webhook.name == WEBHOOK_NAME
                and webhook.token
                and (webhook.user is None or webhook.user.id == bot_user_id)
            ):
                return cls(webhook, thread)
        return cls(await host.create_webhook(name=WEBHOOK_NAME, reason="interpretation transcripts"), thread)

    @property
    def _thread(self) -> discord.Thread:
        """The thread to post in, or discord.py's "not given" (the channel itself)."""
        return self.thread if self.thread is not None else discord.utils.MISSING

    async def send(self, speaker: Speaker, content: str) -> int:
        message = await self.webhook.send(
            content,
            username=speaker.name[:80] or "Unknown speaker",
            avatar_url=speaker.avatar_url,
            wait=True,
            allowed_mentions=discord.AllowedMentions.none(),
            thread=self._thread,
        )
        return message.id

    async def edit(self, message_id: int, content: str) -> None:
        await self.webhook.edit_message(
            message_id, content=content, allowed_mentions=discord.AllowedMentions.none(), thread=self._thread
        )

    async def delete(self, message_id: int) -> None:
        await self.webhook.delete_message(message_id, thread=self._thread)


class ChannelSink:
    """Fallback without the Manage Webhooks permission: the bot posts "**name**: text" itself."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel
        self._messages: dict[int, discord.Message] = {}
        self._speakers: dict[int, Speaker] = {}

    async def send(self, speaker: Speaker, content: str) -> int:
        message = await self.channel.send(
            clip(f"**{_escape(speaker.name)}**: {content}"), allowed_mentions=discord.AllowedMentions.none()
        )
        self._messages[message.id], self._speakers[message.id] = message, speaker
        return message.id

    async def edit(self, message_id: int, content: str) -> None:
        speaker = self._speakers[message_id]
        await self._messages[message_id].edit(content=clip(f"**{_escape(speaker.name)}**: {content}"))

    async def delete(self, message_id: int) -> None:
        await self._messages.pop(message_id).delete()


@dataclass
class _Posted:
    message_id: int
    speaker: Speaker
    content: str


class TranscriptPoster:
    """Posts a transcript's lines through a sink; call `partial_changed` / `final_changed` after updating
    a line, `drain()` before stopping, `close()` at the end."""

    def __init__(
        self,
        sink: MessageSink,
        transcript: Transcript,
        targets: list[str],
        *,
        partial_interval_s: float = DEFAULT_PARTIAL_INTERVAL_S,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
        on_error: Callable[[str], None] | None = None,
        on_posted: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink, self.transcript, self.targets = sink, transcript, targets
        self.partial_interval_s, self.retry_delays_s = partial_interval_s, retry_delays_s
        self.on_error, self.on_posted, self.clock = on_error, on_posted, clock
        self.posted: dict[str, _Posted] = {}
        # Utterances whose final is not yet posted, in order, each with a change count: a final that
        # changes while its post is in flight (translations right after the transcript) stays queued.
        self._finals: dict[str, int] = {}
        self._partials: dict[str, None] = {}  # ordered set of utterances with a newer partial
        self._next_partial_at = 0.0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self.sent = self.edits = self.retries = self.partials_coalesced = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="transcript-poster")

    def partial_changed(self, transcription_id: str) -> None:
        if transcription_id in self._finals or self.transcript.line(transcription_id).final:
            return
        if transcription_id in self._partials:
            self.partials_coalesced += 1
        self._partials[transcription_id] = None
        self._kick()

    def final_changed(self, transcription_id: str) -> None:
        self._partials.pop(transcription_id, None)
        self._finals[transcription_id] = self._finals.get(transcription_id, 0) + 1
        self._kick()

    @property
    def pending_finals(self) -> int:
        return len(self._finals)

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def drain(self, timeout: float) -> bool:
        """Wait (bounded) until every final is posted; partials still waiting are dropped. True if drained."""
        self._partials.clear()
        if not self._finals:
            return True
        self._wake.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        if self._finals:
            log.warning("%d transcript messages could not be posted before the session ended", len(self._finals))
        return not self._finals

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            delay = await self._step()
            if delay is None:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            elif delay > 0:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def _step(self) -> float | None:
        """Post one thing; returns how long to wait before the next step (None: nothing to do)."""
        if self._finals:
            tid, changes = next(iter(self._finals.items()))
            if await self._post(tid):
                if self._finals.get(tid) == changes:  # else it changed meanwhile: post it again
                    del self._finals[tid]
                self._failures = 0
                return 0.0
            return self._backoff()
        if self._partials:
            wait = self._next_partial_at - self.clock()
            if wait > 0:
                return wait
            tid = next(iter(self._partials))
            self._partials.pop(tid)
            self._next_partial_at = self.clock() + self.partial_interval_s
            if not await self._post(tid):
                self._partials.setdefault(tid, None)  # a partial that failed is retried only while still newest
                return self._backoff()
            self._failures = 0
            return 0.0
        return None

    def _backoff(self) -> float:
        delay = self.retry_delays_s[min(self._failures, len(self.retry_delays_s) - 1)]
        self._failures += 1
        self.retries += 1
        return delay

    async def _post(self, tid: str) -> bool:
        line = self.transcript.line(tid)
        content = render(line, self.targets)
        posted = self.posted.get(tid)
        try:
            if posted is not None and posted.speaker != line.speaker:
                # Attribution changed between the partial and the final: a webhook message's author is fixed.
                await _ignore_missing(self.sink.delete(posted.message_id))
                self.posted.pop(tid, None)
                posted = None
            if posted is None:
                message_id = await self.sink.send(line.speaker, content)
                self.posted[tid] = _Posted(message_id, line.speaker, content)
                self.sent += 1
                if self.on_posted is not None:
                    self.on_posted()
            elif posted.content != content:
                await self.sink.edit(posted.message_id, content)
                posted.content = content
                self.edits += 1
            return True
        except discord.NotFound:
            self.posted.pop(tid, None)  # the message was deleted by someone: post it anew next time
            self._report(f"transcript message for {tid} was deleted; posting it again")
            return False
        except (TimeoutError, discord.HTTPException, OSError) as exc:
            self._report(f"posting a transcript message failed ({type(exc).__name__}: {exc}); retrying")
            return False

    def _report(self, text: str) -> None:
        log.warning("%s", text)
        if self.on_error is not None:
            self.on_error(text)


async def _ignore_missing(call: Awaitable[None]) -> None:
    with contextlib.suppress(discord.NotFound):
        await call
