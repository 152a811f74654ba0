"""RTP as Discord voice uses it, with the two "rtpsize" AEAD transport modes (sans-I/O).

Packet layout (both directions):
`[AAD: 12-byte header + CSRCs + (if X) 4-byte 0xBEDE preamble][ciphertext of: extension data +
payload + RTP padding][16-byte tag][4-byte big-endian nonce counter]`. The AEAD nonce is the 4
counter bytes followed by zeros (24 bytes for XChaCha20-Poly1305, 12 for AES-256-GCM).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings

XCHACHA = "aead_xchacha20_poly1305_rtpsize"
AES_GCM = "aead_aes256_gcm_rtpsize"
MODES = (AES_GCM, XCHACHA)  # the order Discord offers them in

OPUS_PT = 0x78
HEADER_SIZE = 12
TAG_SIZE = 16
NONCE_SIZE = 4
EXTENSION_MAGIC = 0xBEDE
SILENCE_FRAME = b"\xf8\xff\xfe"
DISCOVERY_SIZE = 74


class PacketError(ValueError):
    """A datagram that is not a well-formed (or not a decryptable) RTP packet."""


@dataclass(frozen=True)
class RtpHeader:
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False
    extension: bytes = b""  # one-byte-header elements, a multiple of 4 bytes
    padding: int = 0  # bytes of RTP padding to append (0 = P bit clear)


@dataclass(frozen=True)
class Packet:
    """A decrypted RTP packet: `payload` has the extension data and padding already removed."""

    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    extension: bytes
    padded: bool
    payload_type: int


def is_rtp(data: bytes) -> bool:
    """Version 2, Opus payload type, long enough for header + tag + nonce (so RTCP, keepalives and
    discovery packets are not)."""
    return len(data) >= HEADER_SIZE + TAG_SIZE + NONCE_SIZE and data[0] >> 6 == 2 and data[1] & 0x7F == OPUS_PT


def aad_length(data: bytes) -> int:
    """Bytes of the packet that are authenticated but not encrypted."""
    length = HEADER_SIZE + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        length += 4
    if len(data) < length + TAG_SIZE + NONCE_SIZE:
        raise PacketError("packet too short for its header")
    return length


def _cipher(mode: str, key: bytes):
    if len(key) != 32:
        raise ValueError(f"transport key must be 32 bytes, got {len(key)}")
    if mode == XCHACHA:
        return lambda nonce, data, aad: bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            data, aad, nonce + bytes(20), key
        )
    if mode == AES_GCM:
        aes = AESGCM(key)
        return lambda nonce, data, aad: aes.encrypt(nonce + bytes(8), data, aad)
    raise ValueError(f"unsupported transport mode {mode!r}; expected one of {MODES}")


def _decipher(mode: str, key: bytes):
    if mode == XCHACHA:
        return lambda nonce, data, aad: bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            data, aad, nonce + bytes(20), key
        )
    if mode == AES_GCM:
        aes = AESGCM(key)
        return lambda nonce, data, aad: aes.decrypt(nonce + bytes(8), data, aad)
    raise ValueError(f"unsupported transport mode {mode!r}; expected one of {MODES}")


def build_header(header: RtpHeader) -> tuple[bytes, bytes]:
    """(AAD bytes, extension data to encrypt) for a header."""
    if len(header.extension) % 4:
        raise ValueError("RTP extension data must be a multiple of 4 bytes")
    first = 0x80 | (0x20 if header.padding else 0) | (0x10 if header.extension else 0)
    second = (0x80 if header.marker else 0) | OPUS_PT
    aad = struct.pack(">BBHII", first, second, header.sequence & 0xFFFF, header.timestamp & 0xFFFFFFFF, header.ssrc)
    if header.extension:
        aad += struct.pack(">HH", EXTENSION_MAGIC, len(header.extension) // 4)
    return aad, header.extension


def seal(aad: bytes, plaintext: bytes, mode: str, key: bytes, counter: int) -> bytes:
    """Encrypt `plaintext` (extension data + payload + padding) behind `aad`, append tag and nonce."""
    nonce = struct.pack(">I", counter & 0xFFFFFFFF)
    return aad + _cipher(mode, bytes(key))(nonce, plaintext, aad) + nonce


def encrypt(header: RtpHeader, payload: bytes, mode: str, key: bytes, counter: int) -> bytes:
    """A complete RTP datagram as a Discord client sends it."""
    aad, extension = build_header(header)
    padding = b""
    if header.padding:
        if not 1 <= header.padding <= 255:
            raise ValueError("RTP padding must be 1..255 bytes")
        padding = bytes(header.padding - 1) + bytes([header.padding])
    return seal(aad, extension + payload + padding, mode, key, counter)


def open_packet(data: bytes, mode: str, key: bytes) -> tuple[bytes, bytes]:
    """(AAD, decrypted plaintext) of a datagram; PacketError if it does not authenticate."""
    if not is_rtp(data):
        raise PacketError("not an Opus RTP packet")
    split = aad_length(data)
    aad, body, nonce = data[:split], data[split:-NONCE_SIZE], data[-NONCE_SIZE:]
    try:
        plaintext = _decipher(mode, bytes(key))(nonce, body, aad)
    except Exception as exc:  # nacl CryptoError / cryptography InvalidTag
        raise PacketError(f"transport decryption failed ({type(exc).__name__})") from None
    return aad, plaintext


def decrypt(data: bytes, mode: str, key: bytes) -> Packet:
    """Parse and decrypt a datagram; strips extension data and RTP padding (before any DAVE step)."""
    aad, plaintext = open_packet(data, mode, key)
    first, second, sequence, timestamp, ssrc = struct.unpack_from(">BBHII", aad)
    extension = b""
    if first & 0x10:
        words = struct.unpack_from(">H", aad, len(aad) - 2)[0]
        extension, plaintext = plaintext[: 4 * words], plaintext[4 * words :]
    padded = bool(first & 0x20)
    if padded:
        if not plaintext or plaintext[-1] == 0 or plaintext[-1] > len(plaintext):
            raise PacketError("invalid RTP padding")
        plaintext = plaintext[: -plaintext[-1]]
    return Packet(sequence, timestamp, ssrc, plaintext, extension, padded, second & 0x7F)


def ssrc_of(data: bytes) -> int:
    return struct.unpack_from(">I", data, 8)[0]


def audio_level_extension(level: int = 30, voice: bool = True) -> bytes:
    """One-byte-header element id 1 (RFC 6464 audio level), padded to 4 bytes."""
    return bytes([0x10, (0x80 if voice else 0) | (level & 0x7F), 0, 0])


# --- IP discovery --------------------------------------------------------------------------------


def discovery_request(ssrc: int) -> bytes:
    return struct.pack(">HHI", 1, 70, ssrc) + bytes(66)


def parse_discovery_request(data: bytes) -> int | None:
    """The SSRC of a discovery request, or None if `data` is not one."""
    if len(data) != DISCOVERY_SIZE or struct.unpack_from(">HH", data) != (1, 70):
        return None
    return struct.unpack_from(">I", data, 4)[0]


def discovery_response(ssrc: int, ip: str, port: int) -> bytes:
    address = ip.encode("ascii")
    if len(address) >= 64:
        raise ValueError("address too long for IP discovery")
    return struct.pack(">HHI", 2, 70, ssrc) + address.ljust(64, b"\0") + struct.pack(">H", port)


def parse_discovery_response(data: bytes) -> tuple[str, int]:
    if len(data) != DISCOVERY_SIZE or data[1] != 2:
        raise PacketError("not an IP discovery response")
    ip = data[8 : data.index(0, 8)].decode("ascii")
    return ip, struct.unpack_from(">H", data, 72)[0]
