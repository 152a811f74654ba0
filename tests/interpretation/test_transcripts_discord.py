"""The transcript poster through a real channel webhook of the fake Discord (unmodified discord.py on
loopback): a slow Discord (requests held in flight) and Discord's 429s (per route and global, with the
real headers and body) must never lose or duplicate a final, and partials stay coalesced."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.interpretation.transcripts import Speaker, Transcript, TranscriptPoster, WebhookSink
from tests.fakes import secrets
from tests.fakes.discord.clients import running_clients
from tests.fakes.discord.server import FakeDiscord
from tests.interpretation.conftest import wait_for

pytestmark = pytest.mark.timeout(60)

ALICE = Speaker(1, "Alice")
TARGETS = ["es", "fr"]


@contextlib.asynccontextmanager
async def poster_on_fake(*, partial_interval_s: float = 0.2):
    async with FakeDiscord() as fake, running_clients(fake, [secrets.DISCORD_TOKEN]) as [listener]:
        channel = listener.get_channel(fake.channel("general").id)
        sink = await WebhookSink.for_channel(channel, listener.user.id)
        transcript = Transcript()
        poster = TranscriptPoster(
            sink, transcript, TARGETS, partial_interval_s=partial_interval_s, retry_delays_s=(0.05,)
        )
        poster.start()
        try:
            yield fake, transcript, poster
        finally:
            await poster.close()


def webhook_lines(fake: FakeDiscord) -> list:
    return [m for m in fake.messages("general") if m.data.get("webhook_id")]


def finish(transcript: Transcript, tid: str, text: str) -> None:
    line = transcript.line(tid)
    line.speaker, line.text, line.final = ALICE, text, True


async def test_translations_arriving_while_the_final_is_in_flight_are_posted():
    """Palabra sends translated_transcription right after validated_transcription (same burst): the
    final's post is still in flight when the translations change the line; the message must get them."""
    async with poster_on_fake() as (fake, transcript, poster):
        fake.rest.delays.inject("POST", r"^/webhooks/\d+/", seconds=0.4)  # every execute is slow
        fake.rest.delays.inject("PATCH", r"^/webhooks/\d+/", seconds=0.2)
        for index in range(3):
            tid = f"u{index}"
            finish(transcript, tid, f"sentence {index}")
            poster.final_changed(tid)
            await asyncio.sleep(0.05)  # the post is in flight now
            for language in TARGETS:
                transcript.line(tid).translations[language] = f"[{language}] sentence {index}"
                poster.final_changed(tid)
        assert await poster.drain(timeout=10.0)
        lines = webhook_lines(fake)
        assert [m.content.splitlines()[0] for m in lines] == [f"sentence {i}" for i in range(3)]
        for index, message in enumerate(lines):
            assert message.content.splitlines()[1:] == [
                f"> **es**: [es] sentence {index}",
                f"> **fr**: [fr] sentence {index}",
            ], message.content
        assert len(fake.rest.delays.held) >= 3  # the delays really held the posts


@pytest.mark.parametrize("is_global", [False, True], ids=["per-route", "global"])
async def test_429s_on_executes_and_edits_post_every_final_exactly_once(is_global):
    async with poster_on_fake(partial_interval_s=0.2) as (fake, transcript, poster):
        fake.rate_limits.inject("POST", r"^/webhooks/\d+/", count=3, retry_after=0.3, is_global=is_global)
        fake.rate_limits.inject("PATCH", r"^/webhooks/\d+/", count=3, retry_after=0.3, is_global=is_global)
        utterances, partials = 5, 0
        for index in range(utterances):
            tid = f"u{index}"
            line = transcript.line(tid)
            line.speaker = ALICE
            for words in range(1, 8):  # a growing partial every 50 ms
                line.text = " ".join([f"w{index}"] * words)
                poster.partial_changed(tid)
                partials += 1
                await asyncio.sleep(0.05)
            line.text, line.final = f"sentence {index}", True
            line.translations = {lang: f"[{lang}] sentence {index}" for lang in TARGETS}
            poster.final_changed(tid)
        assert await poster.drain(timeout=20.0)
        await wait_for(lambda: len(fake.rate_limits.hits) == 6, what="every injected 429 answered")
        lines = webhook_lines(fake)
        firsts = [m.content.splitlines()[0] for m in lines]
        assert firsts == [f"sentence {i}" for i in range(utterances)]  # each final once, in order
        assert all("> **es**: [es]" in m.content and "> **fr**: [fr]" in m.content for m in lines)
        executes = [r for r in fake.rest.requests if r[0] == "POST" and r[1].startswith("/webhooks/")]
        edits = [r for r in fake.rest.requests if r[0] == "PATCH" and r[1].startswith("/webhooks/")]
        assert len(executes) - 3 == utterances  # one message per utterance (+ the 429'd attempts)
        assert len(executes) + len(edits) - 6 < partials  # partials were coalesced
        assert poster.partials_coalesced > 0
        print(
            f"429 {'global' if is_global else 'per-route'}: {len(lines)}/{utterances} finals posted once, "
            f"{len(fake.rate_limits.hits)} 429s, {partials} partials -> {len(edits) + len(executes) - 6} requests"
        )
