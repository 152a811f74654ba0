"""The bench's other processes and the packets they replay.

`Harness` starts the echo (Palabra side) and the traffic process (talkers + counting sink), seals each
talker's packets ahead of time (Opus-encoded once, DAVE-encrypted by the talker's own session of the
channel's group, transport-sealed) and hands them over with their start times, then collects both
processes' figures at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.audio.frames import FRAME_S, FRAME_SAMPLES
from bot.bench.rig import BenchSession, Identities
from bot.bench.traffic import Stream
from bot.voice.playback_clock import PlaybackClock
from bot.voice.rtp import build_header
from bot.voice.transport import AES_GCM, TransportCipher

START_TIMEOUT_S = 20.0


def talker_opus(frames: int = 500) -> list[bytes]:
    """A loop of speech as a Discord client would send it (Opus, 20 ms, 64 kb/s)."""
    from bot.audio import opus
    from bot.audio.frames import FrameAssembler
    from bot.bench.micro import speech_pcm

    encoder = opus.Encoder(application="voip", bitrate_kbps=64, fec=True)
    return [encoder.encode(frame) for frame in FrameAssembler().feed(speech_pcm(frames))]


class Harness:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bot-bench-"))
        self.opus = talker_opus()
        self.clock = PlaybackClock()
        self.echo: subprocess.Popen[bytes] | None = None
        self.traffic: subprocess.Popen[bytes] | None = None
        self.echo_port = 0
        self.sink: tuple[str, int] = ("127.0.0.1", 0)
        self.random = random.Random(9)

    def spawn(self, port_file: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        results = str(self.tmp / "echo.json")
        echo = [sys.executable, "-m", "bot.bench.echo", "--port-file", str(port_file), "--results", results]
        self.echo = subprocess.Popen(echo, env=env)
        self.traffic = subprocess.Popen(
            [sys.executable, "-m", "bot.bench.traffic"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    async def start(self) -> None:
        port_file = self.tmp / "echo.port"
        self.spawn(port_file)
        assert self.traffic is not None and self.echo is not None
        assert self.traffic.stdout is not None
        line = await asyncio.to_thread(self.traffic.stdout.readline)
        self.sink = ("127.0.0.1", int(line))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self.echo.poll() is not None:
                raise RuntimeError("the bench's echo process did not start")
            await asyncio.sleep(0.05)
        self.echo_port = int(port_file.read_text())

    def seal(self, ids: Identities, port: int, start: float, seconds: float) -> list[Stream]:
        """Both talkers' packets for `seconds` from `start` (each talker at its own phase in the frame)."""
        streams = []
        count = max(1, int(seconds / FRAME_S))
        cipher = TransportCipher(AES_GCM, ids.key)
        for talker in ids.talkers:
            dave, ssrc = ids.dave[talker], ids.ssrc(talker)
            packets = []
            for i in range(count):
                frame = dave.encrypt_opus(self.opus[i % len(self.opus)])
                aad = build_header(i & 0xFFFF, (i * FRAME_SAMPLES) & 0xFFFFFFFF, ssrc, extension_words=1)
                packets.append(cipher.encrypt(aad, b"\x10\x7f\x00\x00" + frame, i))
            streams.append(Stream(port, start + self.random.uniform(0, FRAME_S), packets))
        return streams

    def send(self, batch: list[Stream] | None) -> None:
        assert self.traffic is not None and self.traffic.stdin is not None
        data = pickle.dumps(batch)
        self.traffic.stdin.write(struct.pack(">I", len(data)) + data)
        self.traffic.stdin.flush()

    async def open_sessions(
        self,
        identities: list[Identities],
        mode: str,
        lead_s: float,
        talk_s: float,
        talk_after_s: float = 0.5,
        idle_pause_s: float | None = None,
    ) -> list[BenchSession]:
        """Start sessions (each a WebSocket to the echo); their talkers start `talk_after_s` later.

        Packets are sealed before the sessions start: sealing blocks this thread, and a stalled event
        loop would stall the sessions' clocks (and pad their Palabra streams)."""
        sessions = [BenchSession(ids, self.echo_port, self.sink, self.clock, mode) for ids in identities]
        batch = [stream for s in sessions for stream in self.seal(s.ids, s.port, 0.0, talk_s)] if talk_s > 0 else []
        await asyncio.gather(*(s.start(lead_s, idle_pause_s) for s in sessions))
        if batch:
            start = time.monotonic() + talk_after_s
            streams = iter(batch)
            for session in sessions:
                for talker in session.ids.talkers:
                    stream = next(streams)
                    stream.start += start
                    session.talk_start[talker] = stream.start
            self.send(batch)
        return sessions

    async def finish(self) -> tuple[dict[str, list[float]], dict[str, Any]]:
        """Stop both processes; (echo chunk arrivals per session, traffic figures)."""
        traffic: dict[str, Any] = {}
        if self.traffic is not None:
            self.send(None)
            assert self.traffic.stdout is not None
            line = await asyncio.to_thread(self.traffic.stdout.readline)
            traffic = json.loads(line) if line else {}
            await asyncio.to_thread(self.traffic.wait, 10)
        arrivals: dict[str, list[float]] = {}
        if self.echo is not None:
            self.echo.terminate()
            await asyncio.to_thread(self.echo.wait, 10)
            with contextlib.suppress(OSError, ValueError):
                arrivals = json.loads((self.tmp / "echo.json").read_text())
        self.clock.stop()
        return arrivals, traffic

    def kill(self) -> None:
        for proc in (self.traffic, self.echo):
            if proc is not None and proc.poll() is None:
                proc.kill()
