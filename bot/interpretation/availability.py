"""Sessions follow speaker-bot availability: one `SpeakerKeeper` per running session.

Every `CHECK_INTERVAL_S`, and at once when the pool says a speaker became ready or was freed, the
keeper checks each language's placement (decisions in `placement`, sans-I/O):
- a language playing through a speaker bot whose speaker is no longer in its channel (disconnected,
  kicked, moved) is rejoined; when rejoining fails or keeps being undone, it falls back to the source
  channel (if that slot is free) or text only;
- a language out of its sibling channel moves there when a speaker is free; if it was the one playing in
  the source channel, the first text-only language takes that slot.
Each change is told in the transcript channel in one short line. The session's own parts (leases,
playback sources, the listener's voice connection) are changed through a `PlacementHost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import discord

from bot.interpretation.placement import (
    SpeakerWatch,
    Verdict,
    fell_back_line,
    lost_why,
    moved_line,
    refill_same_channel,
    rejoined_line,
    upgradable,
)
from bot.interpretation.reports import Placement
from bot.tasks import cancel_and_wait
from bot.voice.playback import OPUS_SETTINGS, TranslationSource, ensure_discord_opus
from bot.voice.speakers import Lease, SpeakerPool

if TYPE_CHECKING:
    from bot.db.models import GuildSettings
    from bot.interpretation.leasing import SpeakerLeases, SpeakerSlot
    from bot.interpretation.running import RunningSession

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.25
REJOIN_TIMEOUT_S = 5.0
UPGRADE_COOLDOWN_S = 60.0  # a language that fell back is not moved again at once (it would loop)
UPGRADE_RETRY_S = 5.0  # a move that failed (the speaker is leased by another process) is retried this often


class PlacementHost(Protocol):
    """What a keeper changes in its session."""

    @property
    def guild_id(self) -> int: ...
    @property
    def source_channel_id(self) -> int: ...
    @property
    def placements(self) -> dict[str, Placement]: ...
    def sibling_channels(self) -> Mapping[str, int]: ...
    def speaker_lease(self, language: str) -> Lease | None:
        """The pool lease playing `language` (None if it has none)."""

    async def place_in_sibling(self, language: str, channel_id: int) -> bool:
        """Lease a speaker and play `language` in `channel_id`; True if it plays there now."""

    async def release_speaker(self, language: str) -> None:
        """Give `language`'s speaker back (the pool and the database); its audio stops."""

    async def place_fallback(self, placement: Placement) -> None:
        """Play `placement.language` in the source channel (same_channel) or nowhere (text_only)."""

    async def notify(self, text: str) -> None:
        """One line in the transcript channel."""


class SpeakerKeeper:
    def __init__(
        self,
        host: PlacementHost,
        pool: SpeakerPool,
        *,
        watch: SpeakerWatch | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.host, self.pool, self.watch, self.clock = host, pool, watch or SpeakerWatch(), clock
        self.interval_s = interval_s
        self._fell_back_at: dict[str, float] = {}
        self._retry_at: dict[str, float] = {}  # language -> when a failed move may be tried again
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.rejoins = self.fallbacks = self.upgrades = 0

    def start(self) -> None:
        if self._task is None:
            self._unsubscribe = self.pool.on_available(self._on_available)
            self._task = asyncio.create_task(self._run(), name="speaker-keeper")

    def _on_available(self) -> None:
        self._retry_at.clear()  # a speaker became ready or was freed: try the moves again now
        self._wake.set()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("checking the speaker bots of a session failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    async def check(self) -> None:
        """Watch the speakers in use, then move languages to free speakers."""
        for language, placement in list(self.host.placements.items()):
            if placement.kind == "sibling" and placement.channel_id is not None:
                await self._watch(language, placement.channel_id)
        await self._upgrade()

    async def _watch(self, language: str, channel_id: int) -> None:
        lease = self.host.speaker_lease(language)
        where = lease.where() if lease is not None else None
        reconnecting = lease is not None and where is None and lease.placed_in() == channel_id
        now = self.clock()
        verdict = self.watch.observe(language, channel_id, where, now, reconnecting=reconnecting)
        if verdict in (Verdict.OK, Verdict.WAIT):
            return
        placed = where if where is not None else (lease.placed_in() if lease is not None else None)
        why = "lost its voice connection" if placed == channel_id else lost_why(placed)
        log.warning("the %s speaker bot %s (expected in channel %s)", language, why, channel_id)
        if verdict is Verdict.REJOIN and lease is not None and await self._rejoin(lease):
            self.watch.rejoined(language, self.clock())
            self.rejoins += 1
            await self.host.notify(rejoined_line(language, channel_id, why))
            return
        await self._fall_back(language, channel_id, why)

    async def _rejoin(self, lease: Lease) -> bool:
        try:
            await asyncio.wait_for(lease.rejoin(), REJOIN_TIMEOUT_S)
        except Exception as exc:  # SpeakerError, discord errors, timeouts
            log.warning("the %s speaker bot could not rejoin: %s", lease.language, exc)
            return False
        return lease.healthy

    async def _fall_back(self, language: str, channel_id: int, why: str) -> None:
        await self.host.release_speaker(language)
        self.watch.forget(language)
        self._fell_back_at[language] = self.clock()
        others = {lang: p for lang, p in self.host.placements.items() if lang != language}
        if any(p.kind == "same_channel" for p in others.values()):
            placement = Placement(language, "text_only", None, f"its speaker bot {why}; text only")
        else:
            placement = Placement(
                language, "same_channel", self.host.source_channel_id, f"its speaker bot {why}; playing it here"
            )
        await self.host.place_fallback(placement)
        self.fallbacks += 1
        await self.host.notify(fell_back_line(language, channel_id, why, placement))

    async def _upgrade(self) -> None:
        now = self.clock()
        candidates = [
            (language, channel_id)
            for language, channel_id in upgradable(
                self.host.placements, self.host.sibling_channels(), self.host.source_channel_id
            )
            if now - self._fell_back_at.get(language, -UPGRADE_COOLDOWN_S) >= UPGRADE_COOLDOWN_S
            and now >= self._retry_at.get(language, now)
        ]
        slot_freed = False
        for language, channel_id in candidates:
            if not self.pool.available(self.host.guild_id):
                break
            was = self.host.placements[language]
            if not await self.host.place_in_sibling(language, channel_id):
                self._retry_at[language] = now + UPGRADE_RETRY_S
                continue
            self.upgrades += 1
            slot_freed = slot_freed or was.kind == "same_channel"
            await self.host.notify(moved_line(language, self.host.placements[language]))
        refill = refill_same_channel(self.host.placements, self.host.source_channel_id) if slot_freed else None
        if refill is not None:  # after the moves, so a language that got a speaker is not placed twice
            await self.host.place_fallback(refill)
            await self.host.notify(moved_line(refill.language, refill))


class SessionPlacements:
    """The `PlacementHost` of a running session: its leases, playback sources and listener voice."""

    def __init__(self, running: RunningSession, leases: SpeakerLeases, prefs: GuildSettings) -> None:
        self.running, self.leases = running, leases
        self._siblings = dict(prefs.sibling_channels)
        self._floor = (
            (min(1.0, prefs.floor_volume_base), min(1.0, prefs.floor_volume_ducked))
            if prefs.floor_audio_enabled
            else None
        )

    @property
    def guild_id(self) -> int:
        return self.running.guild.id

    @property
    def source_channel_id(self) -> int:
        return self.running.channel.id

    @property
    def placements(self) -> dict[str, Placement]:
        return self.running.placements

    def sibling_channels(self) -> Mapping[str, int]:
        return self._siblings

    def _slot(self, language: str) -> SpeakerSlot | None:
        return next((slot for slot in self.running.slots if slot.language == language), None)

    def speaker_lease(self, language: str) -> Lease | None:
        slot = self._slot(language)
        return slot.lease if slot is not None else None

    async def place_in_sibling(self, language: str, channel_id: int) -> bool:
        floor_base, floor_ducked = self._floor or (0.0, 0.0)
        source = TranslationSource(floor_base_volume=floor_base, floor_ducked_volume=floor_ducked)
        slot = await self.leases.acquire(
            guild_id=self.guild_id,
            channel_id=channel_id,
            language=language,
            session_id=self.running.session_id,
            source=source,
        )
        if isinstance(slot, str):
            log.info("session %s: %s stays where it is: %s", self.running.session_id, language, slot)
            return False
        self._stop_playback(language)
        self.running.slots.append(slot)
        self.running.live.parts.playbacks[language] = source
        if self._floor is not None:
            self.running.live.parts.floor_playbacks.append(source)
        self.running.placements[language] = Placement(language, "sibling", channel_id, None)
        return True

    async def release_speaker(self, language: str) -> None:
        slot = self._slot(language)
        self._stop_playback(language)
        if slot is not None:
            self.running.slots.remove(slot)
            await self.leases.release(slot)

    async def place_fallback(self, placement: Placement) -> None:
        language = placement.language
        self._stop_playback(language)
        vc = self.running.live.parts.voice_client
        if placement.kind == "same_channel" and not isinstance(vc, discord.VoiceClient):
            placement = Placement(language, "text_only", None, placement.reason)  # nothing to play it through
        if placement.kind == "same_channel" and isinstance(vc, discord.VoiceClient):
            ensure_discord_opus()
            source = TranslationSource()
            if vc.is_playing():
                vc.stop()
            vc.play(source, **OPUS_SETTINGS)
            self.running.live.parts.playbacks[language] = source
        self.running.placements[language] = placement

    def _stop_playback(self, language: str) -> None:
        """`language`'s translated audio goes nowhere until it is placed again."""
        parts = self.running.live.parts
        source = parts.playbacks.pop(language, None)
        if source in parts.floor_playbacks:
            parts.floor_playbacks.remove(source)
        if self.running.placements.get(language, Placement(language, "text_only", None)).kind == "same_channel":
            parts.voice_client.stop()  # the listener's one playback slot is free again

    async def notify(self, text: str) -> None:
        try:
            await self.running.transcript_channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("session %s: could not post %r: %s", self.running.session_id, text, exc)
