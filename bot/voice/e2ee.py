"""The DAVE (end-to-end encryption) stage of the receive path, per sender.

Sans-I/O: `DaveStage.open(user_id, frame, session, protocol_version)` returns the Opus frame or raises
`DaveError` with a reason. The session is passed in on every call because it is created at
SESSION_DESCRIPTION and re-initialised in place after transitions: callers read it fresh per packet.
"""

from __future__ import annotations

import davey

from bot.voice.errors import VoiceError

SILENCE_FRAME = b"\xf8\xff\xfe"
_MARKER = b"\xfa\xfa"
AUDIO = davey.MediaType.audio

# Reasons (stable strings; they end up in counters and events).
NOT_READY = "session_not_ready"
UNENCRYPTED = "unencrypted_frame"
NO_DECRYPTOR = "no_decryptor_for_user"
NO_CRYPTOR = "no_valid_cryptor"
OTHER = "decrypt_failed"


class DaveError(VoiceError, ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


def looks_encrypted(frame: bytes) -> bool:
    """A DAVE frame ends in the 0xFAFA marker after at least tag, nonce and supplemental size."""
    return len(frame) >= 11 and frame[-2:] == _MARKER


def classify(error: Exception) -> str:
    """davey raises ValueError("Failed to decrypt: <Rust enum>"): map it to one of our reasons."""
    text = str(error)
    if "UnencryptedWhenPassthroughDisabled" in text:
        return UNENCRYPTED
    if "NoDecryptorForUser" in text:
        return NO_DECRYPTOR
    if "NoValidCryptorFound" in text:
        return NO_CRYPTOR
    return OTHER


def open_frame(user_id: int, frame: bytes, session: davey.DaveSession | None, protocol_version: int) -> bytes:
    """The sender's Opus frame, E2EE removed; raises DaveError when it cannot be had."""
    if frame == SILENCE_FRAME:
        return frame  # the SFU may synthesise silence; it is never encrypted
    if session is None or protocol_version == 0:
        # Transport-only call (or a downgrade): frames are plain, except stragglers still encrypted
        # from before the transition, which the session may still open with its retained keys.
        if not looks_encrypted(frame):
            return frame
        if session is None or not session.ready:
            raise DaveError(NOT_READY, "encrypted frame but no DAVE session")
        try:
            return session.decrypt(user_id, AUDIO, frame)
        except ValueError:
            return frame  # a plain Opus frame that happens to end in FA FA
    if not session.ready:
        raise DaveError(NOT_READY, "DAVE session is still being set up")
    try:
        return session.decrypt(user_id, AUDIO, frame)
    except ValueError as exc:
        raise DaveError(classify(exc), str(exc)) from None


def group_members(session: davey.DaveSession | None, own_user_id: int | None) -> list[int]:
    """User ids of the other members of the MLS group (candidates for an unmapped SSRC)."""
    if session is None or not session.ready:
        return []
    members = []
    for text in session.get_user_ids():
        try:
            member = int(text)
        except ValueError:
            continue
        if member != own_user_id:
            members.append(member)
    return members
