"""The live caption feeds: per session and language, the latest state of the last lines, resumable.

Each change of a line gets the feed's next sequence number and moves that line to the end, so "every
line whose sequence number is above N, in order" is exactly what a page that last saw N is missing:
the newest state of each line it has not seen in that state, nothing skipped. Only the last
`MAX_LINES` lines are kept (a page shows a few), so a feed's memory is bounded however long it runs.

Sequence numbers and line keys start at the wall-clock millisecond the feed was made, so they also grow
across a restart: a page that reconnects to the session that resumed its crashed one (its link follows,
see `FeedHub.alias`) passes a last id below every line of the new feed and misses none of them, and no
new line takes the place of one it still shows.

`FeedHub` is the sessions' `TranscriptSubscriber`. A session's feeds live while it runs and for
`GRACE_S` after it ended (a page still learns that it ended); then they are forgotten, and with them
every link to the session. A session that is gone without having said so (its stop failed halfway)
counts as ended when the hub next looks, so no link outlives it. Sans-I/O apart from waking waiters:
time comes from the clock given, the running sessions from `running`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bot.interpretation.captions import CaptionUpdate

MAX_LINES = 50
GRACE_S = 120.0


@dataclass(frozen=True)
class FeedLine:
    seq: int
    key: int  # the line's number within its feed: the page updates that element in place
    text: str
    final: bool
    speaker: str


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class CaptionFeed:
    def __init__(self, max_lines: int = MAX_LINES, first_seq: int = 0) -> None:
        self.max_lines = max_lines
        self.seq = first_seq  # the first change gets first_seq + 1
        self.ended_seq: int | None = None
        self._lines: OrderedDict[str, FeedLine] = OrderedDict()  # transcription id -> line, by seq
        self._next_key = first_seq + 1  # keys too: a followed page must not update an old line in place
        self._waiters: set[asyncio.Event] = set()

    def update(self, transcription_id: str, text: str, final: bool, speaker: str) -> None:
        known = self._lines.get(transcription_id)
        if known is not None and known.final and not final:
            return  # a late partial never undoes the final
        if self.ended_seq is not None:
            return
        if known is None:
            key, self._next_key = self._next_key, self._next_key + 1
        else:
            key = known.key
        self.seq += 1
        self._lines[transcription_id] = FeedLine(self.seq, key, text, final, speaker)
        self._lines.move_to_end(transcription_id)
        while len(self._lines) > self.max_lines:
            self._lines.popitem(last=False)
        self._wake()

    def end(self) -> None:
        if self.ended_seq is None:
            self.seq += 1
            self.ended_seq = self.seq
            self._wake()

    def lines_after(self, seq: int) -> list[FeedLine]:
        """Lines changed after `seq` (0: every line kept), oldest change first."""
        return [line for line in self._lines.values() if line.seq > seq]

    def waiter(self) -> asyncio.Event:
        """An event set at every change, until `release`d."""
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def release(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def _wake(self) -> None:
        for event in self._waiters:
            event.set()


@dataclass
class SessionFeeds:
    source: str
    feeds: dict[str, CaptionFeed]  # language -> feed; the source language's feed is the transcript
    ended_at: float | None = None

    def feed_for(self, update_language: str | None) -> CaptionFeed | None:
        return self.feeds.get(self.source if update_language is None else update_language)


@dataclass
class FeedHub:
    """The feeds of this process's sessions; the sessions publish to it."""

    grace_s: float = GRACE_S
    clock: Callable[[], float] = time.monotonic
    running: Callable[[], Iterable[int]] | None = None  # ids of the sessions still running
    max_lines: int = MAX_LINES
    first_seq: Callable[[], int] = wall_clock_ms
    _sessions: dict[int, SessionFeeds] = field(default_factory=dict)
    _aliases: dict[int, int] = field(default_factory=dict)  # crashed session -> the session resuming it

    def watch(self, session_id: int, source: str, targets: Iterable[str]) -> None:
        """Open the feeds of a session (once; later calls change nothing)."""
        self.prune()
        if session_id not in self._sessions:
            languages = dict.fromkeys([source, *targets])
            first = self.first_seq()
            feeds = {lang: CaptionFeed(self.max_lines, first) for lang in languages}
            self._sessions[session_id] = SessionFeeds(source, feeds)

    def alias(self, crashed_id: int, session_id: int) -> None:
        """Links to `crashed_id` show `session_id`'s feeds (the session that resumed it), for as long as
        those feeds live."""
        self._aliases[crashed_id] = session_id

    def feed(self, session_id: int, language: str) -> CaptionFeed | None:
        """The feed a link may show, or None once the session is unknown or past its grace."""
        self.prune()
        session = self._sessions.get(self._aliases.get(session_id, session_id))
        return session.feeds.get(language) if session is not None else None

    def prune(self) -> None:
        if self.running is not None:
            running = set(self.running())
            for session_id in [sid for sid, s in self._sessions.items() if s.ended_at is None]:
                if session_id not in running:
                    self.session_ended(session_id)
        now = self.clock()
        expired = [
            sid for sid, s in self._sessions.items() if s.ended_at is not None and now - s.ended_at >= self.grace_s
        ]
        for session_id in expired:
            del self._sessions[session_id]
        if expired:
            self._aliases = {old: new for old, new in self._aliases.items() if new in self._sessions}

    # --- TranscriptSubscriber ------------------------------------------------------------------
    def caption_updated(self, update: CaptionUpdate) -> None:
        session = self._sessions.get(update.session_id)
        feed = session.feed_for(update.language) if session is not None else None
        if feed is not None:
            feed.update(update.transcription_id, update.text, update.final, update.speaker_name)

    def session_ended(self, session_id: int) -> None:
        session = self._sessions.get(session_id)
        if session is not None and session.ended_at is None:
            session.ended_at = self.clock()
            for feed in session.feeds.values():
                feed.end()
