"""IdlePause and SkipMap on their own: the pause's bookkeeping and the segment-time map."""

from __future__ import annotations

import pytest

from bot.palabra.idle import Idle, IdlePause, SkipMap
from bot.palabra.timeline import AudioTimeline, StreamStats

BPS = 32000  # 16 kHz mono s16le


def test_segments_after_each_pause_get_the_silence_skipped_before_them():
    skips = SkipMap(offset_s=10.0)
    skips.skipped(5.0, 20.0)
    skips.skipped(5.0, 4.0)  # the same pause, skipped in pieces
    skips.skipped(9.0, 30.0)
    assert [skips.offset_at(t) for t in (0.0, 4.99, 5.0, 8.0, 9.0, 100.0)] == [10.0, 10.0, 34.0, 34.0, 64.0, 64.0]


def test_skipping_keeps_the_lead_and_records_where_the_pause_sits():
    stats = StreamStats()
    idle = IdlePause(4.0, BPS, 2, stats)
    timeline = AudioTimeline(BPS, 2, int(0.32 * 16000) * 2, stats)
    timeline.pending.extend(bytes(BPS * 3))
    skips = SkipMap(offset_s=0.0)
    idle.skip_quiet(timeline, (BPS * 12, skips), ending=False)  # 12 s sent on this socket so far
    assert len(timeline.pending) == idle.lead_bytes == int(0.25 * 16000) * 2
    assert timeline.history_start == BPS * 3 - idle.lead_bytes  # the skipped part stays on the timeline
    assert skips.offset_at(11.0) == pytest.approx((BPS * 3 - idle.lead_bytes) / BPS)  # from 1 s before it
    assert skips.offset_at(10.9) == 0.0
    idle.skip_quiet(timeline, None, ending=True)  # ending: no lead to keep; no socket: nothing to record
    assert not timeline.pending and timeline.history_start == BPS * 3


def test_paused_time_is_counted_until_the_pause_is_over_and_not_after():
    stats = StreamStats()
    idle = IdlePause(2.0, BPS, 2, stats)
    idle.chunk_sent(BPS * 2, quiet=True)
    assert idle.due
    idle.begin(10.0)
    assert idle.state is Idle.PAUSED and stats.idle_pauses == 1 and not idle.due
    idle.count_time(15.0, over=False)
    assert idle.paused_s(15.0) == 5.0 and stats.idle_paused_s == 0.0  # still running
    idle.ended()
    idle.count_time(16.0, over=False)
    assert stats.idle_paused_s == 6.0 and idle.paused_s(100.0) == 6.0


def test_palabra_answering_or_a_loud_chunk_restarts_the_quiet_count():
    idle = IdlePause(2.0, BPS, 2, StreamStats())
    idle.chunk_sent(BPS, quiet=True)
    idle.palabra_answered()
    idle.chunk_sent(BPS, quiet=True)
    assert not idle.due
    idle.chunk_sent(BPS, quiet=True)
    assert idle.due
    idle.chunk_sent(640, quiet=False)
    assert not idle.due


def test_a_refusal_ends_idle_pauses_for_the_stream():
    idle = IdlePause(2.0, BPS, 2, StreamStats())
    idle.begin(1.0)
    assert idle.refuse("VALIDATION_ERROR") and idle.state is Idle.RESUMING
    idle.ended()
    idle.chunk_sent(BPS * 60, quiet=True)
    assert not idle.due
    with pytest.raises(ValueError, match="positive"):
        IdlePause(0.0, BPS, 2, StreamStats())
