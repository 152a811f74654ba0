"""A reference receiver for tests: records the raw datagrams of a discord.py voice connection (via its
UDP socket listener hook) and decodes one sender's audio the documented way — transport decrypt,
strip extension and padding, DAVE decrypt with the connection's own session, Opus decode — laid out
by RTP timestamp. It is an oracle to compare a product receiver against, not a receiver itself."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import davey
import discord

from tests.fakes.discord import rtp

FRAME_BYTES = 3840


@dataclass
class DecodeCounts:
    rtp: int = 0
    dave_ok: int = 0
    dave_failed: int = 0
    padded: int = 0
    extended: int = 0
    silence: int = 0
    other_senders: int = 0


class RawSocketRecorder:
    """`RawSocketRecorder(vc)` starts recording every datagram; `close()` stops."""

    def __init__(self, vc: discord.VoiceClient) -> None:
        self.vc = vc
        self.datagrams: list[bytes] = []
        self._lock = threading.Lock()
        vc._connection.add_socket_listener(self)

    def __call__(self, data: bytes) -> None:  # on discord.py's socket reader thread
        with self._lock:
            self.datagrams.append(bytes(data))

    def close(self) -> None:
        self.vc._connection.remove_socket_listener(self)

    def rtp_count(self) -> int:
        with self._lock:
            return sum(rtp.is_rtp(d) for d in self.datagrams)

    def decode_from(self, user_id: int, ssrc: int | None = None) -> tuple[bytes, DecodeCounts]:
        """(48 kHz stereo s16le PCM of `user_id`'s packets, counters). Packets of other SSRCs are
        skipped when `ssrc` is given (else every packet is tried as `user_id`'s)."""
        counts = DecodeCounts()
        key, mode = bytes(self.vc.secret_key), self.vc.mode
        session = self.vc._connection.dave_session
        decoder = discord.opus.Decoder()
        frames: dict[int, bytes] = {}
        with self._lock:
            datagrams = list(self.datagrams)
        for data in datagrams:
            if not rtp.is_rtp(data):
                continue
            packet = rtp.decrypt(data, mode, key)
            if ssrc is not None and packet.ssrc != ssrc:
                counts.other_senders += 1
                continue
            counts.rtp += 1
            counts.padded += packet.padded
            counts.extended += bool(packet.extension)
            if packet.payload == rtp.SILENCE_FRAME:
                counts.silence += 1
                continue
            try:
                opus = session.decrypt(user_id, davey.MediaType.audio, packet.payload)
            except ValueError:
                counts.dave_failed += 1
                continue
            counts.dave_ok += 1
            frames[packet.timestamp] = decoder.decode(opus)
        return _lay_out(frames), counts


def _lay_out(frames: dict[int, bytes]) -> bytes:
    if not frames:
        return b""
    first = min(frames)
    out = bytearray()
    for timestamp in sorted(frames):
        offset = ((timestamp - first) & 0xFFFFFFFF) * 4
        if len(out) < offset:
            out.extend(bytes(offset - len(out)))
        out[offset : offset + len(frames[timestamp])] = frames[timestamp]
    return bytes(out)
