"""A Palabra streaming session as a sans-I/O state machine, in the style of websockets' `Protocol`.

`PalabraConnection` spans the whole session, across re-established WebSockets. It takes inputs —
`connection_made/_failed/_lost`, `receive_text`, `send_audio`, the commands (`pause`, `resume`,
`interrupt`, `get_task`, `speak`, `end`, `close`) and `tick(now)` — and returns outputs:
`events_received()`, `data_to_send()` (text frames for the current socket), `next_deadline()`, plus
`connect_at` (open a socket then; say `connecting()` when you do) and `close_wanted` (close the
current one). Time only enters
through `now` arguments, so tests drive it with a fake clock. After any input, call `tick(now)`
before reading the outputs: time-dependent follow-ups (anchoring the audio schedule, replay
bookkeeping) happen there.

It owns: the readiness handshake in both dialects (a pushed `task_status` ack, SDK >= 2.2, or
`get_task` polling until `current_task`, the 2026-09 live probe); the command rate limits; 320 ms
chunking on a real-time schedule with silence padding when the producer stalls (Palabra closes after
10 s without audio and confirms a sentence only after trailing silence); the audio timeline — one
continuous timeline of seconds since the first audio, with a replay cursor so that after a
reconnect the audio since the last finalised utterance is sent again — the idle pause (below) and
the reconnect backoff.

Idle pause (`idle_pause_s`): once that much audio in a row was quiet (nothing above about -60 dBFS: Opus
decodes the pauses inside a transmission as +-1 LSB, not zeros), every utterance is final and
Palabra has sent nothing for as long, the stream sends `pause_task` and stops sending silence: the
docs say a paused task is not billed and does not time out. The first voiced audio resumes it
(`set_task` with the same task, which the docs say resumes a paused one) and goes out right behind it,
after a short lead of the silence before it, so no syllable is lost; the silence not sent still counts
on the timeline, so segment times after the pause land where the mixer put the audio.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.palabra import protocol as p
from bot.palabra.backoff import backoff_delays
from bot.palabra.errors import NOT_RETRYABLE, NotReadyError, PalabraConnectionError, PalabraError, SessionClosedError
from bot.palabra.task import COMMAND_RATE_LIMITS, SESSION_SAMPLE_RATE, rejection
from bot.palabra.timeline import AudioTimeline, StreamStats, is_quiet

log = logging.getLogger(__name__)

# Sources, where they disagree. Chunk length: Palabra's publishing page says 320 ms is optimal (docs).
# Readiness: SDK 2.2 waits for a pushed `task_status`; the 2026-09 live probe got none and had to poll
# `get_task` (the probe wins over the SDK), so "auto" accepts the ack and polls. Ending: the docs
# describe `end_task {eos_timeout, force}` answered by `eos`; the live probe saw `end_task {}` answered
# by `end_of_stream` (the probe wins), so "auto" sends `{}` and either end message is accepted;
# "legacy" sends the docs' form. Interrupt: the docs' management page (cited in our notes; not among
# the primary pages) names `flush_task`, SDK >= 2.1.1 `interrupt_task`; no probe covered it. "auto"
# keeps Palabra's newest SDK's name, "legacy" the docs'. The product itself never interrupts.
Dialect = Literal["auto", "current", "legacy"]
DIALECTS = ("auto", "current", "legacy")
RATE_LIMIT_MARGIN_S = 0.05  # keep clear of the server's own measurement of the interval
POLL_INTERVAL_S = 2.1  # get_task while waiting for the task; shares set_task's 1-per-2-s budget
STALL_GRACE_CHUNKS = 1.0  # wait this many chunk lengths for late audio before padding with silence
STABLE_AFTER_S = 30.0  # a connection up this long resets the reconnect attempt count
CATCH_UP_SPEED = 2.0  # replayed and backlogged audio goes out this much faster than real time
# After an idle pause the stream restarts with this much of the silence before the speech: the same
# lead the session starts with (bot.interpretation.session.STREAM_LEAD_S), which keeps every chunk
# full by its deadline without delaying it.
RESUME_LEAD_S = 0.25
LEGACY_EOS_TIMEOUT = 4


class Idle(enum.Enum):
    OFF = "off"  # streaming as usual
    PAUSED = "paused"  # pause_task sent (or queued): silence is counted, not sent
    RESUMING = "resuming"  # voiced audio came: set_task queued, the audio waits for it


class Phase(enum.Enum):
    CONNECTING = "connecting"  # no socket: waiting for `connect_at` (first connect or after a drop)
    HANDSHAKE = "handshake"  # socket open, set_task sent, waiting for the task to run
    STREAMING = "streaming"  # the task runs: audio flows (and, once `end` was asked, drains)
    ENDING = "ending"  # end_task sent: waiting for end_of_stream / eos and the server's close
    DONE = "done"
    FAILED = "failed"


@dataclass
class _Link:
    """What is known about the current socket."""

    opened_at: float
    offset: int  # timeline byte where this socket's audio starts (its segment times count from here)
    ready_deadline: float
    sent_bytes: int = 0  # audio sent on this socket: where Palabra's clock for it stands
    # Idle pauses on this socket: (Palabra's time from which a segment is after the pause, the timeline
    # seconds skipped before it in all), in order.
    skips: list[tuple[float, float]] = field(default_factory=list)
    last_command: dict[str, float] = field(default_factory=dict)  # rate-limit budget -> time of last send
    ready: bool = False
    anchored: bool = False  # the audio schedule started (first tick after the task ran)
    eos_seen: bool = False
    error: PalabraError | None = None  # why we asked to close it during the handshake


@dataclass
class _End:
    timeout: float
    wait_until: float | None = None  # give up waiting for a (re)connection at this time
    drain_until: float | None = None  # stop sending buffered audio at this time
    eos_until: float | None = None  # stop waiting for end_of_stream at this time


class PalabraConnection:
    def __init__(
        self,
        task: dict[str, Any],
        *,
        chunk_ms: int = 320,
        pace: float = 1.0,
        ready_timeout: float = 30.0,
        max_reconnects: int = 5,
        dialect: Dialect = "auto",
        rng: random.Random | None = None,
        idle_pause_s: float | None = None,
    ) -> None:
        if pace <= 0:
            raise ValueError("pace must be positive")
        if idle_pause_s is not None and idle_pause_s <= 0:
            raise ValueError("idle_pause_s must be positive (None: never pause)")
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be 'auto', 'current' or 'legacy', got {dialect!r}")
        source = task["input_stream"]["source"]
        self.task, self.pace, self.dialect = task, pace, dialect
        self.ready_timeout, self.max_reconnects = ready_timeout, max_reconnects
        self.sample_rate, self.channels = (
            int(source.get("sample_rate", SESSION_SAMPLE_RATE)),
            int(source.get("channels", 1)),
        )
        self.zlib_audio = (task.get("output_stream") or {}).get("target", {}).get("format") == "zlib_pcm_s16le"
        self.frame_bytes = 2 * self.channels
        self.bytes_per_second = self.sample_rate * self.frame_bytes
        self.chunk_bytes = int(self.sample_rate * chunk_ms / 1000) * self.frame_bytes
        # A silent session sends the same chunk of zeros three times a second: encode it once.
        self._silent_chunk = bytes(self.chunk_bytes)
        self._silent_message = p.InputAudioData(self._silent_chunk).to_json()
        self.chunk_s = self.chunk_bytes / self.bytes_per_second
        self.stats = StreamStats()
        self.failure: PalabraError | None = None
        self.unexpected: BaseException | None = None  # a failure to connect that was not Palabra's
        self.connect_at: float | None = 0.0  # connect at once
        self.close_wanted = False
        self._phase = Phase.CONNECTING
        self._ever_ready = False
        self._rng = rng or random.Random()
        self._backoff = backoff_delays(self._rng)
        self._attempts = 0  # consecutive reconnect attempts, see STABLE_AFTER_S
        self._link: _Link | None = None
        self._commands: deque[p.Command] = deque()
        self._outgoing: list[str] = []
        self._events: list[p.Event] = []
        self.timeline = AudioTimeline(self.bytes_per_second, self.frame_bytes, self.chunk_bytes, self.stats)
        self._catch_up = 0  # replay + outage backlog still to send at CATCH_UP_SPEED
        self._next_chunk_at: float | None = None
        self._disconnected_at: float | None = None
        self._lost_reason = ""
        self._paused = False
        self._unpause_on_set_task = False
        self._end: _End | None = None
        self.idle_pause_s = idle_pause_s
        self._idle_pause_bytes = None if idle_pause_s is None else int(idle_pause_s * self.bytes_per_second)
        self._resume_lead_bytes = int(RESUME_LEAD_S * self.sample_rate) * self.frame_bytes
        self._silent_run = 0  # bytes of silence sent in a row, reset by anything Palabra sends back
        self._idle = Idle.OFF
        self._idle_since: float | None = None

    # --- state -----------------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def ever_ready(self) -> bool:
        """The task ran at least once (start succeeded)."""
        return self._ever_ready

    @property
    def finished(self) -> bool:
        return self._phase in (Phase.DONE, Phase.FAILED)

    @property
    def ready(self) -> bool:
        return self._link is not None and self._link.ready and not self.finished

    @property
    def end_requested(self) -> bool:
        return self._end is not None

    @property
    def unsent_bytes(self) -> int:
        return self.timeline.unsent_bytes

    @property
    def idle(self) -> Idle:
        return self._idle

    def idle_paused_s(self, now: float) -> float:
        """Time spent in idle pauses so far, the current one included."""
        current = now - self._idle_since if self._idle_since is not None else 0.0
        return self.stats.idle_paused_s + current

    # --- socket lifecycle inputs -----------------------------------------------------------------
    def connecting(self) -> None:
        """The I/O layer started the attempt `connect_at` asked for; its outcome comes as an input."""
        self.connect_at = None

    def connection_made(self, now: float) -> None:
        """A WebSocket is open: send the task."""
        if self._phase is not Phase.CONNECTING:
            raise RuntimeError(f"connection_made in phase {self._phase.value}")
        offset = self.timeline.history_start
        self._link = _Link(opened_at=now, offset=offset, ready_deadline=now + self.ready_timeout)
        self._phase, self.connect_at, self.close_wanted = Phase.HANDSHAKE, None, False
        self.timeline.rewind()
        self._command(p.SetTask(self.task), now)

    def connection_failed(self, now: float, error: BaseException) -> None:
        """A connect attempt (REST session, WebSocket upgrade) failed before a socket opened."""
        if not self.finished:
            self._phase = Phase.CONNECTING
            expected = isinstance(error, (PalabraError, OSError))  # anything else is not Palabra's: no retry
            if not expected:
                self.unexpected = error  # e.g. the database failing to record a new REST session
            self._retry_or_fail(now, _as_palabra_error(error), retryable=expected)

    def connection_lost(self, now: float, reason: str) -> None:
        """The current socket closed (either side) or broke."""
        link, self._link = self._link, None
        self._next_chunk_at = None
        self._outgoing.clear()
        self._commands.clear()
        self.close_wanted = False
        if link is None or self.finished:
            return
        if now - link.opened_at >= STABLE_AFTER_S:
            self._attempts, self._backoff = 0, backoff_delays(self._rng)  # a new drop starts a new count
        if self._phase is Phase.ENDING:
            if not link.eos_seen:
                log.warning("Palabra streaming %s before the end of stream; the tail may be missing", reason)
            self._phase = Phase.DONE
            return
        self._phase = Phase.CONNECTING
        if not link.ready:
            error = link.error or SessionClosedError(f"Palabra closed the connection before the task ran: {reason}")
            self._retry_or_fail(now, error)
            return
        log.warning("Palabra streaming %s; reconnecting", reason)
        self._disconnected_at, self._lost_reason = now, reason
        if self._end is not None:
            self._end.wait_until, self._end.drain_until = now + self._end.timeout / 2, None
        self._retry_or_fail(now, SessionClosedError(f"Palabra streaming {reason}"))

    def _retry_or_fail(self, now: float, error: PalabraError, *, retryable: bool = True) -> None:
        retryable = retryable and not isinstance(error, NOT_RETRYABLE)
        if not self._ever_ready or not retryable or self._attempts >= self.max_reconnects:
            if self._ever_ready:
                log.error("giving up on the Palabra stream after %d reconnect attempts: %s", self._attempts, error)
            self.failure, self._phase, self.connect_at = error, Phase.FAILED, None
            return
        if self._attempts:
            log.warning("Palabra reconnect attempt %d/%d failed: %s", self._attempts, self.max_reconnects, error)
        self._attempts += 1
        self.connect_at = now + next(self._backoff)

    # --- data inputs -----------------------------------------------------------------------------
    def receive_text(self, text: str | bytes) -> None:
        """One frame from the server."""
        link = self._link
        event = p.parse_message(text, zlib_audio=self.zlib_audio)
        if event is None or link is None or self.finished:
            return
        if not link.ready and self._handshake(link, event):
            return
        if isinstance(event, (p.Transcription, p.OutputAudio)):
            self._silent_run = 0  # Palabra is still at work: not idle yet
        if isinstance(event, p.Transcription):
            event = event.mapped(lambda t: self._timeline_offset(link, t))
            if isinstance(event, p.ValidatedTranscription) and event.end is not None:
                self.timeline.finalised(event.end)
        elif isinstance(event, p.EndOfStream):
            link.eos_seen = True
        self._events.append(event)

    def _handshake(self, link: _Link, event: p.Event) -> bool:
        """Handle an event that arrives before the task runs; True if it is consumed here."""
        if isinstance(event, p.TaskStatus) and event.confirms_task:
            self._became_ready(link)
        elif isinstance(event, p.CurrentTask) and event.status in ("running", "paused"):
            self._became_ready(link)
            return True
        elif isinstance(event, p.ErrorMessage):
            if event.code != "NOT_FOUND":  # NOT_FOUND: get_task before the task exists
                link.error, self.close_wanted = rejection(event.code, event.desc, event.param, self.task), True
            return True
        return False

    def _timeline_offset(self, link: _Link, t: float) -> float:
        """Timeline seconds to add to Palabra's time `t` on this socket. Palabra's segment times are
        "seconds from stream start" (docs); no probe covered a pause, and we take them as the audio
        it was sent (what its recogniser hears; the emulator counts so too), so the silence an idle
        pause did not send is added back after each pause."""
        skipped = 0.0
        for after, total in link.skips:
            if t < after:
                break
            skipped = total
        return link.offset / self.bytes_per_second + skipped

    def _became_ready(self, link: _Link) -> None:
        link.ready, self._phase = True, Phase.STREAMING
        self._ever_ready = True
        if self._idle is Idle.RESUMING:  # the new socket's set_task already resumed the task
            self._end_idle()
        if self._paused or self._idle is Idle.PAUSED:  # the new task runs; tell it we are still paused
            self._commands.append(p.PauseTask())

    def send_audio(self, pcm: bytes) -> bool:
        """Audio in the task's input format, any length; it goes out in chunks on the schedule.
        True when `tick` has something to do at once (a chunk filled, or speech ends an idle pause);
        otherwise the deadline already given stands."""
        if self._phase is Phase.FAILED:
            raise SessionClosedError(f"the streaming session failed: {self.failure}") from self.failure
        if self._phase in (Phase.ENDING, Phase.DONE):
            raise SessionClosedError("the streaming session is ending; no more audio is accepted")
        if self._paused:  # paused on purpose: the audio is not for Palabra
            return False
        before = self.timeline.unsent_bytes
        self.timeline.pending.extend(pcm)
        if self._idle is Idle.PAUSED:
            if is_quiet(pcm):
                self._skip_silence()
                return False
            self._idle = Idle.RESUMING
            if self.ready:
                self._commands.append(p.SetTask(self.task))
            return True
        return before < self.chunk_bytes <= self.timeline.unsent_bytes

    def _skip_silence(self) -> None:
        """While idle-paused: count the pending silence on the timeline without sending it, all but the
        lead that will go out before the next speech (none once the stream is ending)."""
        keep = 0 if self._end is not None else self._resume_lead_bytes
        size = len(self.timeline.pending) - keep
        if size <= 0:
            return
        link = self._link
        self.timeline.skip_pending(size)
        if link is None:
            return  # the next socket's offset counts it
        # Any segment of the audio after the pause starts after its lead; any before it ended well
        # before the pause (idle_pause_s of silence): the boundary sits safely inside that silence.
        after = link.sent_bytes / self.bytes_per_second - min(1.0, (self.idle_pause_s or 0.0) / 2)
        total = (link.skips[-1][1] if link.skips else 0.0) + size / self.bytes_per_second
        if link.skips and link.skips[-1][0] == after:
            link.skips[-1] = (after, total)
        else:
            link.skips.append((after, total))

    # --- commands --------------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop sending audio (pause_task); Palabra keeps the task and does not time out."""
        self._paused, self._unpause_on_set_task = True, False
        self.timeline.pending.clear()
        if self.ready:
            self._commands.append(p.PauseTask())

    def resume(self) -> None:
        """Resume after pause() by sending the task again; audio flows once it is sent."""
        if self.ready:
            self._commands.append(p.SetTask(self.task))
            self._unpause_on_set_task = True
        else:
            self._paused = False

    def interrupt(self, languages: Sequence[str] | None = None) -> None:
        """Drop the phrase in flight (interrupt_task; flush_task in the legacy dialect)."""
        command_cls = p.FlushTask if self.dialect == "legacy" else p.InterruptTask
        if self.ready:
            self._commands.append(command_cls(tuple(languages) if languages else ("global",)))

    def get_task(self) -> None:
        if self.ready:
            self._commands.append(p.GetTask())

    def speak(self, text: str, language: str, *, translate: bool = False) -> None:
        if self.ready:
            self._commands.append(p.TtsTask(text, language, translate))

    def end(self, timeout: float = 30.0) -> None:
        """Send the buffered audio (at its pace), then end_task; wait up to `timeout` for the end of stream."""
        if self._end is None and not self.finished:
            self._end = _End(timeout)
            if self._idle is Idle.PAUSED:
                self._skip_silence()  # nothing to confirm: end_task can go at once

    def close(self) -> None:
        """Stop at once (no end_task)."""
        if not self.finished:
            self._phase, self.connect_at = Phase.DONE, None
            self.close_wanted = self._link is not None

    # --- time ------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        if self._idle is Idle.OFF and self._idle_since is not None:
            self.stats.idle_paused_s += now - self._idle_since
            self._idle_since = None
        if self._phase is Phase.HANDSHAKE:
            self._tick_handshake(now)
        if self._end is not None:
            self._tick_end(now)
        if self._phase is Phase.STREAMING:
            self._tick_streaming(now)
        if self._phase is Phase.ENDING and self._end and self._end.eos_until is not None and now >= self._end.eos_until:
            log.warning("Palabra did not finish the stream within %.0f s of end_task; closing", self._end.timeout)
            self.close()
        if self._link is not None and not self.finished:
            self._flush_commands(now)

    def _tick_handshake(self, now: float) -> None:
        link = self._link
        assert link is not None
        if link.error is not None:
            return  # closing; connection_lost follows
        if now >= link.ready_deadline:
            link.error = NotReadyError(f"Palabra did not start the task within {self.ready_timeout:.0f} s")
            self.close_wanted = True
        elif self._polls() and not self._commands and now >= self._poll_at(link):
            self._commands.append(p.GetTask())

    def _polls(self) -> bool:
        return self.dialect != "current"

    def _poll_at(self, link: _Link) -> float:
        return link.last_command.get("task", link.opened_at) + POLL_INTERVAL_S

    def _tick_end(self, now: float) -> None:
        end = self._end
        assert end is not None
        if self._phase in (Phase.CONNECTING, Phase.HANDSHAKE):
            end.wait_until = end.wait_until if end.wait_until is not None else now + end.timeout / 2
            if now >= end.wait_until:
                log.warning("ending a Palabra session that is not connected; closing without end_task")
                self.close()
        elif self._phase is Phase.STREAMING and end.drain_until is None:
            end.drain_until = now + self.unsent_bytes / self.bytes_per_second / self.pace + 2 * self.chunk_s + 1.0

    def _tick_streaming(self, now: float) -> None:
        link = self._link
        assert link is not None
        if not link.anchored:
            self._start_schedule(link, now)
        if not self._paused and self._idle is Idle.OFF:
            self._send_due_audio(now)
            self._pause_if_idle(now)
        end = self._end
        if end is not None and end.drain_until is not None and (self.unsent_bytes == 0 or now >= end.drain_until):
            if self.unsent_bytes:
                unsent_s = self.unsent_bytes / self.bytes_per_second
                log.warning("ending the Palabra stream with %.2f s of audio not sent", unsent_s)
            legacy = self.dialect == "legacy"
            self._commands.append(p.EndTask(eos_timeout=LEGACY_EOS_TIMEOUT, force=False) if legacy else p.EndTask())
            self._phase, end.eos_until = Phase.ENDING, now + end.timeout

    def _start_schedule(self, link: _Link, now: float) -> None:
        """First tick after the task ran: start the audio schedule; after a reconnect, start the replay."""
        link.anchored, self._next_chunk_at = True, now
        if self._disconnected_at is None:
            return
        outage_s = now - self._disconnected_at
        replay = self.timeline.replay_bytes
        backlog = min(len(self.timeline.pending), int(outage_s * self.pace * self.bytes_per_second))
        self._catch_up = replay + backlog
        replayed_s = replay / self.bytes_per_second
        self.stats.reconnects += 1
        self.stats.replayed_s += replayed_s
        self.stats.outages_s.append(outage_s)
        log.warning(
            "reconnected to Palabra (attempt %d, %.2f s after the drop); replaying %.2f s of audio since the "
            "last finalised utterance",
            self._attempts,
            outage_s,
            replayed_s,
        )
        self._events.append(p.Reconnected(self._attempts, replayed_s, self._lost_reason))
        self._disconnected_at = None

    def _send_due_audio(self, now: float) -> None:
        interval = self.chunk_s / self.pace
        while self._next_chunk_at is not None and now >= self._next_chunk_at:
            if self.unsent_bytes < self.chunk_bytes:
                if self._end is not None and self.unsent_bytes == 0:
                    return  # drained: nothing more to pad
                if now < self._next_chunk_at + interval * STALL_GRACE_CHUNKS:
                    return  # give late audio a moment before padding with silence
            catching_up = self._catch_up > 0
            chunk, padding = self.timeline.take_chunk()
            if padding == self.chunk_bytes and self.stats.silence_chunks == 1:
                log.debug("audio producer stalled; sending silence to keep the Palabra stream alive")
            self._catch_up = max(0, self._catch_up - len(chunk))
            silent = chunk == self._silent_chunk
            self._outgoing.append(self._silent_message if silent else p.InputAudioData(chunk).to_json())
            self._silent_run = self._silent_run + len(chunk) if silent or is_quiet(chunk) else 0
            if self._link is not None:
                self._link.sent_bytes += len(chunk)
            self._next_chunk_at += interval / CATCH_UP_SPEED if catching_up else interval
            if now - self._next_chunk_at > interval:  # fell behind (a long tick): re-anchor, never burst
                self._next_chunk_at = now

    def _pause_if_idle(self, now: float) -> None:
        limit = self._idle_pause_bytes
        if (
            limit is None
            or self._silent_run < limit
            or self._end is not None
            or self._catch_up
            or self._commands
            or not self.timeline.idle
            or self._slot(p.PauseTask()) > now  # never a stream that stops with no pause_task sent
        ):
            return
        self._idle, self._idle_since = Idle.PAUSED, now
        self.stats.idle_pauses += 1
        self.timeline.forget_sent()
        self._skip_silence()
        self._command(p.PauseTask(), now)
        log.info("nobody spoke for %.0f s: Palabra paused until someone does", self.idle_pause_s)

    def _end_idle(self, now: float | None = None) -> None:
        """The task runs again after an idle pause: the waiting audio goes out from `now` (None: a new
        socket's schedule starts it). The pause's length is counted at the next tick."""
        self._idle, self._silent_run = Idle.OFF, 0
        if now is not None:
            if self._idle_since is not None:
                self.stats.idle_paused_s += now - self._idle_since
                self._idle_since = None
            self._next_chunk_at = now
            backlog = self.timeline.unsent_bytes - self.chunk_bytes  # waited for set_task's budget
            self._catch_up = max(0, backlog)

    # --- commands and their rate limits ----------------------------------------------------------
    def _command(self, command: p.Command, now: float) -> None:
        self._commands.append(command)
        self._flush_commands(now)

    def _slot(self, command: p.Command) -> float:
        """Earliest time `command` may go out on the current socket."""
        limit = COMMAND_RATE_LIMITS.get(command.message_type)
        if limit is None or self._link is None:
            return float("-inf")
        budget, interval = limit
        last = self._link.last_command.get(budget)
        return float("-inf") if last is None else last + interval + RATE_LIMIT_MARGIN_S

    def _flush_commands(self, now: float) -> None:
        """Send queued commands in order, each once its rate-limit budget allows."""
        link = self._link
        while self._commands and link is not None:
            command = self._commands[0]
            if self._slot(command) > now:
                return
            self._commands.popleft()
            limit = COMMAND_RATE_LIMITS.get(command.message_type)
            if limit is not None:
                link.last_command[limit[0]] = now
            self._outgoing.append(command.to_json())
            if isinstance(command, p.SetTask) and self._unpause_on_set_task:
                self._paused, self._unpause_on_set_task, self._next_chunk_at = False, False, now
            if isinstance(command, p.SetTask) and self._idle is Idle.RESUMING and link.ready:
                self._end_idle(now)

    # --- outputs ---------------------------------------------------------------------------------
    def events_received(self) -> list[p.Event]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        frames, self._outgoing = self._outgoing, []
        return frames

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (None: only an input can change anything)."""
        candidates: list[float] = []
        if self._phase is Phase.CONNECTING and self.connect_at is not None:
            candidates.append(self.connect_at)
        link = self._link
        if link is not None and not self.finished:
            if self._commands:
                candidates.append(self._slot(self._commands[0]))
            if self._phase is Phase.HANDSHAKE and link.error is None:
                candidates.append(link.ready_deadline)
                if self._polls():
                    candidates.append(self._poll_at(link))
            if (
                self._phase is Phase.STREAMING
                and not self._paused
                and self._idle is Idle.OFF
                and self._next_chunk_at is not None
            ):
                late = self.unsent_bytes < self.chunk_bytes
                candidates.append(self._next_chunk_at + (self.chunk_s / self.pace * STALL_GRACE_CHUNKS if late else 0))
        end = self._end
        if end is not None and not self.finished:
            waiting = self._phase in (Phase.CONNECTING, Phase.HANDSHAKE)
            by_phase = (
                end.wait_until if waiting else end.drain_until if self._phase is Phase.STREAMING else end.eos_until
            )
            if by_phase is not None:
                candidates.append(by_phase)
        return min(candidates) if candidates else None


def _as_palabra_error(error: BaseException) -> PalabraError:
    if isinstance(error, PalabraError):
        return error
    if isinstance(error, OSError):
        return PalabraConnectionError(f"cannot connect to Palabra streaming: {error}")
    failure = SessionClosedError(f"unexpected error while connecting to Palabra: {type(error).__name__}")
    failure.__cause__ = error
    return failure
