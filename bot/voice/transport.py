"""Transport encryption of voice RTP: the two "rtpsize" AEAD modes Discord still offers.

Nonce: the 4-byte big-endian counter appended to the packet, followed by zeros (24 bytes for
XChaCha20-Poly1305, 12 for AES-256-GCM). AAD: the header up to and including the extension preamble.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt, crypto_aead_xchacha20poly1305_ietf_encrypt
from nacl.exceptions import CryptoError

from bot.voice.errors import VoiceError
from bot.voice.rtp import NONCE_SUFFIX_SIZE, TAG_SIZE, RtpHeader

XCHACHA = "aead_xchacha20_poly1305_rtpsize"
AES_GCM = "aead_aes256_gcm_rtpsize"
MODES = (XCHACHA, AES_GCM)
_AES_NONCE_PAD = bytes(8)  # the 12-byte AES-GCM nonce: the 4-byte counter, then zeros
_XCHACHA_NONCE_PAD = bytes(20)  # the 24-byte XChaCha20 nonce


class TransportCipherError(VoiceError, ValueError):
    """A packet that does not decrypt (wrong key, tampered, truncated) or an unsupported mode."""


class TransportCipher:
    """Decrypts (and, for senders and tests, encrypts) packets of one mode with one secret key."""

    def __init__(self, mode: str, secret_key: bytes) -> None:
        if mode not in MODES:
            raise TransportCipherError(f"unsupported encryption mode {mode!r}; supported: {', '.join(MODES)}")
        if len(secret_key) != 32:
            raise TransportCipherError(f"secret key must be 32 bytes, got {len(secret_key)}")
        self.mode = mode
        self._key = bytes(secret_key)
        self._aes = AESGCM(self._key) if mode == AES_GCM else None
        self._aes_decrypt = self._aes.decrypt if self._aes is not None else None  # bound once, used per packet

    def decrypt(self, header: RtpHeader, packet: bytes) -> bytes:
        """Plaintext after the AAD (still holding extension data and padding)."""
        body_end = len(packet) - NONCE_SUFFIX_SIZE
        if body_end - header.aad_size < TAG_SIZE:
            raise TransportCipherError("packet too short for its header, tag and nonce")
        aad_size = header.aad_size
        suffix = packet[body_end:]
        try:
            if self._aes_decrypt is not None:
                return self._aes_decrypt(suffix + _AES_NONCE_PAD, packet[aad_size:body_end], packet[:aad_size])
            return crypto_aead_xchacha20poly1305_ietf_decrypt(
                packet[aad_size:body_end], packet[:aad_size], suffix + _XCHACHA_NONCE_PAD, self._key
            )
        except (InvalidTag, CryptoError):
            raise TransportCipherError("authentication failed (wrong key or damaged packet)") from None

    def encrypt(self, aad: bytes, plaintext: bytes, counter: int) -> bytes:
        """A whole packet: AAD + ciphertext + tag + 4-byte counter."""
        suffix = (counter & 0xFFFFFFFF).to_bytes(NONCE_SUFFIX_SIZE, "big")
        if self._aes is not None:
            sealed = self._aes.encrypt(suffix + _AES_NONCE_PAD, plaintext, aad)
        else:
            sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, suffix + _XCHACHA_NONCE_PAD, self._key)
        return aad + sealed + suffix
