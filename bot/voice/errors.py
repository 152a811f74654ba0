"""The voice layer's exception root: every voice failure the project raises is a `VoiceError`."""

from __future__ import annotations

from bot.errors import BotError


class VoiceError(BotError):
    """Base of the voice layer's errors (RTP, transport encryption, DAVE, speaker bots)."""


class VoiceGatewayError(VoiceError):
    """A voice-gateway message that does not have the shape the protocol gives it."""
