"""Where each target language is heard, how that follows the speaker bots, and the consent notice.

A language with a sibling voice channel and a free speaker bot plays there. Of the others, the first
plays into the source channel through the listener itself ("same-channel mode": one bot account can
play only one stream per guild) and the rest are text only; each placement says why.

Placements follow speaker-bot availability for the whole session (decided here, sans-I/O; the
interpretation layer carries it out): a language out of its sibling channel moves there when a speaker
becomes ready or is freed (`upgradable`); a speaker that is disconnected, kicked or moved is given a
moment (discord.py's own reconnects), then rejoins, and after repeated losses its language falls back
(`SpeakerWatch`). Each change is told in one short line (`*_line`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from bot.interpretation.reports import Placement

LOST_GRACE_S = 1.0  # kicked or moved: out of its channel for this long, it rejoins
# Still in its channel but disconnected: discord.py's own resume or reconnect goes first (a resume that
# stalls becomes a fresh connection after 2 s, bot.voice.adapter); a rejoin is the backstop.
RECONNECT_GRACE_S = 5.0
MAX_REJOINS = 3  # within REJOIN_WINDOW_S; one more loss and the language falls back
REJOIN_WINDOW_S = 60.0


def fallback_placements(
    unplaced: Sequence[tuple[str, str]], source_channel_id: int, same_channel_allowed: bool = True
) -> dict[str, Placement]:
    """Placements for languages that got no speaker: (language, why) in target order."""
    placements: dict[str, Placement] = {}
    same_channel_taken = not same_channel_allowed
    for language, why in unplaced:
        if not same_channel_taken:
            same_channel_taken = True
            placements[language] = Placement(
                language, "same_channel", source_channel_id, f"{why}; playing it in this voice channel instead"
            )
        else:
            placements[language] = Placement(
                language, "text_only", None, f"{why}; text only (just one language can play in this channel)"
            )
    return placements


def upgradable(
    placements: Mapping[str, Placement], siblings: Mapping[str, int], source_channel_id: int
) -> list[tuple[str, int]]:
    """(language, sibling channel) for languages not playing in their sibling channel that have one, in
    placement (target) order: those to move when a speaker bot becomes available."""
    return [
        (language, siblings[language])
        for language, placement in placements.items()
        if placement.kind != "sibling" and siblings.get(language) not in (None, source_channel_id)
    ]


def refill_same_channel(placements: Mapping[str, Placement], source_channel_id: int) -> Placement | None:
    """When the source channel's one playback slot is free again, the first text-only language takes it."""
    if any(p.kind == "same_channel" for p in placements.values()):
        return None
    for language, placement in placements.items():
        if placement.kind == "text_only":
            return Placement(
                language, "same_channel", source_channel_id, "no speaker bot is free; playing it in this voice channel"
            )
    return None


class Verdict(Enum):
    OK = "ok"  # where it should be
    WAIT = "wait"  # lost for less than the grace: discord.py may still be reconnecting
    REJOIN = "rejoin"
    FALL_BACK = "fall_back"  # lost again and again: give the language another placement


@dataclass
class _Watched:
    lost_since: float | None = None
    rejoins: list[float] = field(default_factory=list)


class SpeakerWatch:
    """Decides, from where each language's speaker bot is and when, whether it needs to rejoin."""

    def __init__(
        self,
        grace_s: float = LOST_GRACE_S,
        max_rejoins: int = MAX_REJOINS,
        window_s: float = REJOIN_WINDOW_S,
        reconnect_grace_s: float = RECONNECT_GRACE_S,
    ) -> None:
        self.grace_s, self.max_rejoins, self.window_s = grace_s, max_rejoins, window_s
        self.reconnect_grace_s = reconnect_grace_s
        self._watched: dict[str, _Watched] = {}

    def observe(
        self,
        language: str,
        expected_channel: int,
        actual_channel: int | None,
        now: float,
        *,
        reconnecting: bool = False,
    ) -> Verdict:
        """`actual_channel`: where the speaker is connected (None: nowhere); `reconnecting`: not connected
        but still in `expected_channel` by its voice state (discord.py is resuming or reconnecting)."""
        watched = self._watched.setdefault(language, _Watched())
        if actual_channel == expected_channel:
            watched.lost_since = None
            return Verdict.OK
        if watched.lost_since is None:
            watched.lost_since = now
        if now - watched.lost_since < (self.reconnect_grace_s if reconnecting else self.grace_s):
            return Verdict.WAIT
        watched.rejoins = [t for t in watched.rejoins if now - t < self.window_s]
        return Verdict.REJOIN if len(watched.rejoins) < self.max_rejoins else Verdict.FALL_BACK

    def rejoined(self, language: str, now: float) -> None:
        watched = self._watched.setdefault(language, _Watched())
        watched.rejoins.append(now)
        watched.lost_since = None

    def forget(self, language: str) -> None:
        self._watched.pop(language, None)


def lost_why(actual_channel: int | None) -> str:
    return "was disconnected" if actual_channel is None else f"was moved to <#{actual_channel}>"


def rejoined_line(language: str, channel_id: int, why: str) -> str:
    return f"🔁 The **{language}** speaker bot {why}; it is back in <#{channel_id}>."


def fell_back_line(language: str, channel_id: int, why: str, placement: Placement) -> str:
    where = _now(placement)
    return f"⚠️ The **{language}** speaker bot {why} and could not stay in <#{channel_id}>; {language} {where}."


def moved_line(language: str, placement: Placement) -> str:
    return f"🔊 A speaker bot is free: **{language}** {_now(placement)}."


def _now(placement: Placement) -> str:
    if placement.kind == "sibling":
        return f"now plays in <#{placement.channel_id}>"
    if placement.kind == "same_channel":
        return "now plays in this voice channel"
    return "is text only now"


def consent_notice(*, targets: Sequence[str], transcript_channel_id: int, retention_days: int, started_by: str) -> str:
    languages = ", ".join(targets)
    kept = f"kept for {retention_days} days" if retention_days else "not kept after the session"
    return (
        "🔴 **Live interpretation is on in this channel** (started by " + started_by + ").\n"
        f"What is said here is sent to Palabra (palabra.ai) for speech recognition and translation into "
        f"{languages}; the translated speech is played in the language channels and the transcript, with "
        f"speakers' names, is posted in <#{transcript_channel_id}> and {kept}.\n"
        "Don't want your voice processed? Use `/privacy optout`: your audio is then dropped inside the bot "
        "and never sent anywhere. `/privacy delete` removes your stored transcript lines."
    )
