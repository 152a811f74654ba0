"""`python -m bot bench --quick` runs in a subprocess (loopback only, bounded) and prints every stable key.

Values are not checked against targets (machines are noisy); each must be a finite positive number,
the pipeline phases must have measured something, and DAVE must have been on."""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STABLE = (
    "receive_ratio",
    "playback_ratio",
    "bot_added_ms_p95",
    "capacity_sessions",
    "idle_session_cpu_pct",
    "memory_mb_per_session",
)


def test_bench_quick_prints_every_stable_key_as_json():
    result = subprocess.run(
        [sys.executable, "-m", "bot", "bench", "--quick"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    for key in STABLE:
        value = figures[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, (key, value)
    assert figures["bot_added_ms_p95"] > 0 and figures["receive_ratio"] > 0 and figures["playback_ratio"] > 0
    assert figures["dave"] is True  # the receive path was measured with DAVE decryption in it
    samples = figures["latency_samples"]
    assert samples["ingress_chunks"] > 0 and samples["egress_utterances"] > 0
    assert set(figures["latency_breakdown_ms_p95"]) == set(figures["latency_budget_ms_p95"])
    assert figures["idle_frames_encoded"] == 0  # nobody spoke, nothing played: nothing encoded
    assert figures["sink_packets"] > 0  # the speakers' packets reached the counting sink
    for step in figures["capacity_steps"]:  # where each step's CPU went, busiest first
        split = step["threads_cpu_cores"]
        assert "MainThread" in split and any(group.startswith("playback-clock") for group in split), split
    assert figures["bench_seconds"] < 120


def test_bench_does_not_import_the_test_tree():
    code = (
        "import sys; import bot.bench.pipeline, bot.bench.micro; print(any(m.startswith('tests') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr
