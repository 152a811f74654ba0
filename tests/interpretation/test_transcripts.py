"""The transcript poster against a recording sink on a real event loop: partial coalescing (at most one
post per interval, newest text only), finals never dropped (retried through failures), exports."""

import asyncio
import itertools

import discord

from bot.interpretation.srt import format_srt, srt_time
from bot.interpretation.transcripts import Speaker, Transcript, TranscriptPoster, render

ALICE, BOB = Speaker(1, "Alice", "https://cdn.example.invalid/a.png"), Speaker(2, "Bob")


class Response:
    status, reason = 503, "Service Unavailable"


class RecordingSink:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple] = []
        self.fail_first = fail_first
        self.next_id = 100

    def _maybe_fail(self) -> None:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise discord.HTTPException(Response(), "unavailable")

    async def send(self, speaker, content):
        self._maybe_fail()
        self.next_id += 1
        self.calls.append(("send", self.next_id, speaker.name, content, asyncio.get_running_loop().time()))
        return self.next_id

    async def edit(self, message_id, content):
        self._maybe_fail()
        self.calls.append(("edit", message_id, None, content, asyncio.get_running_loop().time()))

    async def delete(self, message_id):
        self.calls.append(("delete", message_id, None, None, asyncio.get_running_loop().time()))


def poster_for(sink, transcript, interval=0.2, retries=(0.01,)):
    poster = TranscriptPoster(sink, transcript, ["es", "fr"], partial_interval_s=interval, retry_delays_s=retries)
    poster.start()
    return poster


async def test_partials_are_coalesced_to_one_post_per_interval_with_the_newest_text():
    transcript, sink = Transcript(), RecordingSink()
    poster = poster_for(sink, transcript, interval=0.2)
    line = transcript.line("u1")
    line.speaker = ALICE
    for words in range(1, 21):  # 20 partials in 1 s
        line.text = " ".join(["word"] * words)
        poster.partial_changed("u1")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await poster.close()
    posts = sink.calls
    assert 4 <= len(posts) <= 7  # ~1 s / 0.2 s, not 20
    assert posts[0][0] == "send" and all(call[0] == "edit" for call in posts[1:])
    times = [call[4] for call in posts]
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(times))
    assert posts[-1][3].count("word") == 20  # the last text is the newest one
    assert poster.partials_coalesced > 10


async def test_finals_are_never_dropped_and_carry_translations():
    transcript, sink = Transcript(), RecordingSink(fail_first=3)
    poster = poster_for(sink, transcript, interval=10.0)
    for index in range(5):
        line = transcript.line(f"u{index}")
        line.speaker, line.text, line.final = (ALICE if index % 2 == 0 else BOB), f"sentence {index}", True
        line.translations = {"es": f"frase {index}", "fr": f"phrase {index}"}
        poster.final_changed(f"u{index}")
    assert await poster.drain(timeout=5.0)
    await poster.close()
    sends = [call for call in sink.calls if call[0] == "send"]
    assert [call[3].splitlines()[0] for call in sends] == [f"sentence {i}" for i in range(5)]
    assert [call[2] for call in sends] == ["Alice", "Bob", "Alice", "Bob", "Alice"]
    assert "> **es**: frase 0" in sends[0][3] and "> **fr**: phrase 0" in sends[0][3]
    assert poster.retries == 3 and poster.pending_finals == 0


async def test_a_final_edits_the_partial_message_in_place_unless_the_speaker_changed():
    transcript, sink = Transcript(), RecordingSink()
    poster = poster_for(sink, transcript, interval=0.05)
    same, other = transcript.line("same"), transcript.line("other")
    same.speaker, same.text = ALICE, "hello"
    other.speaker, other.text = ALICE, "bonjour"
    poster.partial_changed("same")
    poster.partial_changed("other")
    await asyncio.sleep(0.3)
    same.text, same.final = "hello there", True
    other.text, other.final, other.speaker = "bonjour à tous", True, BOB
    poster.final_changed("same")
    poster.final_changed("other")
    assert await poster.drain(timeout=2.0)
    await poster.close()
    kinds = [(call[0], call[2]) for call in sink.calls]
    assert kinds == [("send", "Alice"), ("send", "Alice"), ("edit", None), ("delete", None), ("send", "Bob")]
    assert sink.calls[2][3] == "hello there"


async def test_drain_gives_up_after_its_timeout_and_says_so():
    transcript, sink = Transcript(), RecordingSink(fail_first=1000)
    poster = poster_for(sink, transcript, retries=(0.02,))
    line = transcript.line("u")
    line.text, line.final = "never posted", True
    poster.final_changed("u")
    assert not await poster.drain(timeout=0.3)
    assert poster.pending_finals == 1
    await poster.close()


def test_render_escapes_mentions_and_fits_a_discord_message():
    transcript = Transcript()
    line = transcript.line("x")
    line.text = "@everyone " + "a" * 3000
    assert render(line, []).startswith("*@\u200beveryone") and len(render(line, [])) <= 2000
    line.final = True
    assert len(render(line, [])) == 2000


def test_txt_and_srt_exports_in_timeline_order():
    transcript = Transcript()
    for tid, start, end, speaker, text in (("b", 65.5, 68.25, BOB, "second"), ("a", 1.0, 3.5, ALICE, "first")):
        line = transcript.line(tid)
        line.start, line.end, line.speaker, line.text, line.final = start, end, speaker, text, True
        line.translations = {"es": f"{text}-es"}
    transcript.line("partial").text = "not final"
    assert transcript.to_txt(["es", "fr"]) == (
        "[00:00:01] Alice: first\n    es: first-es\n\n[00:01:05] Bob: second\n    es: second-es\n"
    )
    assert transcript.to_srt(["es"]) == (
        "1\n00:00:01,000 --> 00:00:03,500\nAlice: first\nes: first-es\n\n"
        "2\n00:01:05,500 --> 00:01:08,250\nBob: second\nes: second-es\n"
    )
    assert Transcript().to_srt(["es"]) == "" and srt_time(3725.0004) == "01:02:05,000"


def test_srt_fills_missing_times_from_the_previous_cue():
    srt = format_srt([(1.0, 2.5, ["a", ""]), (None, None, ["b"]), (9.0, 8.0, ["c"])])
    assert srt == (
        "1\n00:00:01,000 --> 00:00:02,500\na\n\n"
        "2\n00:00:02,500 --> 00:00:04,500\nb\n\n"
        "3\n00:00:09,000 --> 00:00:11,000\nc\n"
    )


def test_a_translation_in_parts_is_joined_in_part_order_whatever_the_arrival_order():
    line = Transcript().line("u")
    line.add_translation("es", "segunda parte", 1)
    line.add_translation("fr", "une phrase")
    assert line.add_translation("es", "primera parte", 0) == "primera parte segunda parte"
    line.add_translation("es", "primera parte", 0)  # a duplicate changes nothing
    assert line.translations == {"es": "primera parte segunda parte", "fr": "une phrase"}
    line.text, line.final = "first part second part", True
    assert render(line, ["es", "fr"]).splitlines()[1] == "> **es**: primera parte segunda parte"
