"""Who said it: an utterance's segment times (seconds on the session's audio timeline, which is the
mixer's clock: one 20 ms tick per 20 ms sent) matched against the mixer's per-user activity."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

# Palabra's segment edges and the energy threshold of the timeline disagree by a few frames;
# activity this close to the utterance still counts.
DEFAULT_MARGIN_S = 0.25


class Timeline(Protocol):
    def speakers_between(self, t0: float, t1: float) -> list[tuple[Hashable, float]]: ...


class Segment(Protocol):
    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...


def attribute(timeline: Timeline, segments: Sequence[Segment], margin_s: float = DEFAULT_MARGIN_S) -> Hashable | None:
    """The user audible for the most time within the segments (each widened by `margin_s`);
    None when nobody was (or the segments carry no times)."""
    totals: dict[Hashable, float] = {}
    for segment in segments:
        if segment.end < segment.start:
            continue
        for user_id, seconds in timeline.speakers_between(max(0.0, segment.start - margin_s), segment.end + margin_s):
            totals[user_id] = totals.get(user_id, 0.0) + seconds
    if not totals:
        return None
    return max(totals.items(), key=lambda item: (item[1], -_order(item[0])))[0]


def _order(user_id: Hashable) -> float:
    """Ties go to the lower id, so the result never depends on dict order."""
    return float(user_id) if isinstance(user_id, int) else 0.0
