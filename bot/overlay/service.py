"""What `/interpret overlay` calls: which session, which language, and the signed link to its page."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.db import sessions as db_sessions
from bot.interpretation.errors import InterpretationError, NoActiveSession
from bot.overlay.feed import FeedHub
from bot.overlay.secret import overlay_secret
from bot.overlay.tokens import OverlayGrant, TokenSigner
from bot.overlay.web import OverlayWeb, StreamLimits

if TYPE_CHECKING:
    from bot.db.engine import Database
    from bot.interpretation.running import RunningSession
    from bot.settings import Settings


class OverlayUnavailable(InterpretationError):
    default_message = (
        "The caption overlay is off on this bot: it needs the bot's HTTP server (HTTP_PORT set to a port); "
        "ask its operator."
    )


class UnknownOverlayLanguage(InterpretationError):
    pass


@dataclass(frozen=True)
class OverlayLink:
    url: str
    language: str
    is_source: bool
    grace_s: float


class OverlayService:
    def __init__(
        self,
        hub: FeedHub,
        signer: TokenSigner,
        database: Database,
        sessions: Callable[[], Iterable[RunningSession]],
        base_url: Callable[[], str | None],
    ) -> None:
        self.hub, self.signer, self.database = hub, signer, database
        self._sessions, self._base_url = sessions, base_url

    def session_for(self, guild_id: int, voice_channel_id: int | None) -> RunningSession:
        """The caller's session: the one in their voice channel, else the server's only one."""
        in_guild = [r for r in self._sessions() if r.guild.id == guild_id]
        for running in in_guild:
            if running.channel.id == voice_channel_id:
                return running
        if len(in_guild) == 1:
            return in_guild[0]
        if not in_guild:
            raise NoActiveSession("No interpretation is running in this server. Start one with `/interpret start`.")
        raise NoActiveSession(
            "Several sessions are running in this server; join the voice channel of the one you want captions of "
            "and run the command again."
        )

    async def started_by(self, session_id: int) -> int | None:
        async with self.database.session() as s:
            row = await db_sessions.get_session(s, session_id)
        return row.started_by_user_id if row is not None else None

    def follow(self, session_id: int) -> bool:
        """A link to a session that crashed follows the session this process resumed it as (the same
        channel, languages and signing key): True once the hub shows that session under the old id."""
        for running in self._sessions():
            if session_id in running.continues:
                self._watch(running)
                self.hub.alias(session_id, running.session_id)
                return True
        return False

    def _watch(self, running: RunningSession) -> None:
        self.hub.watch(running.session_id, running.source, running.targets)
        running.live.subscribe(self.hub)

    def link(self, running: RunningSession, language: str | None) -> OverlayLink:
        base = self._base_url()
        if base is None:
            raise OverlayUnavailable()
        chosen = self.language_of(running, language)
        self._watch(running)
        token = self.signer.issue(OverlayGrant(running.session_id, chosen))
        return OverlayLink(f"{base}/overlay/{token}", chosen, chosen == running.source, self.hub.grace_s)

    @staticmethod
    def language_of(running: RunningSession, language: str | None) -> str:
        if language is None or not language.strip():
            return running.source
        code = language.strip().lower()
        if code in ("source", running.source.lower()):
            return running.source
        for target in running.targets:
            if target.lower() == code:
                return target
        offered = ", ".join(f"`{c}`" for c in [running.source, *running.targets])
        raise UnknownOverlayLanguage(
            f"This session has no `{language.strip()}` captions; choose one of {offered} "
            "(the source language or a target language)."
        )


@dataclass(frozen=True)
class Overlay:
    """The overlay as the app wires it: the service for the command, the routes for the HTTP server."""

    service: OverlayService
    web: OverlayWeb


async def build_overlay(
    settings: Settings,
    database: Database,
    sessions: Callable[[], Iterable[RunningSession]],
    bound_port: Callable[[], int | None],
    limits: StreamLimits | None = None,
    resuming: Callable[[int], bool] | None = None,
) -> Overlay:
    """Links point at PUBLIC_URL, else at this machine's loopback on the port the server bound.
    `resuming(session_id)`: True while this process is still to resume that crashed session."""

    def base_url() -> str | None:
        port = bound_port()
        if not port:
            return None
        return settings.public_url or f"http://127.0.0.1:{port}"

    hub = FeedHub(running=lambda: [r.session_id for r in sessions()])
    signer = TokenSigner(await overlay_secret(settings, database))
    service = OverlayService(hub, signer, database, sessions, base_url)
    return Overlay(service, OverlayWeb(hub, signer, limits, follow=service.follow, resuming=resuming))
