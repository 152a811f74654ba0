"""`python -m bot bench` runs in a subprocess and prints the figures as JSON."""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_prints_ratios_as_json():
    result = subprocess.run(
        [sys.executable, "-m", "bot", "bench", "--frames", "100", "--repeat", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in (
        "receive_ratio",
        "playback_ratio",
        "stock_decoder_ratio",
        "receive_path_us_per_frame",
        "raw_decode_us_per_frame",
        "playback_path_us_per_frame",
        "raw_encode_us_per_frame",
    ):
        assert isinstance(figures[key], (int, float)) and math.isfinite(figures[key]) and figures[key] > 0, key
    assert figures["dave"] is True  # the receive path was measured with DAVE decryption in it
    assert figures["frames"] == 100
