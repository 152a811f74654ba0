"""Where each target language is heard, and the consent notice.

A language with a sibling voice channel and a free speaker bot plays there. Of the others, the first
plays into the source channel through the listener itself ("same-channel mode": one bot account can
play only one stream per guild) and the rest are text only; each placement says why.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.interpretation.reports import Placement


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
