"""The voice subtree of the project's exceptions: everything bot.voice raises on purpose.

`VoiceError` is the root; it lives here (not in bot/errors.py) so the voice modules stay importable on
their own, and it derives from `bot.errors.BotError` so callers can catch either.
"""

from __future__ import annotations

from bot.errors import BotError


class VoiceError(BotError):
    """Base for errors of Discord voice: RTP, transport encryption, DAVE, the voice gateway."""


class RtpError(VoiceError):
    """A datagram that is not a usable RTP packet; the message says why."""


class VoiceTransportError(VoiceError):
    """A packet that does not decrypt (wrong key, tampered, truncated) or an unsupported mode."""


class DaveError(VoiceError):
    """A frame the DAVE (end-to-end encryption) stage cannot open; `reason` is a stable string."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class VoiceGatewayError(VoiceError):
    """A voice-gateway message that does not have the shape the protocol gives it."""
