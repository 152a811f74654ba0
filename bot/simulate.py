"""`python -m bot simulate`: the bot's audio path on a sound file, without Discord."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="any common audio file (wav, ogg, mp3, flac, ...)")
    parser.add_argument("--source", default="en", help="Palabra source language code, or 'auto' (default: en)")
    parser.add_argument("--targets", required=True, help="comma-separated target language codes, e.g. es,fr")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="run N times faster than real time (bundled emulator only)"
    )


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError("simulate is not built yet")
