"""A Palabra streaming session as a sans-I/O state machine, in the style of websockets' `Protocol`.

`PalabraConnection` spans the whole session, across re-established WebSockets. It takes inputs —
`connection_made/_failed/_lost`, `receive_text`, `send_audio`, the commands (`pause`, `resume`,
`interrupt`, `get_task`, `speak`, `end`, `close`) and `tick(now)` — and returns outputs:
`events_received()`, `data_to_send()` (text frames for the current socket), `next_deadline()`, plus
`connect_at` (open a socket then; say `connecting()` when you do) and `close_wanted` (close the
current one). Time only enters through `now` arguments, so tests drive it with a fake clock. After
any input, call `tick(now)` before reading the outputs: time-dependent follow-ups (anchoring the
audio schedule, replay bookkeeping) happen there.

It owns: the readiness handshake in both dialects (a pushed `task_status` ack, SDK >= 2.2, or
`get_task` polling until `current_task`, the 2026-09 live probe); the command rate limits; 320 ms
chunking on a real-time schedule with silence padding when the producer stalls (Palabra closes after
10 s without audio and confirms a sentence only after trailing silence); the audio timeline — one
continuous timeline of seconds since the first audio, with a replay cursor so that after a
reconnect the audio since the last finalised utterance is sent again — the idle pause
(bot.palabra.idle) and the reconnect backoff.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.palabra import dialects
from bot.palabra import protocol as p
from bot.palabra.backoff import backoff_delays
from bot.palabra.commands import CommandQueue
from bot.palabra.dialects import DIALECTS, Dialect, Handshake
from bot.palabra.ending import Ending
from bot.palabra.errors import NOT_RETRYABLE, NotReadyError, PalabraError, SessionClosedError, as_palabra_error
from bot.palabra.idle import Idle, IdlePause, SkipMap
from bot.palabra.schedule import ChunkSchedule
from bot.palabra.task import SESSION_SAMPLE_RATE
from bot.palabra.timeline import AudioTimeline, StreamStats, is_quiet

log = logging.getLogger(__name__)

STABLE_AFTER_S = 30.0  # a connection up this long resets the reconnect attempt count


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
    skips: SkipMap  # Palabra's segment times -> the timeline (its offset, and the idle pauses' silence)
    sent_bytes: int = 0  # audio sent on this socket: where Palabra's clock for it stands
    ready: bool = False
    anchored: bool = False  # the audio schedule started (first tick after the task ran)
    eos_seen: bool = False
    error: PalabraError | None = None  # why we asked to close it during the handshake


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
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be 'auto', 'current' or 'legacy', got {dialect!r}")
        source = task["input_stream"]["source"]
        self.task, self.pace, self.dialect = task, pace, dialect
        self.ready_timeout, self.max_reconnects = ready_timeout, max_reconnects
        self.sample_rate = int(source.get("sample_rate", SESSION_SAMPLE_RATE))
        self.channels = int(source.get("channels", 1))
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
        self._commands = CommandQueue()
        self._outgoing: list[str] = []
        self._events: list[p.Event] = []
        self.timeline = AudioTimeline(self.bytes_per_second, self.frame_bytes, self.chunk_bytes, self.stats)
        self._schedule = ChunkSchedule(self.chunk_s, pace)
        self._disconnected_at: float | None = None
        self._lost_reason = ""
        self._paused = False
        self._unpause_on: p.SetTask | None = None  # the set_task of resume(): audio flows once it is sent
        self._end: Ending | None = None
        self.idle_pause = IdlePause(idle_pause_s, self.bytes_per_second, self.frame_bytes, self.stats)

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

    # --- socket lifecycle inputs -----------------------------------------------------------------
    def connecting(self) -> None:
        """The I/O layer started the attempt `connect_at` asked for; its outcome comes as an input."""
        self.connect_at = None

    def connection_made(self, now: float) -> None:
        """A WebSocket is open: send the task."""
        if self._phase is not Phase.CONNECTING:
            raise RuntimeError(f"connection_made in phase {self._phase.value}")
        offset = self.timeline.history_start
        skips = SkipMap(offset / self.bytes_per_second)
        self._link = _Link(opened_at=now, offset=offset, ready_deadline=now + self.ready_timeout, skips=skips)
        self._phase, self.connect_at, self.close_wanted = Phase.HANDSHAKE, None, False
        self._commands.new_socket()  # fresh budgets on a new socket, whatever ended the last one
        self.timeline.rewind()
        self._command(p.SetTask(self.task), now)

    def connection_failed(self, now: float, error: BaseException) -> None:
        """A connect attempt (REST session, WebSocket upgrade) failed before a socket opened."""
        if not self.finished:
            self._phase = Phase.CONNECTING
            expected = isinstance(error, (PalabraError, OSError))  # anything else is not Palabra's: no retry
            if not expected:
                self.unexpected = error  # e.g. the database failing to record a new REST session
            self._retry_or_fail(now, as_palabra_error(error), retryable=expected)

    def connection_lost(self, now: float, reason: str) -> None:
        """The current socket closed (either side) or broke."""
        link, self._link = self._link, None
        self._schedule.stop()
        self._outgoing.clear()
        self._commands.new_socket()
        self.close_wanted = False
        if self._unpause_on is not None:  # resume() asked: the next socket's task starts running anyway
            self._paused, self._unpause_on = False, None
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
            self._end.socket_lost(now)
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
        if isinstance(event, p.ErrorMessage) and self.idle_pause.state is not Idle.OFF:
            self._refuse_idle_pause(event.code)
        if isinstance(event, (p.Transcription, p.OutputAudio)):
            self.idle_pause.palabra_answered()
        if isinstance(event, p.Transcription):
            event = event.mapped(link.skips.offset_at)
            if isinstance(event, p.ValidatedTranscription) and event.end is not None:
                self.timeline.finalised(event.end)
        elif isinstance(event, p.EndOfStream):
            link.eos_seen = True
        self._events.append(event)

    def _handshake(self, link: _Link, event: p.Event) -> bool:
        """Handle an event that arrives before the task runs; True if it is consumed here."""
        meaning, refusal = dialects.handshake_event(event, self.task)
        if meaning in (Handshake.READY, Handshake.READY_CONSUMED):
            self._became_ready(link)
        if refusal is not None:
            link.error, self.close_wanted = refusal, True
        return meaning in (Handshake.READY_CONSUMED, Handshake.CONSUMED)

    def _became_ready(self, link: _Link) -> None:
        link.ready, self._phase = True, Phase.STREAMING
        self._ever_ready = True
        if self.idle_pause.state is Idle.RESUMING:  # the new socket's set_task already resumed the task
            self.idle_pause.resume_backlog = max(0, len(self.timeline.pending) - self.chunk_bytes)
            self.idle_pause.ended()
        if self._paused or self.idle_pause.state is Idle.PAUSED:  # the new task runs; tell it we are still paused
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
        if self.idle_pause.state is Idle.PAUSED:
            if is_quiet(pcm):
                self._skip_silence()
                return False
            self._resume_from_idle()
            return True
        return before < self.chunk_bytes <= self.timeline.unsent_bytes

    def _skip_silence(self) -> None:
        link = self._link  # without one, the next socket's offset counts what is skipped
        at = None if link is None else (link.sent_bytes, link.skips)
        self.idle_pause.skip_quiet(self.timeline, at, ending=self._end is not None)

    # --- commands --------------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop sending audio (pause_task); Palabra keeps the task and does not time out. Takes over
        from an idle pause: only resume() ends it."""
        self._paused, self._unpause_on = True, None
        self.idle_pause.ended()
        self.timeline.pending.clear()
        if self.ready:
            self._commands.append(p.PauseTask())

    def resume(self) -> None:
        """Resume after pause() by sending the task again; audio flows once that set_task is sent."""
        if self.ready:
            self._unpause_on = p.SetTask(self.task)
            self._commands.append(self._unpause_on)
        else:
            self._paused = False

    def interrupt(self, languages: Sequence[str] | None = None) -> None:
        """Drop the phrase in flight (interrupt_task; flush_task in the legacy dialect)."""
        if self.ready:
            self._commands.append(dialects.interrupt_command(self.dialect, languages))

    def get_task(self) -> None:
        if self.ready:
            self._commands.append(p.GetTask())

    def speak(self, text: str, language: str, *, translate: bool = False) -> None:
        if self.ready:
            self._commands.append(p.TtsTask(text, language, translate))

    def end(self, timeout: float = 30.0) -> None:
        """Send the buffered audio (at its pace), then end_task; wait up to `timeout` for the end of stream."""
        if self._end is None and not self.finished:
            self._end = Ending(timeout)
            if self.idle_pause.state is Idle.PAUSED:
                # Every utterance is final and nothing was sent since: nothing to confirm, so no end_task
                # (the docs do not say how a paused task answers one).
                log.info("ending a Palabra stream paused for silence: closing it")
                self.close()

    def close(self) -> None:
        """Stop at once (no end_task)."""
        if not self.finished:
            self._phase, self.connect_at = Phase.DONE, None
            self.close_wanted = self._link is not None

    # --- time ------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        if self._phase is Phase.HANDSHAKE:
            self._tick_handshake(now)
        if self._end is not None:
            self._tick_end(self._end, now)
        if self._phase is Phase.STREAMING:
            self._tick_streaming(now)
        if self._link is not None and not self.finished:
            self._flush_commands(now)
        self.idle_pause.count_time(now, over=self.finished or self._phase is Phase.ENDING)

    def _tick_handshake(self, now: float) -> None:
        link = self._link
        assert link is not None
        if link.error is not None:
            return  # closing; connection_lost follows
        if now >= link.ready_deadline:
            link.error = NotReadyError(f"Palabra did not start the task within {self.ready_timeout:.0f} s")
            self.close_wanted = True
        elif dialects.polls(self.dialect) and not self._commands and now >= self._poll_at(link):
            self._commands.append(p.GetTask())

    def _poll_at(self, link: _Link) -> float:
        return dialects.poll_at(link.opened_at, self._commands.last_sent("task"))

    def _tick_end(self, end: Ending, now: float) -> None:
        if self._phase in (Phase.CONNECTING, Phase.HANDSHAKE) and end.waited_too_long(now):
            log.warning("ending a Palabra session that is not connected; closing without end_task")
            self.close()
        elif self._phase is Phase.STREAMING:
            end.draining(now, self.unsent_bytes / self.bytes_per_second / self.pace, self.chunk_s)
        elif self._phase is Phase.ENDING and end.eos_overdue(now):
            log.warning("Palabra did not finish the stream within %.0f s of end_task; closing", end.timeout)
            self.close()

    def _tick_streaming(self, now: float) -> None:
        link = self._link
        assert link is not None
        if not link.anchored:
            self._start_schedule(link, now)
        if not self._paused and self.idle_pause.state is Idle.OFF:
            self._send_due_audio(now)
            self._pause_if_idle(now)
        end = self._end
        if end is not None and end.drained(now, self.unsent_bytes):
            if self.unsent_bytes:
                unsent_s = self.unsent_bytes / self.bytes_per_second
                log.warning("ending the Palabra stream with %.2f s of audio not sent", unsent_s)
            self._commands.append(dialects.end_command(self.dialect))
            self._phase = Phase.ENDING
            end.end_task_sent(now)

    def _start_schedule(self, link: _Link, now: float) -> None:
        """First tick after the task ran: start the audio schedule; after a reconnect, start the replay."""
        link.anchored = True
        self._schedule.start(now)
        if self._disconnected_at is None:
            return
        outage_s = now - self._disconnected_at
        replay = self.timeline.replay_bytes
        backlog = min(len(self.timeline.pending), int(outage_s * self.pace * self.bytes_per_second))
        backlog, self.idle_pause.resume_backlog = max(backlog, self.idle_pause.resume_backlog), 0
        self._schedule.catch_up = replay + backlog
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
        while self._schedule.due(now, self.unsent_bytes, self.chunk_bytes, draining=self._end is not None):
            chunk, padding = self.timeline.take_chunk()
            if padding == self.chunk_bytes and self.stats.silence_chunks == 1:
                log.debug("audio producer stalled; sending silence to keep the Palabra stream alive")
            silent = chunk == self._silent_chunk
            self._outgoing.append(self._silent_message if silent else p.InputAudioData(chunk).to_json())
            self.idle_pause.chunk_sent(len(chunk), silent or is_quiet(chunk))
            if self._link is not None:
                self._link.sent_bytes += len(chunk)
            self._schedule.sent(now, len(chunk))

    def _pause_if_idle(self, now: float) -> None:
        if (
            not self.idle_pause.due
            or self._end is not None
            or self._schedule.catch_up
            or self._commands
            or not self.timeline.idle
            or self._commands.slot(p.PauseTask()) > now  # never a stream that stops with no pause_task sent
        ):
            return
        self.idle_pause.begin(now)
        self.timeline.forget_sent()
        self._skip_silence()
        self._command(p.PauseTask(), now)

    def _refuse_idle_pause(self, code: str) -> None:
        if self.idle_pause.refuse(code):
            self._resume_from_idle()

    def _resume_from_idle(self) -> None:
        """Speech, or a refused pause: set_task resumes the task, now if a socket streams (else the next
        socket's own set_task does, see _became_ready)."""
        self.idle_pause.state = Idle.RESUMING
        if self.ready:
            self._commands.append(p.SetTask(self.task))

    def _end_idle(self, now: float) -> None:
        """The task runs again after an idle pause: the waiting audio goes out from `now`."""
        self.idle_pause.ended()
        self.idle_pause.count_time(now, over=True)
        self._schedule.start(now, catch_up=max(0, self.unsent_bytes - self.chunk_bytes))  # waited for the budget

    # --- commands and their rate limits ----------------------------------------------------------
    def _command(self, command: p.Command, now: float) -> None:
        self._commands.append(command)
        self._flush_commands(now)

    def _flush_commands(self, now: float) -> None:
        """Send queued commands in order, each once its rate-limit budget allows."""
        link = self._link
        if link is None:
            return
        for command in self._commands.due(now):
            self._outgoing.append(command.to_json())
            if command is self._unpause_on:
                self._paused, self._unpause_on = False, None
                self._schedule.start(now, catch_up=self._schedule.catch_up)  # a replay under way goes on
            if isinstance(command, p.SetTask) and self.idle_pause.state is Idle.RESUMING and link.ready:
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
            slot = self._commands.next_slot()
            if slot is not None:
                candidates.append(slot)
            if self._phase is Phase.HANDSHAKE and link.error is None:
                candidates.append(link.ready_deadline)
                if dialects.polls(self.dialect):
                    candidates.append(self._poll_at(link))
            streaming = self._phase is Phase.STREAMING and not self._paused and self.idle_pause.state is Idle.OFF
            chunk_due = self._schedule.deadline(full=self.unsent_bytes >= self.chunk_bytes) if streaming else None
            if chunk_due is not None:
                candidates.append(chunk_due)
        if self._end is not None and not self.finished:
            connected = self._phase not in (Phase.CONNECTING, Phase.HANDSHAKE)
            by_phase = self._end.deadline(connected=connected, streaming=self._phase is Phase.STREAMING)
            if by_phase is not None:
                candidates.append(by_phase)
        return min(candidates) if candidates else None
