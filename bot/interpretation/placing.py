"""Placing the target languages of a starting session: a speaker bot in each language's sibling channel
where one is free (see `leasing`), then the fallbacks of `placement` (the source channel for one
language, text only for the rest), each with its reason."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.interpretation.leasing import SpeakerLeases, SpeakerSlot
from bot.interpretation.placement import fallback_placements
from bot.interpretation.reports import Placement
from bot.voice import playback
from bot.voice.playback import TranslationSource, ensure_discord_opus

if TYPE_CHECKING:
    import discord

    from bot.interpretation.running import StartPlan

log = logging.getLogger(__name__)

SPEAKER_WAIT_S = 15.0  # within a deferred reply's patience; those that come later still take over


@dataclass
class Placed:
    placements: dict[str, Placement]  # in target order
    playbacks: dict[str, TranslationSource] = field(default_factory=dict)
    floor_playbacks: list[TranslationSource] = field(default_factory=list)
    slots: list[SpeakerSlot] = field(default_factory=list)


async def place_targets(
    plan: StartPlan, listener_voice: discord.VoiceClient, leases: SpeakerLeases, undo: AsyncExitStack
) -> Placed:
    """Place every target; each speaker taken is released by `undo` unless the start completes."""
    prefs = plan.prefs
    siblings = prefs.sibling_channels
    floor_base, floor_ducked = (
        (min(1.0, prefs.floor_volume_base), min(1.0, prefs.floor_volume_ducked))
        if prefs.floor_audio_enabled
        else (0.0, 0.0)
    )
    placed = Placed({})
    unplaced: list[tuple[str, str]] = []
    if leases.pool.connecting and any(siblings.get(t) not in (None, plan.voice_channel.id) for t in plan.targets):
        # Speaker bots log in together with the listener: a start in the first seconds waits for them.
        waited = await leases.pool.wait_settled(SPEAKER_WAIT_S)
        log.info(
            "session %s: %s for the speaker bots to log in", plan.session_id, "waited" if waited else "gave up waiting"
        )
    for language in plan.targets:
        channel_id = siblings.get(language)
        if channel_id is None:
            unplaced.append((language, f"no voice channel is set for {language} (/setup channel)"))
            continue
        if channel_id == plan.voice_channel.id:
            unplaced.append((language, "its channel is this source channel"))
            continue
        source = TranslationSource(floor_base_volume=floor_base, floor_ducked_volume=floor_ducked)
        slot = await leases.acquire(
            guild_id=plan.guild.id,
            channel_id=channel_id,
            language=language,
            session_id=plan.session_id,
            source=source,
        )
        if isinstance(slot, str):
            unplaced.append((language, slot))
            continue
        undo.push_async_callback(leases.release, slot)
        placed.slots.append(slot)
        placed.playbacks[language] = source
        if prefs.floor_audio_enabled:
            placed.floor_playbacks.append(source)
        placed.placements[language] = Placement(language, "sibling", channel_id, None)
    fallbacks = fallback_placements(unplaced, plan.voice_channel.id)
    for language, placement in fallbacks.items():
        if placement.kind == "same_channel":
            ensure_discord_opus()
            source = TranslationSource()
            await playback.play(listener_voice, source)  # the shared clock: no encoding of silence
            placed.playbacks[language] = source
    placed.placements.update(fallbacks)
    placed.placements = {language: placed.placements[language] for language in plan.targets}
    return placed
