"""`python -m bot bench`: performance figures as one JSON object.

Stable keys (PRODUCT.md): `receive_ratio`, `playback_ratio` (bot.bench.micro: per-frame cost of our
path against raw libopus on the same packets, DAVE on), `bot_added_ms_p95`, `capacity_sessions`,
`idle_session_cpu_pct`, `memory_mb_per_session` (bot.bench.pipeline: the whole pipeline over loopback
sockets against an echo process and a traffic process). Everything else is detail that explains them.

`--quick` bounds the run to a few seconds per phase (CI checks that every key is produced, not the
values: machines are noisy). `--opus-sweep` prints the Opus settings table instead.
Loopback only; every phase stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from typing import Any

STABLE_KEYS = (
    "receive_ratio",
    "playback_ratio",
    "bot_added_ms_p95",
    "capacity_sessions",
    "idle_session_cpu_pct",
    "memory_mb_per_session",
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=400, help="20 ms frames per micro run (default 400 = 8 s)")
    parser.add_argument("--repeat", type=int, default=15, help="micro runs per figure; the best is kept (default 15)")
    parser.add_argument("--quick", action="store_true", help="a bounded run of a few seconds per phase (CI)")
    parser.add_argument(
        "--only", choices=("micro", "latency", "idle", "capacity"), action="append", help="run only these phases"
    )
    parser.add_argument("--steps", help="capacity steps, comma-separated session counts (default 10,20,...,80)")
    parser.add_argument("--opus-sweep", action="store_true", help="print the Opus complexity/bitrate table")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    if args.opus_sweep:
        from bot.audio.frames import FrameAssembler
        from bot.bench.micro import speech_pcm
        from bot.bench.opus_sweep import sweep

        print(json.dumps(sweep(FrameAssembler().feed(speech_pcm(500))), indent=2))
        return 0
    figures = run(args)
    print(json.dumps(figures, indent=2, sort_keys=True))
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot.bench import micro, pipeline

    plan = pipeline.QUICK if args.quick else pipeline.FULL
    if args.steps:
        plan = pipeline.Plan(**{**plan.__dict__, "capacity_steps": tuple(int(s) for s in args.steps.split(","))})
    phases = set(args.only or ("micro", "latency", "idle", "capacity"))
    started = time.monotonic()
    figures: dict[str, Any] = {"quick": bool(args.quick), "machine": machine()}
    if "micro" in phases:
        frames, repeat = (100, 2) if args.quick else (max(10, args.frames), max(1, args.repeat))
        figures.update(micro.run(frames=frames, repeat=repeat))
    if "latency" in phases:
        figures.update(asyncio.run(pipeline.measure_latency(plan)))
    if "idle" in phases:
        figures.update(asyncio.run(pipeline.measure_idle(plan)))
    if "capacity" in phases:
        figures.update(asyncio.run(pipeline.measure_capacity(plan)))
    figures["bench_seconds"] = round(time.monotonic() - started, 1)
    return figures


def machine() -> dict[str, Any]:
    import os
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(), "load_1m": os.getloadavg()[0]}
