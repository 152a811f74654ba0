"""Input pacing as the emulator judges it, on a fake clock."""

from __future__ import annotations

from bot.palabra.emulator.pacing import PacingMonitor


def stream(monitor: PacingMonitor, start: float, seconds: float, *, speed: float = 1.0, chunk: float = 0.32) -> list:
    """Chunks of `chunk` s of audio sent `speed` times faster than real time; the warnings they draw."""
    warnings, sent = [], 0.0
    while sent < seconds:
        warnings.append(monitor.on_audio(start + sent / speed, chunk))
        sent += chunk
    return [w.code for w in warnings if w]


def test_real_time_audio_draws_no_warning():
    assert stream(PacingMonitor(), 0.0, 30.0) == []


def test_too_fast_once_per_repeat_interval():
    monitor = PacingMonitor()
    assert stream(monitor, 0.0, 20.0, speed=4.0) == ["AUDIO_STREAM_TOO_FAST"]  # 20 s of audio in 5 s of wall time
    assert stream(monitor, 5.1, 20.0, speed=4.0) == ["AUDIO_STREAM_TOO_FAST"]


def test_time_scale_declares_a_fast_client():
    assert stream(PacingMonitor(time_scale=4.0), 0.0, 20.0, speed=4.0) == []


def test_too_slow_when_audio_falls_behind_but_not_during_a_pause():
    monitor = PacingMonitor()
    stream(monitor, 0.0, 1.0)
    monitor.pause(1.0)
    assert monitor.check(9.0) is None  # paused: no judgement
    monitor.resume(9.0)
    assert monitor.check(10.0) is None  # the pause does not count as wall time
    warning = monitor.check(12.5)
    assert warning is not None and warning.code == "AUDIO_STREAM_TOO_SLOW"


def test_stalls_only_when_asked():
    plain, realistic = PacingMonitor(), PacingMonitor(stalls=True)
    for monitor in (plain, realistic):
        monitor.on_audio(0.0, 0.32)
    assert plain.check(1.5) is None
    warning = realistic.check(1.5)
    assert warning is not None and warning.code == "AUDIO_STREAM_STALLED"
