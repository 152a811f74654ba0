"""Overlay link tokens: unguessable, HMAC-signed, scoped to one session and one language.

    token = base64url(payload) "." base64url(HMAC-SHA256(secret, DOMAIN + payload))
    payload = "<session id>:<language>:<random nonce>"

The nonce makes each link distinct (connections are bounded per link) and unguessable even to someone
who knows the session id. Expiry is not in the token: a token is honoured only while the feed of its
session exists (the session runs, or ended less than the grace ago), which `FeedHub` decides.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

DOMAIN = b"palabra-discord overlay v1\n"  # so this key's signatures mean nothing anywhere else
NONCE_BYTES = 12
MAX_TOKEN_CHARS = 200
_PAYLOAD = re.compile(r"(?P<session>[1-9][0-9]{0,18}):(?P<language>[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?|auto):[0-9a-f]+")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class OverlayGrant:
    """What a valid token allows: watching one language of one session."""

    session_id: int
    language: str


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the overlay secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def issue(self, grant: OverlayGrant) -> str:
        payload = f"{grant.session_id}:{grant.language}:{secrets.token_hex(NONCE_BYTES)}".encode()
        if not _PAYLOAD.fullmatch(payload.decode()):
            raise ValueError(f"not a session and language an overlay can show: {grant}")
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def verify(self, token: str) -> OverlayGrant | None:
        """The grant of a genuine token; None for anything else (malformed, tampered, another key's)."""
        if len(token) > MAX_TOKEN_CHARS or not _TOKEN_CHARS.fullmatch(token):
            return None
        encoded_payload, encoded_signature = token.split(".")
        payload, signature = _unb64(encoded_payload), _unb64(encoded_signature)
        if payload is None or signature is None or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        if _b64(payload) != encoded_payload or _b64(signature) != encoded_signature:
            return None  # base64 ignores a last character's unused bits: only the canonical spelling counts
        match = _PAYLOAD.fullmatch(payload.decode("ascii", errors="replace"))
        if match is None:
            return None
        return OverlayGrant(int(match["session"]), match["language"])

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, DOMAIN + payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
