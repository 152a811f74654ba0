"""Mixing the speakers of a voice channel into one stream on a 20 ms clock.

`Mixer` is pure (no I/O, no clock): decoded 48 kHz stereo 20 ms frames are `push`ed per user as they
arrive and each `tick()` takes at most one frame per user and sums them. A per-user queue absorbs
network jitter; it is bounded so a user whose packets pile up cannot grow the latency without bound
(the oldest frames are dropped and counted). Opted-out users are dropped at `push`: their audio is
never queued, mixed or measured.

`ActivityTimeline` records who was audible on which tick (time = tick index x 20 ms on the mixer's
clock), so transcripts can be attributed to speakers.

`MixerClock` is the asyncio driver: it ticks on a monotonic schedule (deadlines at start + n x 20 ms,
so sleep jitter never accumulates into drift) and hands each mixed frame to a callback.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np

from bot.audio.frames import FRAME_BYTES, FRAME_S, PCM_DTYPE, SILENT_FRAME
from bot.wakeup import Wakeup

log = logging.getLogger(__name__)

UserId = Hashable

MIXER_QUEUE_FRAMES = 10  # 200 ms of jitter buffer per user
DEFAULT_ACTIVITY_DBFS = -45.0  # frames louder than this count as speech
ACTIVITY_STRIDE = 16  # activity is measured on every 16th sample (of both channels, interleaved)


class ActivityTimeline:
    """Per-user voice activity as runs of consecutive active ticks."""

    def __init__(self, frame_s: float = FRAME_S, retain_s: float | None = 3600.0) -> None:
        self.frame_s = frame_s
        self.retain_ticks = None if retain_s is None else int(retain_s / frame_s)
        self._runs: dict[UserId, deque[list[int]]] = {}  # user -> [start_tick, end_tick) runs, in order

    def record(self, tick: int, user_ids: Iterable[UserId]) -> None:
        for user_id in user_ids:
            runs = self._runs.setdefault(user_id, deque())
            if runs and runs[-1][1] == tick:
                runs[-1][1] = tick + 1
            elif not runs or runs[-1][1] < tick:
                runs.append([tick, tick + 1])
        if self.retain_ticks is not None:
            self.prune_before(tick - self.retain_ticks)

    def prune_before(self, tick: int) -> None:
        """Forget activity older than `tick` (keeps memory bounded on long sessions)."""
        for user_id in list(self._runs):
            runs = self._runs[user_id]
            while runs and runs[0][1] <= tick:
                runs.popleft()
            if not runs:
                del self._runs[user_id]

    def seconds_active(self, user_id: UserId, t0: float, t1: float) -> float:
        start, end = self._tick_range(t0, t1)
        total = 0
        for run_start, run_end in self._runs.get(user_id, ()):
            if run_start >= end:
                break
            total += max(0, min(run_end, end) - max(run_start, start))
        return total * self.frame_s

    def speakers_between(self, t0: float, t1: float) -> list[tuple[UserId, float]]:
        """Users audible between t0 and t1 (seconds on the mixer's clock) with their seconds of
        activity, most active first."""
        found = [(user_id, self.seconds_active(user_id, t0, t1)) for user_id in self._runs]
        found = [(user_id, seconds) for user_id, seconds in found if seconds > 0]
        return sorted(found, key=lambda item: (-item[1], str(item[0])))

    def _tick_range(self, t0: float, t1: float) -> tuple[int, int]:
        # Round to the nearest tick so float seconds like 0.6 map onto tick 30, not 29.
        return max(0, round(t0 / self.frame_s)), max(0, round(t1 / self.frame_s))


@dataclass
class MixerStats:
    ticks: int = 0
    frames_mixed: int = 0
    dropped_overflow: dict[UserId, int] = field(default_factory=dict)  # per user, queue full
    dropped_excluded: int = 0  # frames from opted-out users, discarded at push


class Mixer:
    def __init__(
        self,
        max_queue_frames: int = MIXER_QUEUE_FRAMES,
        activity_threshold_dbfs: float = DEFAULT_ACTIVITY_DBFS,
        timeline: ActivityTimeline | None = None,
    ) -> None:
        if max_queue_frames < 1:
            raise ValueError("a user's queue must hold at least one frame")
        self.max_queue_frames = max_queue_frames
        self.activity_threshold_dbfs = activity_threshold_dbfs
        self.timeline = timeline or ActivityTimeline()
        self.stats = MixerStats()
        self._queues: dict[UserId, deque[bytes]] = {}
        self._excluded: set[UserId] = set()
        self.on_push: Callable[[], None] | None = None  # the clock's wake-up (a frame is queued)

    @property
    def tick_index(self) -> int:
        """Ticks done so far; the next mixed frame starts at tick_index x 20 ms."""
        return self.stats.ticks

    @property
    def now_s(self) -> float:
        return self.stats.ticks * FRAME_S

    def push(self, user_id: UserId, frame: bytes) -> bool:
        """Queue one 20 ms 48 kHz stereo frame from `user_id`; False if the user is opted out."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a mixer frame is {FRAME_BYTES} bytes (20 ms of 48 kHz stereo), not {len(frame)}")
        if user_id in self._excluded:
            self.stats.dropped_excluded += 1
            return False
        queue = self._queues.setdefault(user_id, deque())
        if len(queue) >= self.max_queue_frames:
            queue.popleft()
            self.stats.dropped_overflow[user_id] = self.stats.dropped_overflow.get(user_id, 0) + 1
        queue.append(frame)
        if self.on_push is not None:
            self.on_push()
        return True

    def idle(self) -> bool:
        """Nothing queued: the next ticks are silence until a frame is pushed."""
        return not any(self._queues.values())

    def silent_ticks(self, count: int) -> None:
        """`count` ticks of an idle mixer at once: what that many `tick()` calls would do (each gives
        SILENT_FRAME), for the clock's idle batches."""
        self.stats.ticks += count

    def starving(self) -> bool:
        """A user in the middle of a talk spurt has no frame for this tick (it may be a moment late)."""
        return False

    def exclude(self, user_id: UserId) -> None:
        """Opt a user out: anything queued is discarded and later frames are dropped at push."""
        self._excluded.add(user_id)
        dropped = self._queues.pop(user_id, None)
        if dropped:
            self.stats.dropped_excluded += len(dropped)

    def include(self, user_id: UserId) -> None:
        self._excluded.discard(user_id)

    def is_excluded(self, user_id: UserId) -> bool:
        return user_id in self._excluded

    def remove(self, user_id: UserId) -> None:
        """A user left: forget their queue (their activity stays on the timeline)."""
        self._queues.pop(user_id, None)

    def queued(self, user_id: UserId) -> int:
        queue = self._queues.get(user_id)
        return len(queue) if queue else 0

    def tick(self) -> bytes:
        """One mixed 20 ms frame: the sum (saturated) of the next frame of every user who has one;
        silence when nobody does."""
        tick = self.stats.ticks
        self.stats.ticks += 1
        frames = {user_id: queue.popleft() for user_id, queue in self._queues.items() if queue}
        if not frames:
            return SILENT_FRAME
        self.stats.frames_mixed += len(frames)
        self.timeline.record(tick, self._audible(frames))
        if len(frames) == 1:
            return next(iter(frames.values()))
        pcm = [np.frombuffer(frame, dtype=PCM_DTYPE) for frame in frames.values()]
        total = np.add(pcm[0], pcm[1], dtype=np.int32)
        for more in pcm[2:]:
            total += more
        np.clip(total, -32768, 32767, out=total)
        return total.astype(PCM_DTYPE).tobytes()

    def _audible(self, frames: dict[UserId, bytes]) -> list[UserId]:
        # Mean square against the threshold's, on every ACTIVITY_STRIDE-th sample (a level, not a
        # waveform: 120 samples of a 20 ms frame measure it well) with one float32 dot product.
        count = FRAME_BYTES // 2 // ACTIVITY_STRIDE
        limit = count * (32768.0 * 10 ** (self.activity_threshold_dbfs / 20)) ** 2
        audible = []
        for user_id, frame in frames.items():
            samples = np.frombuffer(frame, dtype=PCM_DTYPE)[::ACTIVITY_STRIDE].astype(np.float32)
            if float(np.dot(samples, samples)) > limit:
                audible.append(user_id)
        return audible


FrameCallback = Callable[[bytes], Awaitable[None] | None]
SilenceCallback = Callable[[int], Awaitable[None] | None]  # this many silent ticks, emitted at once


# Frames held at the start of a talk spurt before it flows. The clock's arrival grace (ARRIVAL_GRACE_S)
# now absorbs the receive thread's delivery jitter at each tick, so no talk spurt is held back: every
# held frame would be 20 ms added to everything the user says (see bot.audio.latency).
PREBUFFER_FRAMES = 1
MAX_PREBUFFER_FRAMES = 5  # where the depth stops growing on a machine that cannot keep up (100 ms)
# At a tick where a talking user's frame is missing, wait this long for it before mixing without it:
# a frame a few ms late then costs those few ms once, not a 20 ms hole in a word.
ARRIVAL_GRACE_S = 0.015
# With nothing queued the clock wakes once per this many ticks (and at once when a frame arrives) and
# emits the silent ticks that are due: an idle session costs ~6 wake-ups a second, not 50. Ticks come
# out up to this late, so the Palabra stream's lead (bot.interpretation.session.STREAM_LEAD_S) must be
# longer, or a chunk would be padded at its deadline.
IDLE_BATCH_TICKS = 8


class PrebufferedMixer(Mixer):
    """A Mixer that holds each user's first frames of a talk spurt until that user's depth is queued (or
    the oldest has waited that many ticks), and again after an underrun.

    Frames come from the receive thread in small bursts while the mixer ticks on its own clock; a frame
    that misses its tick (and the clock's arrival grace) leaves a 20 ms hole in a word. The depth adapts
    per user: it starts at `prebuffer_frames` (no hold on a machine that keeps up) and grows by one frame
    after each underrun that was only jitter (the user's next frame, not silence, came within
    `JITTER_GAP_TICKS`; the end of a talk spurt does not count), up to `max_prebuffer_frames`; it shrinks by one after
    `DECAY_TICKS` without such an underrun. Each held frame is 20 ms of delay for that user.
    """

    JITTER_GAP_TICKS = 5
    DECAY_TICKS = 500  # 10 s

    def __init__(
        self,
        prebuffer_frames: int = PREBUFFER_FRAMES,
        max_queue_frames: int = MIXER_QUEUE_FRAMES,
        activity_threshold_dbfs: float = DEFAULT_ACTIVITY_DBFS,
        timeline: ActivityTimeline | None = None,
        max_prebuffer_frames: int = MAX_PREBUFFER_FRAMES,
    ) -> None:
        super().__init__(max_queue_frames, activity_threshold_dbfs, timeline)
        self.prebuffer_frames = prebuffer_frames
        self.max_prebuffer_frames = max(prebuffer_frames, max_prebuffer_frames)
        self._held: dict[UserId, tuple[int, list[bytes]]] = {}  # user -> (tick of the first held frame, frames)
        self._flowing: set[UserId] = set()
        self._depth: dict[UserId, tuple[int, int]] = {}  # user -> (frames to hold, tick it last changed)
        self._underrun_at: dict[UserId, int] = {}
        self.underruns = 0
        self.jitter_underruns = 0

    def depth(self, user_id: UserId) -> int:
        return self._depth.get(user_id, (self.prebuffer_frames, 0))[0]

    def push(self, user_id: UserId, frame: bytes) -> bool:
        if user_id in self._flowing or self.is_excluded(user_id):
            return super().push(user_id, frame)
        if len(frame) != len(SILENT_FRAME):
            return super().push(user_id, frame)  # raises with the mixer's message
        underrun = self._underrun_at.pop(user_id, None)
        # Silence does not count: the receiver's fill frames at the end of a talk spurt trickle in on its
        # own poll, and a hole in silence is not heard.
        if underrun is not None and self.tick_index - underrun <= self.JITTER_GAP_TICKS and frame != SILENT_FRAME:
            self.jitter_underruns += 1
            self._depth[user_id] = (min(self.max_prebuffer_frames, self.depth(user_id) + 1), self.tick_index)
        _since, frames = self._held.setdefault(user_id, (self.tick_index, []))
        frames.append(frame)
        if len(frames) >= self.depth(user_id):
            self._release(user_id)
        return True

    def _release(self, user_id: UserId) -> None:
        _since, frames = self._held.pop(user_id)
        self._flowing.add(user_id)
        for frame in frames:
            super().push(user_id, frame)

    def idle(self) -> bool:
        return not self._held and not self._flowing and super().idle()

    def starving(self) -> bool:
        return any(self.queued(user_id) == 0 for user_id in self._flowing)

    def silent_ticks(self, count: int) -> None:
        # Idle: nothing held or flowing, so of `tick()` only the depth decay remains, at the tick it
        # falls on (at most one per user: a batch is far shorter than DECAY_TICKS).
        start = self.tick_index
        for user_id, (depth, changed) in list(self._depth.items()):
            due = max(changed + self.DECAY_TICKS, start)
            if depth > self.prebuffer_frames and due < start + count:
                self._depth[user_id] = (depth - 1, due)
        super().silent_ticks(count)

    def tick(self) -> bytes:
        now = self.tick_index
        for user_id in [u for u in self._flowing if self.queued(u) == 0]:
            self._flowing.discard(user_id)
            self._underrun_at[user_id] = now
            self.underruns += 1
        for user_id in [u for u, (since, _f) in self._held.items() if now - since >= self.depth(u)]:
            self._release(user_id)
        for user_id, (depth, changed) in list(self._depth.items()):
            if depth > self.prebuffer_frames and now - changed >= self.DECAY_TICKS:
                self._depth[user_id] = (depth - 1, now)
        return super().tick()

    def exclude(self, user_id: UserId) -> None:
        held = self._held.pop(user_id, None)
        if held:
            self.stats.dropped_excluded += len(held[1])
        self._flowing.discard(user_id)
        super().exclude(user_id)

    def remove(self, user_id: UserId) -> None:
        self._held.pop(user_id, None)
        self._flowing.discard(user_id)
        self._depth.pop(user_id, None)
        self._underrun_at.pop(user_id, None)
        super().remove(user_id)


class MixerClock:
    """Calls `mixer.tick()` every 20 ms and passes each frame to `on_frame` (sync or async).

    Deadlines are start + n x interval on a monotonic clock. After a stall (a slow callback, a busy
    event loop) the clock catches up with back-to-back ticks, at most `max_catch_up` of them; a longer
    stall is skipped (counted in `skipped`) and the schedule re-anchored, so a hiccup never turns into
    a burst of seconds of audio.

    Two refinements keep the clock cheap and early: while the mixer is idle it sleeps for up to
    `idle_batch` ticks (woken by the first pushed frame) and then emits the silent ticks that fell due
    in one go, same count, same timeline (all silent, they go to `on_silence` as one call when it is
    given: one resampler pass and one stream write instead of one per tick); and at a tick where a
    talking user's frame is missing it waits up to `grace_s` for that frame (`late_waits` counts the
    waits, `grace_misses` the frames that still did not come).
    """

    def __init__(
        self,
        mixer: Mixer,
        on_frame: FrameCallback,
        interval_s: float = FRAME_S,
        max_catch_up: int = 5,
        clock: Callable[[], float] = time.monotonic,
        grace_s: float = ARRIVAL_GRACE_S,
        idle_batch: int = IDLE_BATCH_TICKS,
        on_silence: SilenceCallback | None = None,
    ) -> None:
        self.mixer = mixer
        self.on_silence = on_silence
        self.grace_s, self.idle_batch = grace_s, max(1, idle_batch)
        self.late_waits = 0
        self.grace_misses = 0
        self.late = 0  # ticks emitted over a frame later than deadline + grace (idle batches excepted)
        self._pushed = Wakeup()  # set by the mixer when a frame is pushed
        mixer.on_push = self._pushed.set
        self.on_frame = on_frame
        self.interval_s = interval_s
        self.max_catch_up = max_catch_up
        self.clock = clock
        self.ticks = 0
        self.skipped = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name="mixer-clock")
        return self._task

    async def stop(self) -> None:
        self._stopping.set()
        self._pushed.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def run(self, max_ticks: int | None = None) -> None:
        """Tick until `stop()` (or `max_ticks` ticks)."""
        anchor = self.clock()
        scheduled = 0  # ticks since the anchor
        while not self._stopping.is_set() and (max_ticks is None or self.ticks < max_ticks):
            deadline = anchor + scheduled * self.interval_s
            delay = deadline - self.clock()
            if delay > 0 and self.mixer.idle() and self.idle_batch > 1:
                await self._wait_for_push(delay + (self.idle_batch - 1) * self.interval_s)
                due = int((self.clock() - anchor) / self.interval_s + 1e-9) + 1 - scheduled
                count = max(0, min(due, self.idle_batch) if max_ticks is None else min(due, max_ticks - self.ticks))
                if self.on_silence is not None and self.mixer.idle():
                    self.mixer.silent_ticks(count)  # still idle: all silent, and said at once
                    if count:
                        await _settled(self.on_silence(count))
                else:
                    await self._emit_batch([self.mixer.tick() for _ in range(count)])
                self.ticks += count
                scheduled += count
                continue
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > self.max_catch_up * self.interval_s:
                behind = int(-delay / self.interval_s + 1e-6)  # deadlines missed (float-safe)
                self.skipped += behind
                log.warning("mixer clock stalled for %.0f ms; skipping %d ticks", -delay * 1000, behind)
                anchor, scheduled = self.clock(), 0
            if self._stopping.is_set():
                break
            if self.grace_s > 0 and self.mixer.starving():
                await self._grace()
            if self.clock() - deadline > self.grace_s + self.interval_s:  # later than the grace allows
                self.late += 1
            await self._emit(self.mixer.tick())
            self.ticks += 1
            scheduled += 1

    async def _wait_for_push(self, timeout: float) -> None:
        """Until a frame is pushed (or stop), at most `timeout`."""
        if timeout > 0 and not self._stopping.is_set():
            self._pushed.clear()
            await self._pushed.wait(timeout)

    async def _grace(self) -> None:
        self.late_waits += 1
        until = self.clock() + self.grace_s
        while self.mixer.starving() and not self._stopping.is_set():
            remaining = until - self.clock()
            if remaining <= 0:
                self.grace_misses += 1
                return
            await self._wait_for_push(remaining)

    async def _emit_batch(self, frames: list[bytes]) -> None:
        """The idle branch's ticks: all silent (the usual case) go to `on_silence` in one call."""
        if frames and self.on_silence is not None and all(frame is SILENT_FRAME for frame in frames):
            await _settled(self.on_silence(len(frames)))
            return
        for frame in frames:
            await self._emit(frame)

    async def _emit(self, frame: bytes) -> None:
        await _settled(self.on_frame(frame))


async def _settled(result: Awaitable[None] | None) -> None:
    """A callback's result: awaited when the callback was a coroutine function."""
    if inspect.isawaitable(result):
        await result
