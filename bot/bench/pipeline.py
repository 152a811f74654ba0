"""Whole-pipeline figures: bot-added latency, idle cost, capacity and memory per session.

All through real sockets on loopback, with DAVE and Opus, against the echo and traffic processes
(bot.bench.harness). Each phase is bounded in time; `quick` shrinks every phase to a few seconds.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import resource
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.audio.latency import BUDGET_MS, EGRESS_STAGES, INGRESS_STAGES
from bot.bench.harness import Harness
from bot.bench.rig import SESSION_RATE, BenchSession, Identities
from bot.bench.threads import ThreadCpu

CHUNK_MS = 320
IDLE_SETTLE_S = 1.5
LATE_LIMIT = 0.005  # < 0.5 % late or lost frames on every clock


@dataclass
class Plan:
    latency_sessions: int
    latency_s: float
    idle_sessions: int
    idle_s: float
    capacity_steps: tuple[int, ...]
    settle_s: float
    window_s: float
    stop_at_failure: bool = True  # quick runs every step (a memory slope needs two)


QUICK = Plan(2, 4.0, 4, 2.0, (1, 2), 1.0, 1.5, stop_at_failure=False)
FULL = Plan(3, 12.0, 20, 6.0, (10, 20, 30, 40, 50, 60, 70, 80), 3.0, 10.0)


def p95(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 95)) * 1000, 2) if values else None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def lead_s() -> float:
    from bot.interpretation.session import STREAM_LEAD_S

    return STREAM_LEAD_S


# ---- latency ------------------------------------------------------------------------------------------


def ingress(session: BenchSession, arrivals: list[float]) -> list[dict[str, float]]:
    """Per chunk that holds speech: newest sample spoken -> chunk on the echo's socket, by stage."""
    chunk_bytes = SESSION_RATE * CHUNK_MS // 1000 * 2
    cumulative = [tick[3] for tick in session.ticks]
    tick_samples = SESSION_RATE // 50
    out = []
    for k, arrival in enumerate(arrivals):
        end = (k + 1) * chunk_bytes
        mixed_sample = (end - session.lead_bytes) // 2 - 1
        m = mixed_sample // tick_samples
        if mixed_sample < 0 or m >= len(session.ticks):
            continue
        t_tick, spoken, mixed, _bytes = session.ticks[m]
        if spoken is None:
            continue
        pushed = max(p for s, p in mixed if s == spoken)
        n = bisect.bisect_left(cumulative, end)
        if n >= len(session.ticks):
            continue
        wait = t_tick - pushed
        out.append(
            {
                "total": arrival - spoken,
                "receive": pushed - spoken,
                "mixer_clock": min(wait, 0.02),
                "prebuffer": max(0.0, wait - 0.02),
                "resampler": session.ticks[n][0] - t_tick,
                "pacing": arrival - session.ticks[n][0],
            }
        )
    return out


def egress(session: BenchSession) -> list[dict[str, float]]:
    """Per utterance: output_audio_data sent by the echo -> its first RTP packet sent, by stage. The
    sender may start before `feed` returns (it is woken by the first queued frame): stages clamp at 0."""
    out = []
    for speaker in session.speakers:
        for (arrival, fed_at), start, sent in speaker.egress:
            fed = min(fed_at, start)
            out.append(
                {
                    "total": sent - arrival,
                    "decode_feed": fed - arrival,
                    "playback_clock": start - fed,
                    "send": sent - start,
                }
            )
    return out


async def measure_latency(plan: Plan) -> dict[str, Any]:
    harness = Harness()
    try:
        await harness.start()
        ids = [Identities.build(i) for i in range(plan.latency_sessions)]
        sessions = await harness.open_sessions(ids, "utterances", lead_s(), plan.latency_s)
        await asyncio.sleep(plan.latency_s + 0.8)
        for session in sessions:
            await session.stop()
        arrivals, traffic = await harness.finish()
    finally:
        harness.kill()
    ins = [row for s in sessions for row in ingress(s, arrivals.get(str(s.ids.index), []))]
    outs = [row for s in sessions for row in egress(s)]
    if not ins or not outs:
        raise RuntimeError(f"latency run measured nothing (ingress {len(ins)}, egress {len(outs)} samples)")
    breakdown = {stage: p95([r[stage] for r in ins]) for stage in INGRESS_STAGES}
    breakdown.update({stage: p95([r[stage] for r in outs]) for stage in EGRESS_STAGES})
    ingress_p95, egress_p95 = p95([r["total"] for r in ins]), p95([r["total"] for r in outs])
    assert ingress_p95 is not None and egress_p95 is not None
    return {
        "bot_added_ms_p95": round(ingress_p95 + egress_p95, 2),
        "ingress_ms_p95": ingress_p95,
        "ingress_ms_p50": round(float(np.median([r["total"] for r in ins])) * 1000, 2),
        "egress_ms_p95": egress_p95,
        "egress_ms_p50": round(float(np.median([r["total"] for r in outs])) * 1000, 2),
        "latency_breakdown_ms_p95": breakdown,
        "latency_budget_ms_p95": dict(BUDGET_MS),
        "latency_samples": {"ingress_chunks": len(ins), "egress_utterances": len(outs)},
        "latency_traffic_late_sends": traffic.get("late_sends"),
        "latency_chunks_padded": sum(s.streaming.stats.silence_chunks for s in sessions),
    }


# ---- idle -------------------------------------------------------------------------------------------


async def measure_idle(plan: Plan) -> dict[str, Any]:
    harness = Harness()
    try:
        await harness.start()
        await asyncio.sleep(0.5)
        cpu0, t0 = cpu_seconds(), time.monotonic()
        await asyncio.sleep(plan.idle_s)
        base = (cpu_seconds() - cpu0) / (time.monotonic() - t0)
        ids = [Identities.build(1000 + i) for i in range(plan.idle_sessions)]
        # Each session pauses its Palabra task (PALABRA_IDLE_PAUSE_S) just after the first window: that
        # window is a session's first seconds of silence, the second one its state after the pause.
        pause_after_s = IDLE_SETTLE_S + plan.idle_s + 0.5
        sessions = await harness.open_sessions(ids, "silent", lead_s(), 0, idle_pause_s=pause_after_s)
        await asyncio.sleep(IDLE_SETTLE_S)
        busy = await cpu_over(plan.idle_s)
        encoded = sum(o.stats.encoded for s in sessions for o in s.outlets)
        paused = await until_paused(sessions, timeout_s=pause_after_s + 5.0)
        await asyncio.sleep(0.5)
        busy_paused = await cpu_over(plan.idle_s)
        for session in sessions:
            await session.stop()
        await harness.finish()
    finally:
        harness.kill()
    per_session = max(0.0, busy - base) / plan.idle_sessions * 100
    per_paused = max(0.0, busy_paused - base) / plan.idle_sessions * 100
    return {
        "idle_session_cpu_pct": round(per_session, 4),
        "idle_paused_session_cpu_pct": round(per_paused, 4),
        "idle_sessions_paused": paused,
        "idle_sessions_measured": plan.idle_sessions,
        "idle_frames_encoded": encoded,
    }


async def cpu_over(seconds: float) -> float:
    """Cores of CPU this process used over the next `seconds`."""
    cpu0, t0 = cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds() - cpu0) / (time.monotonic() - t0)


async def until_paused(sessions: list[BenchSession], timeout_s: float) -> int:
    """Wait (bounded) until every session's stream paused for silence; how many did."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.1) + 1):  # polled: the streams have no event to wait on
        if time.monotonic() >= deadline or all(s.streaming.idle_paused for s in sessions):
            break
        await asyncio.sleep(0.1)
    return sum(bool(s.streaming.idle_paused) for s in sessions)


# ---- capacity -----------------------------------------------------------------------------------------


def rates(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    def d(key: str) -> int:
        return after[key] - before[key]

    return {
        "mixer": (d("mixer_late") + d("mixer_underruns")) / max(1, d("mixer_ticks")),
        "receive": d("receive_lost") / max(1, d("frames")),
        "palabra_pacing": d("chunks_padded") / max(1, d("chunks")),
        "speakers": d("speaker_late") / max(1, d("speaker_ticks")),
        "playback_underruns": d("speaker_idle") / max(1, d("speaker_ticks")),
    }


async def measure_capacity(plan: Plan) -> dict[str, Any]:
    steps = plan.capacity_steps
    step_s = plan.settle_s + plan.window_s
    harness = Harness()
    sessions: list[BenchSession] = []
    results: list[dict[str, Any]] = []
    capacity = 0
    try:
        await harness.start()
        for number, target in enumerate(steps):
            remaining = (len(steps) - number) * (step_s + 1.5) + 2.0
            ids = [Identities.build(2000 + i) for i in range(len(sessions), target)]
            sessions += await harness.open_sessions(ids, "continuous", lead_s(), remaining)
            await asyncio.sleep(plan.settle_s + 0.5)
            threads = ThreadCpu()
            threads.start()  # its /proc reads before the window's counters, not inside the window
            before = [s.counters() for s in sessions]
            cpu0, t0 = cpu_seconds(), time.monotonic()
            await asyncio.sleep(plan.window_s)
            cpu = (cpu_seconds() - cpu0) / (time.monotonic() - t0)
            split = threads.cores()
            worst: dict[str, float] = {}
            for session, old in zip(sessions, before, strict=True):
                for clock, rate in rates(old, session.counters()).items():
                    worst[clock] = max(worst.get(clock, 0.0), rate)
            ok = all(rate < LATE_LIMIT for rate in worst.values())
            results.append(
                {
                    "sessions": target,
                    "ok": ok,
                    "worst_late_or_lost_pct": {k: round(v * 100, 3) for k, v in worst.items()},
                    "cpu_cores": round(cpu, 3),
                    "threads_cpu_cores": split,
                    "rss_mb": round(rss_mb(), 1),
                }
            )
            if not ok and plan.stop_at_failure:
                break
            if ok and capacity == (results[-2]["sessions"] if len(results) > 1 else 0):
                capacity = target
        for session in sessions:
            await session.stop()
        _arrivals, traffic = await harness.finish()
    finally:
        harness.kill()
    # The slope over the steps (not from zero): the first session also pays one-off imports and buffers.
    memory = memory_per_session([(r["sessions"], r["rss_mb"]) for r in results])
    return {
        "capacity_sessions": capacity,
        "memory_mb_per_session": memory,
        "capacity_steps": results,
        "traffic_process": {k: v for k, v in traffic.items() if k != "sink_counts"},
        "sink_packets": sum(traffic.get("sink_counts", {}).values()),
    }


def memory_per_session(points: list[tuple[int, float]]) -> float | None:
    """RSS growth per added session: the slope of RSS against sessions held."""
    if len(points) < 2:
        return None
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    return round(float(np.polyfit(x, y, 1)[0]), 3)
