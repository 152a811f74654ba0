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
    #                  -> event loop (one thread hand-off)
    "prebuffer": 0.0,  # frames held at the start of a talk spurt (PREBUFFER_FRAMES) and the mixer queue
    "mixer_clock": float(FRAME_MS),  # a frame waits for the next 20 ms mixer tick
    "resampler": 2.0,  # 48 kHz stereo -> session rate: a short linear-phase FIR (bot.audio.resample)
    "pacing": 4.0,  # a full chunk -> on the socket (the stream's send loop, the event loop)
    # egress
    "decode_feed": 4.0,  # output_audio_data on the socket -> parsed, resampled to 48 kHz, queued
    "playback_clock": float(FRAME_MS),  # the queued frame waits for its speaker's next 20 ms tick
    "send": 2.0,  # Opus encode + DAVE + transport encrypt + sendto
}

INGRESS_STAGES = ("receive", "prebuffer", "mixer_clock", "resampler", "pacing")
EGRESS_STAGES = ("decode_feed", "playback_clock", "send")


def budget_total_ms() -> float:
    return sum(BUDGET_MS.values())
