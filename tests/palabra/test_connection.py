"""PalabraConnection, the sans-I/O streaming protocol, driven by a fake clock: no sockets, no sleeps."""

from __future__ import annotations

import base64
import itertools
import json
import random

import numpy as np
import pytest

from bot.palabra import protocol as p
from bot.palabra.backoff import backoff_delays
from bot.palabra.connection import Idle, PalabraConnection, Phase
from bot.palabra.errors import (
    AuthenticationError,
    NotReadyError,
    PalabraConnectionError,
    SessionClosedError,
    TaskValidationError,
    UnsupportedLanguageError,
)
from bot.palabra.task import build_task
from bot.palabra.timeline import SILENT_REPLAY_S

RATE = 16000
BPS = RATE * 2
CHUNK = int(RATE * 0.32) * 2
ACK = {"command": "set_task", "event": "started", "task_status": "running"}


def frame(message_type: str, data: dict) -> str:
    return json.dumps({"message_type": message_type, "data": data})


def validated(start: float, end: float, tid: str = "t1") -> str:
    segment = {"text": "hello", "start": start, "end": end}
    body = {"transcription_id": tid, "language": "en", "text": "hello", "segments": [segment]}
    return frame("validated_transcription", {"transcription": body})


def ramp(seconds: float, start: int = 0) -> bytes:
    """Audio whose every sample is distinct, so replayed bytes can be located exactly."""
    n = int(seconds * RATE)
    return (np.arange(start, start + n) % 30000).astype("<i2").tobytes()


class Wire:
    """Drives a connection through time: ticks at each deadline and records what it sends, and when."""

    def __init__(self, conn: PalabraConnection) -> None:
        self.conn, self.now = conn, 0.0
        self.sent: list[tuple[float, dict]] = []

    def advance(self, until: float) -> None:
        for _ in range(10_000):
            deadline = self.conn.next_deadline()
            if deadline is None or deadline > until or (deadline <= self.now and self.conn.connect_at is not None):
                self.at(until)
                return
            self.at(max(self.now, deadline))
        raise AssertionError("the connection keeps asking for ticks without progress")

    def at(self, now: float) -> None:
        self.now = now
        self.conn.tick(now)
        self.sent += [(now, json.loads(f)) for f in self.conn.data_to_send()]

    def receive(self, text: str) -> None:
        self.conn.receive_text(text)
        self.at(self.now)

    def types(self) -> list[str]:
        return [m["message_type"] for _, m in self.sent]

    def commands(self) -> list[tuple[float, str]]:
        return [(round(t, 3), m["message_type"]) for t, m in self.sent if m["message_type"] != "input_audio_data"]

    def audio(self) -> list[tuple[float, bytes]]:
        return [
            (t, base64.b64decode(m["data"]["data"])) for t, m in self.sent if m["message_type"] == "input_audio_data"
        ]

    def clear(self) -> None:
        self.sent.clear()


def started(dialect: str = "auto", **kwargs) -> Wire:
    conn = PalabraConnection(build_task("en", ["es"]), dialect=dialect, rng=random.Random(7), **kwargs)
    wire = Wire(conn)
    assert conn.connect_at == 0.0
    conn.connection_made(0.0)
    wire.at(0.0)
    wire.receive(frame("task_status", ACK))
    return wire


# --- handshake -------------------------------------------------------------------------------------
def test_ack_dialect_is_ready_on_task_status_and_audio_waits_for_it():
    conn = PalabraConnection(build_task("en", ["es"]), dialect="current")
    wire = Wire(conn)
    conn.connection_made(0.0)
    conn.send_audio(ramp(1.0))
    wire.advance(5.0)
    assert wire.types() == ["set_task"]  # no audio before the task runs, no polling in this dialect
    wire.receive(frame("warning", {"code": "AUDIO_STREAM_TOO_SLOW", "message": "x"}))  # not readiness
    assert conn.phase is Phase.HANDSHAKE
    wire.receive(frame("task_status", ACK))
    assert conn.phase is Phase.STREAMING and conn.ever_ready
    events = conn.events_received()
    assert isinstance(events[0], p.WarningMessage)
    assert isinstance(events[1], p.TaskStatus) and events[1].confirms_task
    assert wire.types()[1:] == ["input_audio_data"] and wire.sent[1][0] == 5.0


@pytest.mark.parametrize("dialect", ["auto", "legacy"])
def test_polling_dialect_asks_get_task_within_the_rate_limit_until_current_task(dialect):
    conn = PalabraConnection(build_task("en", ["es"]), dialect=dialect)
    wire = Wire(conn)
    conn.connection_made(0.0)
    wire.at(0.0)
    wire.advance(2.0)
    assert wire.commands() == [(0.0, "set_task")]  # get_task shares set_task's 1-per-2-s budget
    wire.advance(2.1)
    wire.receive(frame("error", {"code": "NOT_FOUND", "desc": "No active task found", "param": None}))
    wire.advance(4.0)
    assert wire.commands() == [(0.0, "set_task"), (2.1, "get_task")]
    wire.advance(4.2)
    assert wire.commands()[-1] == (4.2, "get_task")
    wire.receive(frame("current_task", {"task_status": "running"}))
    assert conn.phase is Phase.STREAMING
    assert conn.events_received() == []  # the NOT_FOUND and current_task answers were the handshake's


def test_no_answer_in_the_ack_dialect_fails_with_not_ready_after_the_timeout():
    conn = PalabraConnection(build_task("en", ["es"]), dialect="current", ready_timeout=30.0)
    wire = Wire(conn)
    conn.connection_made(0.0)
    wire.advance(29.9)
    assert not conn.close_wanted
    wire.advance(30.0)
    assert conn.close_wanted
    conn.connection_lost(30.1, "closed by us")
    assert conn.phase is Phase.FAILED and isinstance(conn.failure, NotReadyError)
    assert conn.connect_at is None  # a start is not retried


def test_close_before_the_task_runs_fails_the_start():
    conn = PalabraConnection(build_task("en", ["es"]))
    conn.connection_made(0.0)
    conn.connection_lost(0.5, "closed by Palabra (code 1011)")
    assert isinstance(conn.failure, SessionClosedError) and "before the task ran" in str(conn.failure)


def test_a_rejected_language_is_one_line_naming_the_code_and_the_list():
    conn = PalabraConnection(build_task("en", ["es", "xx-yy"]))
    wire = Wire(conn)
    conn.connection_made(0.0)
    errors = [
        {
            "loc": ("pipeline", "translations", 1, "target_language"),
            "msg": "unsupported language: 'xx-yy'",
            "type": "value_error",
        }
    ]
    desc = f"ValidationError(model='SetTaskRequestMessage', errors={errors!r})"
    wire.receive(frame("error", {"code": "VALIDATION_ERROR", "desc": desc, "param": None}))
    assert conn.close_wanted
    conn.connection_lost(0.2, "closed by us")
    failure = conn.failure
    assert isinstance(failure, UnsupportedLanguageError) and failure.language == "xx-yy"
    assert str(failure) == failure.user_message
    assert "'xx-yy'" in str(failure) and "/languages" in str(failure) and "ValidationError(" not in str(failure)
    assert "\n" not in str(failure)


def test_another_validation_error_reads_as_loc_and_message():
    task = build_task("en", ["es"])
    conn = PalabraConnection(task)
    Wire(conn)
    conn.connection_made(0.0)
    errors = [
        {
            "loc": ("pipeline", "transcription", "segment_confirmation_silence_threshold"),
            "msg": "ensure this value is greater than or equal to 0.3",
            "type": "value_error.number.not_ge",
        }
    ]
    desc = f"ValidationError(model='SetTaskRequestMessage', errors={errors!r})"
    conn.receive_text(frame("error", {"code": "VALIDATION_ERROR", "desc": desc, "param": None}))
    conn.connection_lost(0.2, "closed by us")
    assert isinstance(conn.failure, TaskValidationError)
    assert not isinstance(conn.failure, UnsupportedLanguageError)
    assert str(conn.failure) == (
        "Palabra rejected the task: pipeline.transcription.segment_confirmation_silence_threshold: "
        "ensure this value is greater than or equal to 0.3"
    )
    assert conn.failure.desc == desc


# --- rate limits -----------------------------------------------------------------------------------
def test_commands_wait_for_their_budget_in_order():
    wire = started()  # set_task at 0
    conn = wire.conn
    wire.advance(0.5)
    conn.pause()
    wire.at(0.5)
    conn.resume()  # set_task again: its budget (shared with get_task) frees at 2.05; audio waits for it
    wire.advance(2.5)
    conn.pause()  # pause_task's own budget frees at 3.55
    conn.get_task()  # its budget frees at 4.1, and it stays behind the pause_task
    wire.advance(10.0)
    assert wire.commands() == [
        (0.0, "set_task"),
        (0.5, "pause_task"),
        (2.05, "set_task"),
        (3.55, "pause_task"),
        (4.1, "get_task"),
    ]
    audio_times = [t for t, _ in wire.audio()]
    assert all(t < 0.5 or 2.05 <= t <= 2.5 for t in audio_times)  # paused means no audio, not even silence
    assert any(2.05 <= t <= 2.5 for t in audio_times)  # resumed: keep-alive silence flows again


# --- chunking and padding --------------------------------------------------------------------------
def test_chunks_are_exact_on_a_real_time_schedule_and_stalls_are_padded():
    wire = started()
    pcm = ramp(1.0)
    wire.conn.send_audio(pcm)
    wire.advance(2.0)
    chunks = wire.audio()
    assert {len(c) for _, c in chunks} == {CHUNK}
    times = [round(t, 2) for t, _ in chunks]
    # three full chunks, then the 40 ms tail waits one chunk length for more audio, then silence
    assert times == [0.0, 0.32, 0.64, 1.28, 1.6, 1.92]
    sent = b"".join(c for _, c in chunks)
    assert sent[: len(pcm)] == pcm and not any(sent[len(pcm) :])
    stats = wire.conn.stats
    assert stats.audio_bytes_sent == len(pcm) and stats.silence_chunks == 3 and stats.chunks_sent == 6


def test_a_silent_chunk_is_encoded_once_and_speech_after_it_as_itself():
    wire = started()
    conn = wire.conn
    conn.send_audio(bytes(2 * CHUNK))  # what an idle session's mixer sends: digital silence
    texts = []
    for now in (0.0, 0.32):
        conn.tick(now)
        texts += conn.data_to_send()
    assert len(texts) == 2 and texts[0] is texts[1]  # one cached message, not base64 + JSON each time
    assert base64.b64decode(json.loads(texts[0])["data"]["data"]) == bytes(CHUNK)
    speech = ramp(0.32, start=1)
    conn.send_audio(speech)
    conn.tick(0.64)
    [text] = conn.data_to_send()
    assert base64.b64decode(json.loads(text)["data"]["data"]) == speech


def test_pace_scales_the_schedule():
    wire = started(pace=4.0)
    wire.conn.send_audio(ramp(1.28))
    wire.advance(0.3)
    assert [round(t, 2) for t, _ in wire.audio()] == [0.0, 0.08, 0.16, 0.24]


# --- replay on one timeline ------------------------------------------------------------------------
def test_reconnect_replays_the_unfinished_utterance_and_keeps_one_timeline():
    wire = started()
    conn = wire.conn
    pcm = ramp(3.0)
    conn.send_audio(pcm)
    wire.advance(1.0)  # chunks at 0, .32, .64, .96: 1.28 s of audio on the timeline
    wire.receive(validated(0.1, 0.64))  # the first utterance is final up to 0.64 s
    assert conn.events_received()[-1].end == pytest.approx(0.64)
    conn.connection_lost(1.1, "connection lost (no close frame received or sent)")
    first_delay = next(backoff_delays(random.Random(7)))
    assert conn.phase is Phase.CONNECTING and conn.connect_at == pytest.approx(1.1 + first_delay)
    assert first_delay <= 0.25
    wire.clear()
    wire.advance(conn.connect_at)
    conn.connecting()
    conn.connection_made(wire.now)
    wire.at(wire.now)
    assert wire.types() == ["set_task"]
    wire.receive(frame("task_status", ACK))
    wire.advance(wire.now + 1.0)
    reconnected = [e for e in conn.events_received() if isinstance(e, p.Reconnected)]
    assert len(reconnected) == 1 and reconnected[0].replayed_s == pytest.approx(0.64)
    assert reconnected[0].attempt == 1 and "no close frame" in reconnected[0].reason
    resent = b"".join(c for _, c in wire.audio())
    start = int(0.64 * RATE) * 2
    assert resent == pcm[start : start + len(resent)]  # from the end of the final utterance, no gap
    times = [t for t, _ in wire.audio()]
    assert times[1] - times[0] == pytest.approx(0.16)  # replay goes out at twice real time
    # the new socket counts from its own first byte; events come out on the session's timeline
    wire.receive(validated(0.1, 0.5, "t2"))
    event = conn.events_received()[-1]
    assert (event.start, event.end) == (pytest.approx(0.74), pytest.approx(1.14))
    assert conn.stats.reconnects == 1 and conn.stats.outages_s == [pytest.approx(conn.stats.outages_s[0])]
    assert conn.stats.outages_s[0] == pytest.approx(first_delay)


def reconnect(wire: Wire) -> None:
    conn = wire.conn
    conn.connection_lost(wire.now, "connection lost (no close frame received or sent)")
    wire.advance(conn.connect_at)
    conn.connecting()
    conn.connection_made(wire.now)
    wire.at(wire.now)
    wire.receive(frame("task_status", ACK))


def test_only_a_little_of_a_long_silence_after_the_last_final_is_kept_for_replay():
    """An idle session: nothing but silence since the last finalised utterance is nothing worth
    replaying, so the history keeps SILENT_REPLAY_S of it (not 30 s, copied along with every chunk);
    after a reconnect the new socket's times still land on the one timeline."""
    wire = started()
    conn = wire.conn
    conn.send_audio(ramp(0.64))
    wire.advance(0.7)
    wire.receive(validated(0.0, 0.64))
    conn.send_audio(bytes(BPS * 10))  # ten seconds nobody speaks
    wire.advance(10.7)
    assert conn.timeline.replay_bytes <= SILENT_REPLAY_S * BPS
    wire.clear()
    reconnect(wire)
    starts_at = conn.timeline.history_start / BPS  # where the new socket's audio starts on the timeline
    wire.advance(wire.now + 1.0)
    replayed = next(e for e in conn.events_received() if isinstance(e, p.Reconnected)).replayed_s
    assert replayed <= SILENT_REPLAY_S + 0.32 and not any(b"".join(c for _, c in wire.audio()))
    wire.receive(validated(0.1, 0.5, "t2"))
    assert conn.events_received()[-1].start == pytest.approx(starts_at + 0.1)
    assert starts_at > 9.0  # the trimmed silence still counts on the timeline


def test_silence_after_an_unfinished_utterance_is_kept_with_it_for_replay():
    wire = started()
    conn = wire.conn
    pcm = ramp(0.64) + bytes(BPS * 5)
    conn.send_audio(pcm)
    wire.advance(6.0)  # no final: the utterance may still be in Palabra's pipeline
    assert conn.timeline.replay_bytes >= len(pcm)  # the utterance and all the silence after it
    wire.clear()
    reconnect(wire)
    wire.advance(wire.now + 0.5)
    assert b"".join(c for _, c in wire.audio())[: int(0.64 * RATE) * 2] == pcm[: int(0.64 * RATE) * 2]


def test_backoff_is_seeded_jittered_and_capped():
    delays = list(itertools.islice(backoff_delays(random.Random(3)), 8))
    assert delays == list(itertools.islice(backoff_delays(random.Random(3)), 8))
    assert delays != list(itertools.islice(backoff_delays(random.Random(4)), 8))
    nominal = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(n / 2 <= d < n for d, n in zip(delays, nominal, strict=True))
    with pytest.raises(ValueError):
        next(backoff_delays(random.Random(), base=0))


def drop_and_reconnect(wire: Wire, lost_at: float) -> float:
    wire.conn.connection_lost(lost_at, "connection lost")
    if wire.conn.phase is Phase.FAILED:
        return 0.0
    delay = wire.conn.connect_at - lost_at
    wire.advance(wire.conn.connect_at)
    wire.conn.connecting()
    wire.conn.connection_made(wire.now)
    wire.receive(frame("task_status", ACK))
    return delay


def test_reconnects_are_bounded_and_counted_anew_after_a_stable_connection():
    wire = started(max_reconnects=2)
    delays = [drop_and_reconnect(wire, wire.now + 1.0) for _ in range(2)]
    assert delays[0] <= 0.25 and 0.25 <= delays[1] <= 0.5  # growing
    drop_and_reconnect(wire, wire.now + 1.0)
    assert wire.conn.phase is Phase.FAILED and "connection lost" in str(wire.conn.failure)

    wire = started(max_reconnects=2)
    drop_and_reconnect(wire, wire.now + 1.0)
    drop_and_reconnect(wire, wire.now + 1.0)
    assert drop_and_reconnect(wire, wire.now + 31.0) <= 0.25  # up 30 s: a new drop starts a new count
    assert wire.conn.phase is Phase.STREAMING


def test_a_refused_credential_on_reconnect_is_not_retried_but_a_network_error_is():
    wire = started()
    wire.conn.connection_lost(1.0, "connection lost")
    wire.conn.connection_failed(1.2, PalabraConnectionError("cannot connect"))
    assert wire.conn.phase is Phase.CONNECTING and wire.conn.connect_at > 1.2
    wire.conn.connection_failed(1.8, AuthenticationError("refused", status=403))
    assert wire.conn.phase is Phase.FAILED and isinstance(wire.conn.failure, AuthenticationError)
    with pytest.raises(SessionClosedError, match="failed"):
        wire.conn.send_audio(b"\0\0")


def test_a_failure_that_is_not_palabras_is_kept_as_itself_and_not_retried():
    conn = PalabraConnection(build_task("en", ["es"]))
    conn.connection_failed(0.1, LookupError("the database could not record the session"))
    assert conn.phase is Phase.FAILED and isinstance(conn.unexpected, LookupError)
    assert isinstance(conn.failure, SessionClosedError) and conn.failure.__cause__ is conn.unexpected


# --- ending ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dialect", "end_data", "end_message"),
    [("auto", {}, "end_of_stream"), ("legacy", {"force": False, "eos_timeout": 4}, "eos")],
)
def test_end_drains_the_buffer_then_sends_end_task_and_waits_for_the_end_of_stream(dialect, end_data, end_message):
    wire = started(dialect)
    conn = wire.conn
    conn.send_audio(ramp(0.5))
    conn.end(timeout=5.0)
    wire.advance(3.0)
    end = [(t, m) for t, m in wire.sent if m["message_type"] == "end_task"]
    assert len(end) == 1 and end[0][1]["data"] == end_data
    assert end[0][0] == pytest.approx(0.64)  # after the padded tail chunk (sent at 0.32 + one grace)
    assert [round(t, 2) for t, _ in wire.audio()] == [0.0, 0.64]
    assert conn.phase is Phase.ENDING
    with pytest.raises(SessionClosedError, match="ending"):
        conn.send_audio(b"\0\0")
    wire.receive(frame(end_message, {}))
    conn.connection_lost(3.1, "closed by Palabra (code 1000)")
    assert conn.phase is Phase.DONE and conn.failure is None and conn.connect_at is None
    assert isinstance(conn.events_received()[-1], p.EndOfStream)


def test_no_end_of_stream_closes_after_the_timeout():
    wire = started()
    wire.conn.end(timeout=5.0)
    wire.at(0.0)
    assert wire.commands()[-1] == (0.0, "end_task")  # nothing buffered: end_task at once
    wire.advance(4.9)
    assert not wire.conn.close_wanted
    wire.advance(5.1)
    assert wire.conn.close_wanted and wire.conn.phase is Phase.DONE


def test_end_while_disconnected_gives_up_after_half_the_timeout():
    wire = started(max_reconnects=0)
    wire.conn.connection_lost(1.0, "connection lost")  # no reconnects allowed
    assert wire.conn.phase is Phase.FAILED
    wire = started()
    wire.conn.connection_lost(1.0, "connection lost")
    wire.conn.end(timeout=4.0)
    wire.at(1.0)
    wire.conn.connection_failed(1.1, PalabraConnectionError("down"))
    wire.advance(3.2)
    assert wire.conn.phase is Phase.DONE  # not stuck waiting for a server that is not there


# --- idle pause ------------------------------------------------------------------------------------
LEAD = int(0.25 * RATE) * 2  # RESUME_LEAD_S of the silence before the speech


def feed_silence(wire: Wire, until: float) -> None:
    """The mixer's part: 20 ms of silence per 20 ms of time, as a session sends it."""
    tick = int(0.02 * RATE) * 2
    while wire.now < until - 1e-9:
        wire.conn.send_audio(bytes(tick))
        wire.advance(wire.now + 0.02)


def idle_after_an_utterance(idle_pause_s: float = 5.0) -> Wire:
    """0.64 s of speech, confirmed by Palabra, then silence until Palabra is paused."""
    wire = started(idle_pause_s=idle_pause_s)
    wire.conn.send_audio(ramp(0.64))
    wire.advance(0.7)
    wire.receive(validated(0.0, 0.64))
    feed_silence(wire, 0.64 + idle_pause_s + 1.0)
    return wire


def test_an_idle_stream_pauses_palabra_and_stops_sending_silence():
    wire = idle_after_an_utterance(5.0)
    conn = wire.conn
    [(paused_at, _)] = [(t, c) for t, c in wire.commands() if c == "pause_task"]
    # five seconds of silence sent after the final (the first chunk after the speech is its tail)
    assert 0.64 + 5.0 <= paused_at <= 0.64 + 5.0 + 0.32 + 0.05
    assert not [t for t, _ in wire.audio() if t > paused_at]  # nothing sent after it
    feed_silence(wire, 60.0)  # a minute nobody speaks: no SERVICE_TIMEOUT to fear, nothing sent
    assert not [t for t, _ in wire.audio() if t > paused_at] and wire.types().count("pause_task") == 1
    assert conn.idle_pause.state is Idle.PAUSED and conn.next_deadline() is None  # nothing to wake up for
    assert conn.idle_pause.paused_s(60.0) == pytest.approx(60.0 - paused_at)
    assert conn.stats.idle_pauses == 1


def test_speech_after_an_idle_pause_resumes_at_once_and_loses_no_sample_and_keeps_the_timeline():
    wire = idle_after_an_utterance(5.0)
    conn = wire.conn
    feed_silence(wire, 20.0)
    sent_before = sum(len(c) for _, c in wire.audio())  # what Palabra heard before the pause
    wire.clear()
    speech = ramp(1.0, start=7)
    wakes = []
    for k in range(50):  # the speech in 20 ms ticks, as the mixer gives it
        if conn.send_audio(speech[k * 640 : (k + 1) * 640]):
            wakes.append(k)
        wire.advance(wire.now + 0.02)
    feed_silence(wire, 22.0)
    # the first voiced tick asks for a tick at once (set_task), then each chunk as it fills
    assert wakes[:2] == [0, (CHUNK - LEAD) // 640]
    assert wire.commands()[0] == (20.0, "set_task")
    out = b"".join(c for _, c in wire.audio())
    assert out[:LEAD] == bytes(LEAD)  # the lead of silence first ...
    assert out[LEAD : LEAD + len(speech)] == speech  # ... then every sample of the speech, in order
    first_voiced = next(t for t, c in wire.audio() if any(c))
    assert first_voiced <= 20.0 + 0.32 + 0.01  # no later than a chunk after the speech began
    assert conn.idle_pause.state is Idle.OFF and conn.stats.idle_pauses == 1
    # Palabra counts the audio it was sent; the segment lands where the speech is on the timeline (20 s)
    palabra_start = (sent_before + LEAD) / BPS
    assert palabra_start < 20.0 - 10.0  # most of the silence was never sent
    wire.receive(validated(palabra_start, palabra_start + 1.0, "t2"))
    event = conn.events_received()[-1]
    assert event.start == pytest.approx(20.0, abs=1e-6) and event.end == pytest.approx(21.0, abs=1e-6)
    # a translation of the utterance before the pause, arriving late, keeps its own time
    segment = {"text": "hola", "start": 0.0, "end": 0.64}
    body = {"transcription_id": "t1", "language": "es", "text": "hola", "segments": [segment]}
    wire.receive(frame("translated_transcription", {"transcription": body}))
    assert conn.events_received()[-1].end == pytest.approx(0.64)


def test_no_pause_while_an_utterance_is_unconfirmed_or_palabra_is_still_answering():
    wire = started(idle_pause_s=3.0)
    conn = wire.conn
    conn.send_audio(ramp(0.64))
    feed_silence(wire, 8.0)  # no final for the speech: Palabra may still need its trailing silence
    assert "pause_task" not in wire.types()
    wire.receive(validated(0.0, 0.64))
    for second in range(8, 16):  # translated speech still arriving: Palabra is at work
        feed_silence(wire, second + 1.0)
        wire.receive(frame("output_audio_data", {"transcription_id": "t1", "language": "es", "data": ""}))
    assert "pause_task" not in wire.types()
    feed_silence(wire, 20.0)
    [(paused_at, _)] = [(t, c) for t, c in wire.commands() if c == "pause_task"]
    assert 16.0 + 3.0 - 0.32 <= paused_at <= 20.0  # 3 s of silence sent (in whole chunks) since


def test_a_reconnect_while_idle_pauses_the_new_task_and_replays_nothing():
    wire = idle_after_an_utterance(3.0)
    conn = wire.conn
    feed_silence(wire, 10.0)
    wire.clear()
    reconnect(wire)
    feed_silence(wire, 15.0)
    assert wire.types()[:2] == ["set_task", "pause_task"] and not wire.audio()
    wire.clear()
    conn.send_audio(ramp(0.32, start=3))  # speech after the reconnect resumes it as usual
    wire.advance(wire.now + 0.4)
    assert wire.types()[0] == "set_task" and b"".join(c for _, c in wire.audio())[LEAD:].startswith(
        ramp(0.32, start=3)[:1000]
    )


def test_ending_an_idle_paused_stream_closes_it_at_once_and_stops_counting_the_pause():
    wire = idle_after_an_utterance(3.0)
    conn = wire.conn
    feed_silence(wire, 10.0)
    paused_at = next(t for t, c in wire.commands() if c == "pause_task")
    wire.clear()
    conn.send_audio(bytes(BPS))  # the session's tail of silence
    conn.end(timeout=5.0)  # every utterance is final and nothing was sent since: nothing to confirm
    wire.advance(10.1)
    assert conn.phase is Phase.DONE and conn.close_wanted and wire.sent == []  # no end_task, no audio
    assert conn.stats.idle_paused_s == pytest.approx(10.1 - paused_at)
    assert conn.idle_pause.paused_s(100.0) == pytest.approx(10.1 - paused_at)  # not billed on after the end


def test_an_error_during_an_idle_pause_turns_idle_pauses_off_and_silence_flows_again():
    """Should Palabra refuse the pause (or anything else go wrong meanwhile), a stream that sends
    nothing would time out: it resumes and keeps sending silence, as without idle pauses."""
    wire = idle_after_an_utterance(3.0)
    conn = wire.conn
    wire.clear()
    wire.receive(frame("error", {"code": "VALIDATION_ERROR", "desc": "pause_task is not allowed here"}))
    feed_silence(wire, 30.0)
    assert wire.types()[0] == "set_task" and "pause_task" not in wire.types()
    assert conn.idle_pause.state is Idle.OFF and wire.audio()[-1][0] > 29.0  # silence all along


def test_an_explicit_pause_takes_over_from_an_idle_pause_and_resume_ends_both():
    wire = idle_after_an_utterance(3.0)
    conn = wire.conn
    conn.pause()
    wire.advance(wire.now + 4.0)
    conn.resume()
    wire.advance(wire.now + 2.5)
    conn.send_audio(ramp(0.64, start=5))
    wire.advance(wire.now + 1.0)
    heard = b"".join(c for _, c in wire.audio())
    assert conn.idle_pause.state is Idle.OFF and ramp(0.64, start=5)[:CHUNK] in heard  # audio flows after resume()


def test_an_explicit_resume_asked_before_a_drop_is_done_by_the_next_sockets_task():
    wire = started()
    conn = wire.conn
    conn.pause()
    wire.advance(1.0)
    conn.resume()  # its set_task waits for the budget the handshake's set_task took at 0
    conn.connection_lost(1.1, "connection lost")
    wire.advance(conn.connect_at)
    conn.connecting()
    conn.connection_made(wire.now)
    wire.at(wire.now)
    wire.receive(frame("task_status", ACK))
    wire.clear()
    conn.send_audio(ramp(0.64))
    wire.advance(wire.now + 1.0)
    assert "pause_task" not in wire.types() and wire.audio()  # running, and its audio goes out


def test_idle_pause_is_off_by_default():
    wire = started()
    wire.conn.send_audio(ramp(0.64))
    wire.advance(0.7)
    wire.receive(validated(0.0, 0.64))
    feed_silence(wire, 40.0)
    assert "pause_task" not in wire.types() and wire.audio()[-1][0] > 39.0


def test_the_one_lsb_noise_opus_decodes_for_silence_is_quiet_but_a_soft_syllable_is_not():
    """Opus decodes the pauses inside a transmission as +-1 LSB, never as zeros: that is silence for an
    idle pause (it pauses, and stays paused), while anything a recogniser could hear resumes it."""
    wire = started(idle_pause_s=3.0)
    conn = wire.conn
    noise = np.random.default_rng(3).integers(-1, 2, int(0.02 * RATE)).astype("<i2").tobytes()
    conn.send_audio(ramp(0.64))
    wire.advance(0.7)
    wire.receive(validated(0.0, 0.64))
    while wire.now < 6.0:
        conn.send_audio(noise)
        wire.advance(wire.now + 0.02)
    assert "pause_task" in wire.types() and conn.idle_pause.state is Idle.PAUSED
    for _ in range(100):  # two more seconds of it: still paused
        assert not conn.send_audio(noise)
        wire.advance(wire.now + 0.02)
    assert conn.idle_pause.state is Idle.PAUSED
    soft = (np.sin(np.arange(int(0.02 * RATE)) / 3) * 200).astype("<i2").tobytes()  # about -44 dBFS
    assert conn.send_audio(soft) and conn.idle_pause.state is Idle.RESUMING


def test_a_resume_keeps_a_replay_that_is_under_way_at_its_catch_up_speed():
    wire = started()
    conn = wire.conn
    conn.send_audio(ramp(20.0))
    wire.advance(1.0)
    conn.connection_lost(1.0, "connection lost")
    wire.advance(8.0)  # a long outage: 7 s of backlog to send at twice real time
    conn.connecting()
    conn.connection_made(8.0)
    wire.at(8.0)
    wire.receive(frame("task_status", ACK))
    wire.advance(9.0)
    conn.resume()  # not paused: its set_task waits for the handshake's budget, then changes nothing
    wire.clear()
    wire.advance(11.0)
    [resumed_at] = [t for t, c in wire.commands() if c == "set_task"]
    after = [t for t, _ in wire.audio() if t > resumed_at]
    assert after[1] - after[0] == pytest.approx(0.16)  # still twice real time after the set_task
