"""A simulated voice sender for the receive tests: Opus -> DAVE (davey) -> RTP -> transport AEAD,
sealed with PyNaCl / cryptography directly (not with the code under test)."""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from bot.audio import opus

XCHACHA = "aead_xchacha20_poly1305_rtpsize"
AES_GCM = "aead_aes256_gcm_rtpsize"


def seal(mode: str, key: bytes, aad: bytes, plaintext: bytes, counter: int) -> bytes:
    suffix = struct.pack(">I", counter & 0xFFFFFFFF)
    if mode == XCHACHA:
        body = crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, suffix + bytes(20), key)
    else:
        body = AESGCM(key).encrypt(suffix + bytes(8), plaintext, aad)
    return aad + body + suffix


class Sender:
    def __init__(self, ssrc: int, key: bytes, session=None, mode: str = XCHACHA, seq: int = 0, ts: int = 0):
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
        first = 0x80 | (0x20 if padding else 0) | (0x10 if extension is not None else 0)
        aad = struct.pack(">BBHII", first, 0x78, self.seq & 0xFFFF, self.ts & 0xFFFFFFFF, self.ssrc)
        plaintext = payload
        if extension is not None:
            assert len(extension) % 4 == 0
            aad += b"\xbe\xde" + struct.pack(">H", len(extension) // 4)
            plaintext = extension + plaintext
        if padding:
            plaintext += bytes(padding - 1) + bytes([padding])
        self.counter += 1
        data = seal(self.mode, self.key, aad, plaintext, self.counter)
        if advance:
            self.skip()
        return data

    def skip(self, frames: int = 1) -> None:
        self.seq = (self.seq + frames) & 0xFFFF
        self.ts = (self.ts + 960 * frames) & 0xFFFFFFFF
