"""A simulated voice sender for the receive unit tests: Opus -> DAVE (davey, when a session is given) ->
RTP -> transport AEAD. Packets are built and sealed by `tests.fakes.discord.rtp` (PyNaCl / cryptography
directly), never by the code under test."""

from __future__ import annotations

from typing import Any

from bot.audio import opus
from tests.fakes.discord import rtp
from tests.fakes.discord.rtp import AES_GCM, XCHACHA

__all__ = ["AES_GCM", "XCHACHA", "Sender"]

SAMPLES_PER_FRAME = 960  # 20 ms at 48 kHz: the RTP timestamp step


class Sender:
    def __init__(self, ssrc: int, key: bytes, session: Any = None, mode: str = XCHACHA, seq: int = 0, ts: int = 0):
        self.ssrc, self.key, self.session, self.mode = ssrc, key, session, mode
        self.seq, self.ts, self.counter = seq, ts, 0
        self.encoder = opus.Encoder(application="voip", fec=True, expected_packet_loss=0.1)

    def frame(self, pcm: bytes) -> bytes:
        """Opus (and DAVE when a session is set) for one 20 ms frame."""
        payload = self.encoder.encode(pcm)
        return self.session.encrypt_opus(payload) if self.session is not None else payload

    def packet(
        self, payload: bytes, *, padding: int = 0, extension: bytes | None = None, advance: bool = True
    ) -> bytes:
        """The next datagram carrying `payload`, with RTP padding and one-byte header extension data if asked."""
        header = rtp.RtpHeader(self.seq, self.ts, self.ssrc, extension=extension or b"", padding=padding)
        self.counter += 1
        data = rtp.encrypt(header, payload, self.mode, self.key, self.counter)
        if advance:
            self.skip()
        return data

    def skip(self, frames: int = 1) -> None:
        self.seq = (self.seq + frames) & 0xFFFF
        self.ts = (self.ts + SAMPLES_PER_FRAME * frames) & 0xFFFFFFFF
