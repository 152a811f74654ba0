"""Both rtpsize AEAD modes: packets sealed with PyNaCl / cryptography directly (the fake Discord's
`rtp.seal`, independent of bot.voice) open with ours."""

import os

import pytest

from bot.voice.rtp import build_header, parse_header, strip_plaintext
from bot.voice.transport import AES_GCM, XCHACHA, TransportCipher, TransportCipherError
from tests.fakes.discord import rtp

KEY = bytes(range(32))


@pytest.mark.parametrize("mode", [XCHACHA, AES_GCM])
@pytest.mark.parametrize("with_extension", [False, True])
def test_decrypts_independently_sealed_packets(mode, with_extension):
    opus = os.urandom(120)
    aad = build_header(7, 6720, 99, padding=True, extension_words=1 if with_extension else None)
    plaintext = (b"\x10\xaa\x90\x01" if with_extension else b"") + opus + b"\x00\x00\x00\x04"
    packet = rtp.seal(aad, plaintext, mode, KEY, 0xFFFFFFFE)
    header = parse_header(packet)
    decrypted = TransportCipher(mode, KEY).decrypt(header, packet)
    assert decrypted == plaintext
    assert strip_plaintext(header, decrypted) == opus


@pytest.mark.parametrize("mode", [XCHACHA, AES_GCM])
def test_tampered_header_or_wrong_key_fails(mode):
    packet = bytearray(rtp.seal(build_header(1, 960, 5), b"frame", mode, KEY, 1))
    header = parse_header(bytes(packet))
    with pytest.raises(TransportCipherError):
        TransportCipher(mode, bytes(32)).decrypt(header, bytes(packet))
    packet[3] ^= 1  # sequence is authenticated
    with pytest.raises(TransportCipherError):
        TransportCipher(mode, KEY).decrypt(parse_header(bytes(packet)), bytes(packet))


def test_our_encrypt_matches_the_independent_one():
    aad = build_header(1, 960, 5)
    for mode in (XCHACHA, AES_GCM):
        assert TransportCipher(mode, KEY).encrypt(aad, b"frame", 3) == rtp.seal(aad, b"frame", mode, KEY, 3)


def test_bad_configuration_is_explained():
    with pytest.raises(TransportCipherError, match="unsupported encryption mode 'xsalsa20_poly1305'"):
        TransportCipher("xsalsa20_poly1305", KEY)
    with pytest.raises(TransportCipherError, match="32 bytes"):
        TransportCipher(XCHACHA, b"short")
    cipher = TransportCipher(XCHACHA, KEY)
    with pytest.raises(TransportCipherError, match="too short"):
        cipher.decrypt(parse_header(build_header(1, 1, 1)), build_header(1, 1, 1) + bytes(10))


def test_voice_errors_share_one_root():
    from bot.errors import BotError
    from bot.voice.e2ee import DaveError
    from bot.voice.errors import VoiceError, VoiceGatewayError
    from bot.voice.rtp import RtpError

    for error in (TransportCipherError, RtpError, DaveError, VoiceGatewayError):
        assert issubclass(error, VoiceError) and issubclass(VoiceError, BotError)
