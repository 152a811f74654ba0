"""The bot's latency budget, in one place: what each stage may add (p95, milliseconds).

Ingress is measured from the newest sample of a Palabra input chunk (the moment its RTP packet was
sent) to that chunk on the Palabra socket; the wait for a chunk to fill is not counted (it is Palabra's
chunk size, not the bot). Egress is `output_audio_data` arriving -> its first RTP packet sent.
The floor is one 20 ms frame each way (a packet carries 20 ms; a send clock ticks every 20 ms) plus
scheduling. `python -m bot bench` measures every stage and reports it next to this budget.
"""

from __future__ import annotations

from bot.audio.frames import FRAME_MS

# stage -> p95 budget (ms). The stage names are the keys of the bench's `latency_breakdown_ms`.
BUDGET_MS: dict[str, float] = {
    # ingress
    "receive": 4.0,  # UDP -> transport + DAVE decrypt -> jitter buffer (in order: no wait) -> Opus decode
    #                  on the UDP thread -> event loop (one hand-off)
    "prebuffer": float(FRAME_MS),  # the mixer's adaptive hold: 0 on a machine that keeps up, one frame
    #                                per step it had to grow after jitter (bot.audio.mixer.PrebufferedMixer)
    "mixer_clock": FRAME_MS / 2,  # the wait for the tick; the arrival grace lines ticks up behind arrivals
    "resampler": 2.0,  # 48 kHz stereo -> session rate: the FIR decimator holds nothing back
    "pacing": 4.0,  # a full chunk -> on the socket (the stream's send loop, the event loop)
    # egress
    "decode_feed": 4.0,  # output_audio_data on the socket -> parsed, resampled to 48 kHz, queued
    "playback_clock": 4.0,  # an idle speaker starts at once; a busy one sends on its next tick. A first
    #                         chunk under 60 ms waits up to 3 ticks for more (bot.voice.playback
    #                         SPURT_START_FRAMES): Palabra's ~200 ms chunks never do
    "send": 2.0,  # DAVE + transport encrypt + sendto
}
INGRESS_STAGES = ("receive", "prebuffer", "mixer_clock", "resampler", "pacing")
EGRESS_STAGES = ("decode_feed", "playback_clock", "send")


def budget_total_ms() -> float:
    """50 ms: the target for `bot_added_ms_p95` (ingress p95 + egress p95)."""
    return sum(BUDGET_MS.values())
