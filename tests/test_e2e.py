"""End to end, as a new user meets it, under the peers' realism seeds: `python -m bot run` against a
fake Discord and a Palabra emulator that both run their seeded adversarial modes (clients ready at
different times, op 5 late or never; translations before/with/after the transcript, in parts, audio in
bursts, pipeline delays of 0-7 s, duplicates and unknown messages).

The user does not wait for anything to settle: as soon as the listener is online they configure the
server, join, start interpreting and speak. The speaker bots may still be logging in: the start waits
for them (bounded) or the languages move to their channels once they are ready. Every utterance must
end as one transcript message carrying every translation, and each language channel must hear it."""

from __future__ import annotations

import asyncio
import inspect
import signal

import pytest

from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from tests.fakes import secrets
from tests.fakes.audio import SPEECH_A, decode, mono, openings_heard_in_order, speech_regions, speech_seconds
from tests.fakes.botprocess import BotProcess, assert_no_secrets, bot_env, command, free_port, wait_listener_online
from tests.fakes.discord.server import FakeDiscord
from tests.interpretation.conftest import wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

RATE = 48000
TARGETS = ("es", "fr")


def require_realistic_peers() -> None:
    """The peers' seeded realism (the emulator's and the fake Discord's `realism` parameter) lands
    separately; until both are in, say so instead of failing on a missing keyword."""
    missing = [
        name
        for name, parameters in (
            ("EmulatorConfig", inspect.signature(EmulatorConfig).parameters),
            ("FakeDiscord", inspect.signature(FakeDiscord).parameters),
        )
        if "realism" not in parameters
    ]
    if missing:
        pytest.skip(f"no realism mode in {', '.join(missing)} yet")


def transcript_lines(fake: FakeDiscord) -> list:
    app_id = str(fake.bot().application_id)  # interaction replies are webhook messages too
    return [m for m in fake.messages("Voice A") if m.data.get("webhook_id") not in (None, app_id)]


def fully_translated(message) -> bool:
    rows = message.content.splitlines()
    return all(any(row.startswith(f"> **{lang}**: [{lang}] ") for row in rows[1:]) for lang in TARGETS)


def speaker_bot_audio(fake: FakeDiscord, user) -> bytes:
    """What `user` heard from our speaker bots (whichever one serves their channel)."""
    speaker_ids = {bot.id for bot in fake.bots if bot.token != secrets.DISCORD_TOKEN}
    heard = [pcm for sender, pcm in user.recording().items() if sender in speaker_ids]
    return max(heard, key=len, default=b"")


async def test_a_new_user_who_does_not_wait_gets_every_translation_heard_and_posted(realism_seed, tmp_path):
    require_realistic_peers()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"  # the seeds vary the peers; one database is enough
    config = EmulatorConfig(
        client_credentials={secrets.PALABRA_CLIENT_ID: secrets.PALABRA_CLIENT_SECRET}, realism=realism_seed
    )
    async with FakeDiscord(realism=realism_seed) as fake, serve(config) as emulator:
        bot = BotProcess(bot_env(fake, emulator.base_url, database_url, free_port()))
        alice = await fake.add_user("Alice", admin=True)
        eva, francois = await fake.add_user("Eva"), await fake.add_user("François")
        sent = decode(SPEECH_A, rate=RATE, channels=2)[: 6 * RATE * 4]
        utterances = len(speech_regions(mono(sent, 2), RATE))
        try:
            await bot.start()
            await wait_listener_online(fake)  # the first moment a slash command can be typed
            loop = asyncio.get_running_loop()
            online_at = loop.time()
            await command(fake, alice, "setup", "languages", source="en", targets=",".join(TARGETS))
            await command(fake, alice, "setup", "channel", language="es", channel=fake.channel("Voice B"))
            await command(fake, alice, "setup", "channel", language="fr", channel=fake.channel("Voice C"))
            for user, channel in ((alice, "Voice A"), (eva, "Voice B"), (francois, "Voice C")):
                await user.join(channel)
            started = await command(fake, alice, "interpret", "start", in_channel="Voice A")
            print(f"seed {realism_seed}: /interpret start answered {loop.time() - online_at:.1f} s after login")
            print(started.text())
            await wait_for(lambda: emulator.state.streams, timeout=30, what="the Palabra stream")
            await alice.speak(sent + bytes(int(1.5 * RATE) * 4))  # at once: no waiting for anything

            await wait_for(
                lambda: (
                    len(transcript_lines(fake)) >= utterances and all(map(fully_translated, transcript_lines(fake)))
                ),
                timeout=60,
                what="every utterance posted with every translation",
            )
            lines = transcript_lines(fake)
            assert len(lines) == utterances, [m.content for m in lines]
            sent_speech = speech_seconds(mono(sent, 2), RATE)
            for listener in (eva, francois):  # the speaker bots play the translation in both channels
                await wait_for(
                    lambda u=listener: speech_seconds(mono(speaker_bot_audio(fake, u), 2), RATE) >= 0.9 * sent_speech,
                    timeout=30,
                    what="the whole translation heard in a language channel",
                )
            await asyncio.sleep(1.0)  # the last frames of the playout
            for name, listener in (("es", eva), ("fr", francois)):
                heard = mono(speaker_bot_audio(fake, listener), 2)
                openings = openings_heard_in_order(mono(sent, 2), heard, RATE)
                share = speech_seconds(heard, RATE) / sent_speech
                print(
                    f"seed {realism_seed}: {name} heard every utterance, openings "
                    + ", ".join(f"{peak:.2f}" for peak in openings)
                    + f"; {share:.0%} of the speech"
                )
                # Each utterance heard, in order, and none of it cut: a translation in parts arrives with
                # pauses between its parts, so the audio is compared by openings and amount, not whole.
                assert len(openings) == utterances and min(openings) >= 0.9, openings
                assert 0.9 <= share <= 1.2, share
            stop_at = loop.time()
            stopped = await command(fake, alice, "interpret", "stop", in_channel="Voice A")
            took = loop.time() - stop_at
            print(f"seed {realism_seed}: /interpret stop answered in {took:.2f} s: {stopped.text()}")
            assert "Stopped interpreting" in stopped.text()
            assert emulator.state.sessions == {}
            assert bot.proc is not None
            bot.proc.send_signal(signal.SIGTERM)
            assert await bot.wait(15) == 0
        except BaseException:
            print(f"realism: {fake.realism.log}\nthe bot's log, excerpt:\n{bot.log_excerpt()}")
            raise
        finally:
            await bot.kill()
        assert_no_secrets(bot.text())
        assert len(transcript_lines(fake)) == utterances  # nothing posted twice by the end
