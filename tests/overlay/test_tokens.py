"""Overlay link tokens: genuine ones verify to their grant; anything altered, foreign or malformed does not."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.overlay.tokens import OverlayGrant, TokenSigner

KEY = b"k" * 32


def test_a_token_verifies_to_its_session_and_language_and_each_link_is_distinct():
    signer = TokenSigner(KEY)
    first, second = signer.issue(OverlayGrant(42, "es")), signer.issue(OverlayGrant(42, "es"))
    assert first != second  # a fresh nonce each time: links are counted and bounded one by one
    assert signer.verify(first) == signer.verify(second) == OverlayGrant(42, "es")
    assert signer.verify(signer.issue(OverlayGrant(7, "auto"))) == OverlayGrant(7, "auto")
    assert signer.verify(signer.issue(OverlayGrant(7, "zh-Hans"))) == OverlayGrant(7, "zh-Hans")


def test_another_key_does_not_verify():
    token = TokenSigner(KEY).issue(OverlayGrant(42, "es"))
    assert TokenSigner(b"x" * 32).verify(token) is None


def _replace_payload(token: str, payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + token.split(".")[1]


def test_a_payload_changed_to_another_session_or_language_does_not_verify():
    signer = TokenSigner(KEY)
    token = signer.issue(OverlayGrant(42, "es"))
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert signer.verify(_replace_payload(token, payload.replace(b"42:", b"43:"))) is None
    assert signer.verify(_replace_payload(token, payload.replace(b":es:", b":fr:"))) is None


@given(position=st.integers(min_value=0), replacement=st.sampled_from("AbZ09_-"))
def test_any_single_character_changed_does_not_verify(position, replacement):
    signer = TokenSigner(KEY)
    token = signer.issue(OverlayGrant(42, "es"))
    index = position % len(token)
    if token[index] in (replacement, "."):
        return
    tampered = token[:index] + replacement + token[index + 1 :]
    assert signer.verify(tampered) is None


def test_every_other_last_character_does_not_verify():
    """The signature's last base64 character carries unused bits, which decoding ignores."""
    signer = TokenSigner(KEY)
    token = signer.issue(OverlayGrant(42, "es"))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = [token[:-1] + c for c in alphabet if c != token[-1]]
    assert [v for v in variants if signer.verify(v) is not None] == []


@pytest.mark.parametrize("token", ["", ".", "abc", "a.b.c", "a" * 500 + ".b", "é.x", "../etc/passwd", "YQ.YQ"])
def test_malformed_tokens_do_not_verify(token):
    assert TokenSigner(KEY).verify(token) is None


def test_a_short_key_and_an_unshowable_grant_are_refused():
    with pytest.raises(ValueError):
        TokenSigner(b"short")
    with pytest.raises(ValueError):
        TokenSigner(KEY).issue(OverlayGrant(1, "<script>"))
