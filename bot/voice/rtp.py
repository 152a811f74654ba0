"""RTP as Discord's voice UDP uses it (RFC 3550 header, one-byte `0xBEDE` extensions, rtpsize AEAD).

Pure functions over bytes; nothing here does I/O. Layout of an encrypted "rtpsize" packet:

    [12-byte header][CSRCs][if X: BE DE LL LL]   <- authenticated, not encrypted (the AAD)
    [if X: LL*4 bytes of extension data][payload][if P: padding, last byte = pad count]   <- encrypted
    [16-byte tag][4-byte big-endian nonce counter]
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from bot.voice.errors import VoiceError

OPUS_PAYLOAD_TYPE = 0x78  # 120
RTCP_TYPES = range(200, 205)
HEADER_SIZE = 12
TAG_SIZE = 16
NONCE_SUFFIX_SIZE = 4

_HEADER = struct.Struct(">BBHII")


class RtpError(VoiceError, ValueError):
    """A datagram that is not a usable RTP packet; the message says why."""


class RtpHeader(NamedTuple):  # a tuple: cheap to build once per packet
    padding: bool
    extension: bool
    csrc_count: int
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    aad_size: int  # header + CSRCs + (if X) the 4-byte extension preamble
    extension_words: int  # LL: 32-bit words of extension data at the start of the plaintext


def is_rtcp(datagram: bytes) -> bool:
    return len(datagram) >= 2 and datagram[1] in RTCP_TYPES


def parse_header(datagram: bytes) -> RtpHeader:
    """Parse the unencrypted part of an RTP packet; raise RtpError if it cannot be one."""
    if len(datagram) < HEADER_SIZE:
        raise RtpError(f"datagram of {len(datagram)} bytes is shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(datagram)
    if first >> 6 != 2:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    csrc_count = first & 0x0F
    aad_size = HEADER_SIZE + 4 * csrc_count
    extension_words = 0
    if first & 0x10:
        if len(datagram) < aad_size + 4:
            raise RtpError("header extension preamble is truncated")
        extension_words = (datagram[aad_size + 2] << 8) | datagram[aad_size + 3]
        aad_size += 4
    # Positional: keyword construction of a NamedTuple costs about as much as the unpack (once per packet).
    return RtpHeader(
        first & 0x20 != 0,  # padding
        first & 0x10 != 0,  # extension
        csrc_count,
        second & 0x80 != 0,  # marker
        second & 0x7F,  # payload_type
        sequence,
        timestamp,
        ssrc,
        aad_size,
        extension_words,
    )


def strip_plaintext(header: RtpHeader, plaintext: bytes) -> bytes:
    """Remove decrypted extension data from the front and RTP padding from the end.

    Padding must go before DAVE decryption: DAVE looks for its 0xFAFA marker at the very end.
    """
    start = header.extension_words * 4
    end = len(plaintext)
    if header.padding:
        if end == 0:
            raise RtpError("padding flag set on an empty payload")
        pad = plaintext[-1]
        if pad == 0 or pad > end - start:
            raise RtpError(f"invalid RTP padding count {pad}")
        end -= pad
    if start > end:
        raise RtpError("extension data is longer than the payload")
    return plaintext[start:end]


def build_header(
    sequence: int,
    timestamp: int,
    ssrc: int,
    *,
    payload_type: int = OPUS_PAYLOAD_TYPE,
    marker: bool = False,
    padding: bool = False,
    csrcs: tuple[int, ...] = (),
    extension_words: int | None = None,
) -> bytes:
    """The unencrypted header (the AAD) of a packet we build: bench, tests and keepalive-free senders."""
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension_words is not None else 0) | len(csrcs)
    second = (0x80 if marker else 0) | payload_type
    header = _HEADER.pack(first, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    header += b"".join(c.to_bytes(4, "big") for c in csrcs)
    if extension_words is not None:
        header += b"\xbe\xde" + extension_words.to_bytes(2, "big")
    return header


def unwrap(value: int, reference: int, bits: int) -> int:
    """Extend a wrapping counter (`bits` wide) to the value closest to `reference` (already extended)."""
    span = 1 << bits
    half = span >> 1
    delta = (value - reference) & (span - 1)
    if delta >= half:
        delta -= span
    return reference + delta
