"""The caption feeds: resuming after N yields exactly what a page that saw N is missing; bounded; ended."""

from __future__ import annotations

from bot.interpretation.captions import CaptionUpdate, public_name
from bot.interpretation.transcripts import Speaker
from bot.overlay.feed import CaptionFeed, FeedHub


def update(tid: str, text: str, final: bool = False, language: str | None = None, session_id: int = 1):
    return CaptionUpdate(session_id, tid, language, text, final, "Alice", 0.0)


def test_resuming_after_any_point_gives_the_newest_state_of_every_line_changed_since():
    feed = CaptionFeed()
    feed.update("a", "hel", False, "Alice")
    seen = feed.seq
    feed.update("a", "hello", False, "Alice")
    feed.update("b", "second", False, "Bob")
    feed.update("a", "hello there", True, "Alice")
    missing = feed.lines_after(seen)
    assert [(line.key, line.text, line.final) for line in missing] == [(2, "second", False), (1, "hello there", True)]
    assert [line.seq for line in missing] == sorted(line.seq for line in missing)
    assert feed.lines_after(feed.seq) == []
    assert [line.text for line in feed.lines_after(0)] == ["second", "hello there"]


def test_a_late_partial_never_undoes_a_final_and_nothing_changes_after_the_end():
    feed = CaptionFeed()
    feed.update("a", "final text", True, "Alice")
    feed.update("a", "stale partial", False, "Alice")
    assert [(line.text, line.final) for line in feed.lines_after(0)] == [("final text", True)]
    feed.end()
    ended = feed.ended_seq
    feed.update("b", "after the end", True, "Alice")
    feed.end()
    assert feed.ended_seq == ended == feed.seq
    assert [line.text for line in feed.lines_after(0)] == ["final text"]


def test_only_the_last_lines_are_kept():
    feed = CaptionFeed(max_lines=3)
    for index in range(10):
        feed.update(f"t{index}", f"line {index}", True, "Alice")
    assert [line.text for line in feed.lines_after(0)] == ["line 7", "line 8", "line 9"]


def test_the_hub_routes_source_and_translations_and_forgets_a_session_after_the_grace():
    now = [100.0]
    hub = FeedHub(grace_s=60.0, clock=lambda: now[0])
    hub.watch(1, "en", ["es", "fr"])
    hub.caption_updated(update("a", "hello", True))
    hub.caption_updated(update("a", "[es] hola", True, language="es"))
    hub.caption_updated(update("a", "[de] hallo", True, language="de"))  # not a language of the session
    hub.caption_updated(update("z", "other session", True, session_id=2))  # not watched
    source, spanish, french = hub.feed(1, "en"), hub.feed(1, "es"), hub.feed(1, "fr")
    assert source is not None and spanish is not None and french is not None
    assert [line.text for line in source.lines_after(0)] == ["hello"]
    assert [line.text for line in spanish.lines_after(0)] == ["[es] hola"]
    assert french.lines_after(0) == [] and hub.feed(1, "de") is None and hub.feed(2, "en") is None

    hub.session_ended(1)
    assert source.ended_seq is not None and spanish.ended_seq is not None
    now[0] += 59.0
    assert hub.feed(1, "en") is source  # still within the grace: a page learns that it ended
    now[0] += 1.0
    assert hub.feed(1, "en") is None and hub.feed(1, "es") is None


def test_a_stand_in_name_with_the_user_id_is_not_shown():
    assert public_name(Speaker(123456789012345678, "User 123456789012345678")) == "Unknown speaker"
    assert public_name(Speaker(123456789012345678, "Alice")) == "Alice"
    assert public_name(Speaker(None, "Unknown speaker")) == "Unknown speaker"


def test_a_session_gone_without_ending_counts_as_ended_when_the_hub_next_looks():
    now, running = [0.0], {1, 2}
    hub = FeedHub(grace_s=60.0, clock=lambda: now[0], running=lambda: running)
    hub.watch(1, "en", [])
    hub.watch(2, "en", [])
    feed = hub.feed(1, "en")
    assert feed is not None and feed.ended_seq is None
    running.discard(1)  # its stop failed before it could say the session ended
    assert hub.feed(1, "en") is feed and feed.ended_seq is not None  # pages are told; the grace starts
    assert hub.feed(2, "en").ended_seq is None
    now[0] += 60.0
    assert hub.feed(1, "en") is None and hub.feed(2, "en") is not None


def test_a_link_to_a_crashed_session_follows_the_session_resuming_it_and_misses_none_of_its_lines():
    # The crashed process's feed: the page saw its lines up to `seen` (a wall-clock based number).
    wall_ms = [1_700_000_000_000]
    before = FeedHub(first_seq=lambda: wall_ms[0])
    before.watch(7, "en", ["es"])
    for k in range(3):
        before.caption_updated(update(f"t{k}", f"line {k}", True, session_id=7))
    seen = before.feed(7, "en").seq
    assert seen == wall_ms[0] + 3
    shown_keys = {line.key for line in before.feed(7, "en").lines_after(0)}  # the elements on the page

    # The restarted process (its own hub) resumes session 7 as session 9, a few seconds later.
    wall_ms[0] += 4_000
    now = [0.0]
    after = FeedHub(grace_s=60.0, clock=lambda: now[0], first_seq=lambda: wall_ms[0])
    assert after.feed(7, "en") is None  # unknown until the link is followed
    after.watch(9, "en", ["es"])
    after.alias(7, 9)
    after.caption_updated(update("n1", "after the restart", True, session_id=9))
    after.caption_updated(update("n2", "[es] después", True, language="es", session_id=9))
    assert after.feed(7, "en") is after.feed(9, "en")
    assert [line.text for line in after.feed(7, "en").lines_after(seen)] == ["after the restart"]
    [new_line] = after.feed(7, "en").lines_after(seen)
    assert new_line.key not in shown_keys  # a new element, not an old line overwritten in place
    assert [line.text for line in after.feed(7, "es").lines_after(seen)] == ["[es] después"]

    after.session_ended(9)
    now[0] += 60.0
    assert after.feed(7, "en") is None and after.feed(9, "en") is None  # gone with the session it followed
