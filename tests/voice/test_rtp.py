"""RTP header parsing, extension/padding stripping and counter unwrapping, on hand-built packets."""

import struct

import pytest

from bot.voice.rtp import (
    RtpError,
    build_header,
    is_rtcp,
    parse_header,
    strip_plaintext,
    unwrap,
)


def raw_header(first=0x80, second=0x78, seq=1, ts=960, ssrc=0xDEADBEEF, csrcs=(), ext_words=None):
    data = struct.pack(">BBHII", first | len(csrcs) | (0x10 if ext_words is not None else 0), second, seq, ts, ssrc)
    data += b"".join(struct.pack(">I", c) for c in csrcs)
    if ext_words is not None:
        data += b"\xbe\xde" + struct.pack(">H", ext_words)
    return data


def test_plain_header_fields():
    header = parse_header(raw_header(second=0x80 | 0x78, seq=65535, ts=4_000_000_000) + b"payload")
    assert (header.marker, header.payload_type, header.sequence, header.timestamp, header.ssrc) == (
        True,
        120,
        65535,
        4_000_000_000,
        0xDEADBEEF,
    )
    assert (header.padding, header.extension, header.aad_size, header.extension_words) == (False, False, 12, 0)


def test_csrcs_and_extension_extend_the_aad():
    header = parse_header(raw_header(csrcs=(1, 2, 3), ext_words=2) + bytes(30))
    assert header.csrc_count == 3
    assert header.aad_size == 12 + 12 + 4
    assert header.extension_words == 2


def test_extension_data_and_padding_are_stripped():
    header = parse_header(raw_header(first=0x80 | 0x20, ext_words=1) + bytes(40))
    plaintext = b"\x10\x01\x02\x03" + b"OPUSFRAME" + b"\x00\x00\x03"
    assert strip_plaintext(header, plaintext) == b"OPUSFRAME"


def test_padding_count_larger_than_payload_is_rejected():
    header = parse_header(raw_header(first=0x80 | 0x20) + bytes(40))
    with pytest.raises(RtpError, match="padding"):
        strip_plaintext(header, b"ab\x09")
    with pytest.raises(RtpError, match="padding"):
        strip_plaintext(header, b"ab\x00")


def test_rejects_short_and_wrong_version():
    with pytest.raises(RtpError, match="shorter"):
        parse_header(b"\x80\x78\x00")
    with pytest.raises(RtpError, match="version"):
        parse_header(b"\x40" + bytes(15))
    with pytest.raises(RtpError, match="truncated"):
        parse_header(raw_header(ext_words=1)[:13])


def test_rtcp_detection():
    assert is_rtcp(b"\x81\xc9" + bytes(6))  # 201 receiver report
    assert not is_rtcp(raw_header())


def test_build_header_round_trips():
    data = build_header(70000, 2**32 + 5, 42, marker=True, padding=True, csrcs=(9,), extension_words=3)
    header = parse_header(data)
    assert (header.sequence, header.timestamp, header.ssrc) == (70000 & 0xFFFF, 5, 42)
    assert header.padding and header.marker and header.csrc_count == 1 and header.extension_words == 3
    assert header.aad_size == len(data)


@pytest.mark.parametrize(
    ("value", "reference", "bits", "expected"),
    [
        (5, 65530, 16, 65541),  # forward across the wrap
        (65530, 65541, 16, 65530),  # a late packet from before the wrap
        (100, 99, 16, 100),
        (10, 2**32 - 100, 32, 2**32 + 10),
    ],
)
def test_unwrap(value, reference, bits, expected):
    assert unwrap(value, reference, bits) == expected
