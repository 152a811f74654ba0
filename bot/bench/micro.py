"""Per-frame micro figures (part of `python -m bot bench`), as ratios to same-run baselines.

- `receive_ratio`: the receive path per 20 ms frame (RTP parse + transport decrypt + DAVE decrypt + our
  Opus decode + jitter buffer) / a raw `opus_decode` call on the same packets. Transport mode
  AES-256-GCM, the one Discord prefers and the bot negotiates; `receive_ratio_xchacha` is the same path
  in the XChaCha20 fallback mode (PyNaCl's binding costs ~20 us a packet more).
- `playback_ratio`: the speaker's path per frame (translated audio fed in ~200 ms chunks as Palabra sends
  it: queue + 24 kHz -> 48 kHz stereo resample + framing + `Outlet`: our Opus encoder at the playback
  settings) / a raw `opus_encode` call at the same settings on the same PCM.
  `playback_ratio_with_floor` adds mixing the original under it with ducking.
- `stock_decoder_ratio`: discord.opus.Decoder.decode / raw decode (what receive would cost with it).

Each figure is the best of N runs over the same packets, so it is mostly free of scheduling noise; the
ratios (not the absolute microseconds) are what stays comparable between machines. No network.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ASSET = Path(__file__).resolve().parent / "assets" / "sample-en.ogg"
BOT_ID, SPEAKER_ID, SSRC = 1001, 2002, 4242
PALABRA_CHUNK_FRAMES = 10  # output_audio_data chunks of ~200 ms


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=400, help="20 ms frames per run (default 400 = 8 s)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best is kept (default 5)")


def main(args: argparse.Namespace) -> int:
    figures = run(frames=max(10, args.frames), repeat=max(1, args.repeat))
    print(json.dumps(figures, indent=2, sort_keys=True))
    return 0


def run(frames: int = 400, repeat: int = 5) -> dict[str, Any]:
    from bot.audio import opus
    from bot.audio.frames import FrameAssembler

    pcm48 = speech_pcm(frames)
    pcm_frames = FrameAssembler().feed(pcm48)
    from bot.voice.transport import AES_GCM, XCHACHA

    receive = measure_receive(pcm_frames, repeat, AES_GCM)
    xchacha = measure_receive(pcm_frames, repeat, XCHACHA)
    playback = measure_playback(pcm_frames, repeat)
    return {
        "frames": frames,
        "repeat": repeat,
        "libopus": opus.version(),
        **receive,
        "receive_ratio_xchacha": xchacha["receive_ratio"],
        **playback,
    }


# ---- input ----------------------------------------------------------------------------------------


def speech_pcm(frames: int) -> bytes:
    """48 kHz stereo speech: the bundled sample (looped), or a speech-like synthetic signal without it."""
    from bot.audio.frames import FRAME_BYTES, upmix

    needed = frames * FRAME_BYTES
    try:
        from bot.audio.files import read_audio

        pcm = read_audio(ASSET)
    except Exception:
        pcm = b""
    if not pcm:
        t = np.arange(needed // 4) / 48000
        voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 700, 1100), 1))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
        mono = (voice * envelope * 6000).astype("<i2")
        pcm = upmix(mono).tobytes()
    while len(pcm) < needed:
        pcm += pcm
    return pcm[:needed]


def dave_pair() -> tuple[Any, Any] | None:
    """(receiver session, sender session) in one DAVE group, built in-process by the repository's
    fake-Discord helper (the voice server's external-sender role); None when it is not available."""
    try:
        from bot.voice.dave_server import dave_group
    except ImportError:
        return None
    sessions = dave_group([BOT_ID, SPEAKER_ID])
    return sessions[BOT_ID], sessions[SPEAKER_ID]


def best_of(repeat: int, *works: Callable[[], int]) -> list[float]:
    """Best wall time per item (µs) of each `work` (which returns its item count) over `repeat` rounds.

    The works take turns within each round, so a burst of load on this shared machine hits a ratio's
    numerator and denominator alike instead of one of them.
    """
    best = [float("inf")] * len(works)
    for _ in range(repeat):
        for index, work in enumerate(works):
            start = time.perf_counter()
            items = work()
            best[index] = min(best[index], (time.perf_counter() - start) / items)
    return [value * 1e6 for value in best]


# ---- receive --------------------------------------------------------------------------------------


def measure_receive(pcm_frames: list[bytes], repeat: int, mode: str) -> dict[str, Any]:
    import discord.opus

    from bot.audio import opus
    from bot.voice.jitter import UserStream
    from bot.voice.playback import ensure_discord_opus
    from bot.voice.receive import ReceivePipeline
    from bot.voice.rtp import build_header
    from bot.voice.transport import TransportCipher

    encoder = opus.Encoder(application="audio", bitrate_kbps=64, fec=True)
    opus_packets = [encoder.encode(frame) for frame in pcm_frames]
    pair = dave_pair()
    key = os.urandom(32)
    cipher = TransportCipher(mode, key)

    def datagrams() -> list[bytes]:
        """Fresh DAVE frames per run (DAVE rejects replays), sealed like Discord's SFU does."""
        out = []
        for index, packet in enumerate(opus_packets):
            frame = pair[1].encrypt_opus(packet) if pair else packet
            aad = build_header(index, index * 960, SSRC, extension_words=1)
            out.append(cipher.encrypt(aad, b"\x10\x7f\x00\x00" + frame, index))
        return out

    runs = [datagrams() for _ in range(repeat)]

    def receive_path() -> int:
        batch = runs.pop(0)  # oldest first: DAVE rejects nonces older than ones it has seen
        pipeline = ReceivePipeline(lambda: (pair[0], 1) if pair else (None, 0), own_user_id=BOT_ID, own_ssrc=1)
        pipeline.set_transport(mode, key)
        pipeline.map_ssrc(SSRC, SPEAKER_ID, 0.0)
        stream = UserStream(SPEAKER_ID)
        for index, datagram in enumerate(batch):
            for packet in pipeline.feed(datagram, index * 0.02):
                stream.push(packet)  # type: ignore[arg-type]  # only VoicePackets when nothing fails
        if pipeline.stats.accepted != len(batch):
            raise RuntimeError(f"bench receive path lost packets: {pipeline.stats.as_dict()}")
        return len(batch)

    lib = opus.load()
    raw_state = opus.Decoder()  # its C state, driven directly below
    buffer = ctypes.create_string_buffer(opus.MAX_FRAME_SAMPLES * 4)

    def raw_decode() -> int:
        decode, state = lib.opus_decode, raw_state._state
        for packet in opus_packets:
            decode(state, packet, len(packet), buffer, opus.MAX_FRAME_SAMPLES, 0)
        return len(opus_packets)

    ours = opus.Decoder()

    def our_decode() -> int:
        for packet in opus_packets:
            ours.decode(packet)
        return len(opus_packets)

    ensure_discord_opus()
    stock = discord.opus.Decoder()  # type: ignore[no-untyped-call]  # discord.py leaves it unannotated

    def stock_decode() -> int:
        for packet in opus_packets:
            stock.decode(packet, fec=False)
        return len(opus_packets)

    raw_us, path_us, ours_us, stock_us = best_of(repeat, raw_decode, receive_path, our_decode, stock_decode)
    return {
        "dave": pair is not None,
        "receive_path_us_per_frame": round(path_us, 2),
        "raw_decode_us_per_frame": round(raw_us, 2),
        "our_decode_us_per_frame": round(ours_us, 2),
        "stock_decoder_us_per_frame": round(stock_us, 2),
        "receive_ratio": round(path_us / raw_us, 3),
        "our_decoder_ratio": round(ours_us / raw_us, 3),
        "stock_decoder_ratio": round(stock_us / raw_us, 3),
    }


# ---- playback -------------------------------------------------------------------------------------


def measure_playback(pcm_frames: list[bytes], repeat: int) -> dict[str, Any]:
    from bot.audio import opus
    from bot.audio.frames import DISCORD, FRAME_MS, PALABRA_OUTPUT
    from bot.audio.resample import Resampler
    from bot.voice.playback import OPUS_COMPLEXITY, OPUS_SETTINGS, TranslationSource
    from bot.voice.playback_clock import Outlet, make_encoder

    to_24k = Resampler(DISCORD.rate, DISCORD.channels, PALABRA_OUTPUT.rate, PALABRA_OUTPUT.channels)
    translation_24k = to_24k.process(b"".join(pcm_frames)) + to_24k.flush()
    # Translated audio arrives as Palabra sends it, in chunks of about 200 ms (10 frames), each fed when
    # the frames before it have been sent.
    per_chunk = PALABRA_CHUNK_FRAMES
    chunk = PALABRA_OUTPUT.bytes_for(FRAME_MS) * per_chunk
    chunks = [translation_24k[i : i + chunk] for i in range(0, len(pcm_frames) // per_chunk * chunk, chunk)]

    class Discard:
        """The voice connection's send, left out: it is measured on the whole pipeline (bench capacity)."""

        timestamp = 0

        def is_connected(self) -> bool:
            return True

        def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
            pass

    def path(floor: bool) -> Callable[[], int]:
        def playback_path() -> int:
            source = TranslationSource(floor_base_volume=0.3 if floor else 0.0, floor_ducked_volume=0.1)
            outlet = Outlet(Discard(), source)
            for index, frame in enumerate(pcm_frames):
                if index % per_chunk == 0 and index // per_chunk < len(chunks):
                    source.feed(chunks[index // per_chunk])
                if floor:
                    source.feed_floor(frame)
                outlet.tick()
            return len(pcm_frames)

        return playback_path

    # Raw baseline: opus_encode straight into a preallocated buffer, same settings as the outlet's.
    baseline = make_encoder()
    lib = opus.load()
    out = ctypes.create_string_buffer(opus.MAX_PACKET_BYTES)

    def raw_encode() -> int:
        encode, state = lib.opus_encode, baseline._state
        for frame in pcm_frames:
            encode(state, frame, 960, out, opus.MAX_PACKET_BYTES)
        return len(pcm_frames)

    raw_us, path_us, floor_us = best_of(repeat, raw_encode, path(False), path(True))
    return {
        "playback_path_us_per_frame": round(path_us, 2),
        "raw_encode_us_per_frame": round(raw_us, 2),
        "playback_ratio": round(path_us / raw_us, 3),
        "playback_ratio_with_floor": round(floor_us / raw_us, 3),
        "opus_settings": {**OPUS_SETTINGS, "complexity": OPUS_COMPLEXITY},
    }
