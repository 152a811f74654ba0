"""A listen-only connection held for 10 minutes, time compressed 50x: the fake SFU forgets a client's
UDP mapping after 30 s (compressed: 0.6 s) without a datagram from it, as NATs and Discord's SFU do.
Our listener sends an 8-byte keepalive every 5 s (compressed: 0.1 s) and keeps hearing a speaker who
talks in bursts the whole time; without the keepalive the same listener goes deaf. (Receivers whose
keepalive sleeps 5000 s instead of 5 s go deaf after the first expiry, 5-9 minutes in practice.)"""

from __future__ import annotations

import asyncio

import pytest

from bot.voice.receiver import KEEPALIVE_SECONDS, ListeningVoiceClient
from tests.fakes.audio import SPEECH_A, decode
from tests.fakes.discord.listening import HEARD, dave_ready, listener_in, wait_for
from tests.fakes.discord.server import FakeDiscord

pytestmark = [pytest.mark.timeout(120)]

COMPRESSION = 50
HOLD_S = 600 / COMPRESSION  # 10 minutes
NAT_IDLE_S = 30 / COMPRESSION
BURST = decode(SPEECH_A, rate=48000, channels=2)[: 48000 * 4 // 2]  # 0.5 s
BURST_EVERY_S = 1.5  # compressed: a sentence every 75 s


class CompressedKeepalive(ListeningVoiceClient):
    keepalive_interval_s = KEEPALIVE_SECONDS / COMPRESSION


class NoKeepalive(ListeningVoiceClient):
    keepalive_interval_s = None


async def hold(cls: type[ListeningVoiceClient], seconds: float) -> tuple[list[int], object, int]:
    """Bursts of speech every BURST_EVERY_S for `seconds`; returns frames heard per burst."""
    async with FakeDiscord(udp_idle_timeout_s=NAT_IDLE_S) as fake, listener_in(fake, "Voice A", cls) as (vc, collector):
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        await wait_for(lambda: dave_ready(vc, 2), what="the listener's DAVE group")
        await alice.wait_dave_ready(members=2)
        loop = asyncio.get_running_loop()
        end, heard_per_burst = loop.time() + seconds, []
        while loop.time() < end:
            await asyncio.sleep(BURST_EVERY_S)  # longer than the mapping lives without traffic
            before = sum(f.kind in HEARD for f in collector.frames[alice.id])
            await alice.speak(BURST)
            await asyncio.sleep(0.2)
            heard_per_burst.append(sum(f.kind in HEARD for f in collector.frames[alice.id]) - before)
        return heard_per_burst, fake.voice.stats, vc.keepalives_sent


@pytest.mark.slow
async def test_a_listen_only_connection_held_ten_compressed_minutes_keeps_hearing():
    heard, stats, keepalives = await hold(CompressedKeepalive, HOLD_S)
    print(
        f"FAULT listen-only {HOLD_S * COMPRESSION / 60:.0f} min (x{COMPRESSION} compressed): {len(heard)} bursts, "
        f"frames heard per burst min {min(heard)}, {keepalives} keepalives sent, {stats.keepalives} reached the "
        f"SFU, {stats.expired} packets not relayed"
    )
    burst_frames = len(BURST) // 3840
    assert len(heard) >= 6 and min(heard) >= burst_frames
    assert stats.expired == 0
    assert keepalives >= 0.8 * HOLD_S / CompressedKeepalive.keepalive_interval_s
    assert stats.keepalives >= keepalives * 0.9  # they arrive, from the address the SFU relays to


async def test_without_the_keepalive_the_same_listener_goes_deaf():
    heard, stats, keepalives = await hold(NoKeepalive, 3 * BURST_EVERY_S)
    assert keepalives == 0 and stats.expired > 0
    assert max(heard) == 0, f"heard {heard} although its mapping expired"
