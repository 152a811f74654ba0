"""The talk-spurt prebuffer in front of the mixer: frames that arrive in bursts against the mixer's clock
come out without holes; opted-out users are still dropped at push."""

import numpy as np

from bot.audio.frames import FRAME_BYTES, SILENT_FRAME
from bot.audio.mixer import PrebufferedMixer


def frame(value: int) -> bytes:
    return np.full(FRAME_BYTES // 2, value, dtype="<i2").tobytes()


def level(pcm: bytes) -> int:
    return int(np.frombuffer(pcm, dtype="<i2")[0])


def test_bursty_arrival_plays_out_without_holes_after_the_prebuffer():
    mixer = PrebufferedMixer(prebuffer_frames=3)
    out = []
    values = iter(range(1, 41))
    # Arrival pattern of a receive thread beating against the clock: 0, 2, 1, 0, 2, 1, ... frames per tick
    pattern = [1, 2, 0, 1, 2, 0, 1] * 10
    for count in pattern:
        for _ in range(count):
            value = next(values, None)
            if value is not None:
                mixer.push("alice", frame(value))
        out.append(level(mixer.tick()))
    played = [v for v in out if v]
    assert played == list(range(1, 41))  # every frame, in order
    first = out.index(1)
    assert all(v != 0 for v in out[first : first + 40])  # no hole once it started
    assert mixer.underruns == 1  # only at the end of the talk spurt


def test_a_lone_short_burst_is_released_after_the_prebuffer_time():
    mixer = PrebufferedMixer(prebuffer_frames=3)
    mixer.push(1, frame(5))
    outputs = [level(mixer.tick()) for _ in range(5)]
    assert outputs.count(5) == 1 and outputs[:3] == [0, 0, 0]


def test_opted_out_users_are_dropped_even_while_prebuffering():
    mixer = PrebufferedMixer(prebuffer_frames=3)
    mixer.push(1, frame(9))
    mixer.exclude(1)
    assert not mixer.push(1, frame(9))
    assert all(mixer.tick() == SILENT_FRAME for _ in range(5))
    assert mixer.stats.dropped_excluded == 2


def test_depth_grows_after_jitter_underruns_and_then_holes_stop():
    mixer = PrebufferedMixer(prebuffer_frames=1)
    values = iter(range(1, 200))
    out = []
    # A receive thread that is a tick late now and then: 1, 0, 2 frames per tick, over and over.
    for count in [1, 0, 2] * 40:
        for _ in range(count):
            mixer.push("alice", frame(next(values)))
        out.append(level(mixer.tick()))
    assert out[1] == 0  # the first late frame leaves a hole while the depth is one frame
    assert 0 not in out[2:]  # then the depth grows to two and every tick has a frame
    assert mixer.depth("alice") == 2 and mixer.jitter_underruns == 1
    assert [v for v in out if v] == list(range(1, 1 + len([v for v in out if v])))  # in order, all of them


def test_the_end_of_a_talk_spurt_does_not_grow_the_depth():
    mixer = PrebufferedMixer(prebuffer_frames=1)
    for spurt in range(3):
        for value in range(5):
            mixer.push("bob", frame(10 * spurt + value + 1))
            mixer.tick()
        for _ in range(30):  # a pause: the next frame comes long after the underrun
            mixer.tick()
    assert mixer.depth("bob") == 1 and mixer.jitter_underruns == 0


def jittery_speech(mixer: PrebufferedMixer) -> None:
    """A talk spurt that grows alice's depth, then its end: the mixer is idle afterwards."""
    values = iter(range(1, 200))
    for count in [1, 0, 2] * 20:
        for _ in range(count):
            mixer.push("alice", frame(next(values)))
        mixer.tick()
    while not mixer.idle():
        mixer.tick()


def test_silent_ticks_at_once_are_what_as_many_ticks_do_across_a_depth_decay():
    """The clock's idle batches call `silent_ticks(8)` instead of eight `tick()`s: the depth still
    decays at the tick it is due (DECAY_TICKS after it last changed), not at the batch's end."""
    ticked, batched = PrebufferedMixer(prebuffer_frames=1), PrebufferedMixer(prebuffer_frames=1)
    for mixer in (ticked, batched):
        jittery_speech(mixer)
    assert ticked.depth("alice") == batched.depth("alice") == 2 and ticked.tick_index == batched.tick_index
    for _ in range(100):  # 800 ticks: past DECAY_TICKS, whose boundary falls inside a batch
        assert all(ticked.tick() == SILENT_FRAME for _ in range(8))
        batched.silent_ticks(8)
        assert (batched.tick_index, batched._depth) == (ticked.tick_index, ticked._depth)
    assert batched.depth("alice") == 1
