"""Shared by the voice rows of the fault table (tests/voice/test_voice_faults*.py): a simulated user speaks
without pause while a fault hits our ListeningVoiceClient; the figure is the outage, the longest time
nothing of her was heard, and what is heard afterwards must be her speech."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass

from bot.voice import adapter
from tests.fakes.audio import SAMPLE_EN, decode
from tests.fakes.discord.listening import Collector, Outage, appears_in, dave_ready, outage_after, wait_for

log = logging.getLogger(__name__)

SPEECH = decode(SAMPLE_EN, rate=48000, channels=2)[: 48000 * 4 * 9]  # 9 s without a gap in packets
FAULT_AT_S = 2.0
MAX_OUTAGE_S = 3.0  # the fault table's "heard again within 3 s"


@dataclass
class FaultFigures:
    outage: Outage  # the longest time nothing of the speaker was heard
    reconnected_s: float | None  # fault -> connected again on a new voice websocket (None: not in time)
    correlation: float  # what was heard after the fault against what she said


async def reconnect_time(vc, since: float, old_ws, timeout: float) -> float | None:
    loop = asyncio.get_running_loop()
    while loop.time() - since < timeout:
        if vc.is_connected() and vc.ws is not old_ws:
            return loop.time() - since
        await asyncio.sleep(0.01)
    return None


async def speak_through(fake, vc, collector: Collector, alice, fault, *, members: int = 2) -> FaultFigures:
    """Alice speaks SPEECH; `fault()` runs FAULT_AT_S into it."""
    await wait_for(lambda: dave_ready(vc, members), what="the listener's DAVE group")
    await alice.wait_dave_ready(members=members)
    loop = asyncio.get_running_loop()
    speaking = asyncio.create_task(alice.speak(SPEECH))
    await asyncio.sleep(FAULT_AT_S)
    fault_at, old_ws = loop.time(), vc.ws
    await fault()
    reconnected = await reconnect_time(vc, fault_at, old_ws, timeout=len(SPEECH) / 192000 - FAULT_AT_S)
    await speaking
    await asyncio.sleep(0.3)
    outage = outage_after(collector, alice.id, fault_at, loop.time())
    corr = appears_in(SPEECH, collector.heard_since(alice.id, fault_at))
    figures = FaultFigures(outage, reconnected, corr)
    kinds = Counter(
        f.kind for t, f in zip(collector.arrivals[alice.id], collector.frames[alice.id], strict=True) if t >= fault_at
    )
    log.info("frames after the fault by kind: %s", dict(kinds))
    log.info("%s, stats %s", figures, vc.receiver.stats())
    return figures


def assert_recovered(figures: FaultFigures, vc, fake) -> None:
    detail = f"stats={vc.receiver.stats()} fallbacks={adapter.resume_fallbacks(vc)} realism={fake.realism.log}"
    assert figures.reconnected_s is not None and figures.reconnected_s <= MAX_OUTAGE_S, f"{figures}; {detail}"
    assert figures.outage.resumed_at is not None, f"never heard again; {detail}"
    assert figures.outage.seconds <= MAX_OUTAGE_S, f"{figures}; {detail}"
    assert figures.correlation >= 0.9, f"what was heard after the fault is not her speech; {figures}; {detail}"
    assert vc.is_connected() and vc.receiver.stats()["worker_alive"]


def report(fault: str, figures: FaultFigures) -> None:
    print(f"FAULT {fault}: reconnected {figures.reconnected_s:.2f} s, outage {figures.outage.seconds:.2f} s")
