"""ChunkSchedule on its own: when the next chunk goes out."""

from __future__ import annotations

import pytest

from bot.palabra.schedule import CATCH_UP_SPEED, STALL_GRACE_CHUNKS, ChunkSchedule

CHUNK = 10240


def test_a_full_chunk_goes_at_its_slot_a_short_one_after_the_grace_and_a_drained_one_never():
    schedule = ChunkSchedule(0.32, pace=1.0)
    assert not schedule.due(0.0, CHUNK, CHUNK, draining=False)  # not started
    schedule.start(1.0)
    assert schedule.deadline(full=True) == 1.0
    assert schedule.deadline(full=False) == pytest.approx(1.0 + 0.32 * STALL_GRACE_CHUNKS)
    assert schedule.due(1.0, CHUNK, CHUNK, draining=False)
    assert not schedule.due(1.1, CHUNK - 2, CHUNK, draining=False)  # short: waits for late audio
    assert schedule.due(1.0 + 0.32 * STALL_GRACE_CHUNKS, CHUNK - 2, CHUNK, draining=False)  # then padded
    assert not schedule.due(5.0, 0, CHUNK, draining=True)  # ending with nothing left: no padding


def test_catch_up_goes_faster_and_a_late_tick_re_anchors_instead_of_bursting():
    schedule = ChunkSchedule(0.32, pace=2.0)
    schedule.start(0.0, catch_up=CHUNK)
    schedule.sent(0.0, CHUNK)
    assert schedule.next_at == pytest.approx(0.16 / CATCH_UP_SPEED) and schedule.catch_up == 0
    schedule.sent(0.08, CHUNK)
    assert schedule.next_at == pytest.approx(0.08 + 0.16)
    schedule.sent(3.0, CHUNK)  # a tick 2.7 s late
    assert schedule.next_at == 3.0
    schedule.stop()
    assert schedule.deadline(full=True) is None
