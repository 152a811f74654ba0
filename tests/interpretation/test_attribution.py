from bot.audio.mixer import ActivityTimeline
from bot.interpretation.attribution import attribute
from bot.palabra.protocol import Segment


def timeline_with(runs: dict[int, list[tuple[float, float]]]) -> ActivityTimeline:
    """Activity from (start s, end s) runs per user, recorded tick by tick as the mixer does."""
    timeline = ActivityTimeline()
    last = max(end for spans in runs.values() for _, end in spans)
    for tick in range(int(last / 0.02) + 1):
        t = tick * 0.02
        timeline.record(tick, [user for user, spans in runs.items() if any(a <= t < b for a, b in spans)])
    return timeline


def seg(start: float, end: float) -> Segment:
    return Segment("text", start, end)


def test_the_user_audible_during_the_segment_is_the_speaker():
    timeline = timeline_with({1: [(0.0, 2.0)], 2: [(3.0, 5.0)]})
    assert attribute(timeline, [seg(0.1, 1.9)]) == 1
    assert attribute(timeline, [seg(3.2, 4.8)]) == 2


def test_overlap_goes_to_the_user_active_longest_within_the_utterance():
    timeline = timeline_with({1: [(0.0, 1.0)], 2: [(0.8, 4.0)]})
    assert attribute(timeline, [seg(0.5, 3.5)]) == 2
    assert attribute(timeline, [seg(0.0, 0.9)]) == 1


def test_segments_of_one_utterance_add_up():
    timeline = timeline_with({1: [(0.0, 1.0), (2.0, 3.0)], 2: [(1.0, 2.0)]})
    assert attribute(timeline, [seg(0.0, 1.0), seg(2.0, 3.0)]) == 1


def test_edges_a_little_off_still_find_the_speaker_but_silence_finds_nobody():
    timeline = timeline_with({7: [(1.0, 2.0)]})
    assert attribute(timeline, [seg(2.1, 2.6)]) == 7  # within the margin after the activity
    assert attribute(timeline, [seg(5.0, 6.0)]) is None
    assert attribute(timeline, []) is None


def test_a_tie_goes_to_the_lower_id_whatever_the_order():
    timeline = timeline_with({9: [(0.0, 1.0)], 3: [(0.0, 1.0)]})
    assert attribute(timeline, [seg(0.0, 1.0)]) == 3
