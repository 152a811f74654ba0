"""Guild-scoped Palabra broadcasts: what `/broadcast` does, without Discord.

Ownership lives in our database (`bot.db.broadcasts`): with a shared Palabra account the API lists
every broadcast of the account, so each call first finds the guild's own row; another guild's
broadcast, like a missing one, is "not found". Palabra errors become `BroadcastError`s whose message is
written for the admin. Every stream key and token seen is registered for log redaction before anything
else happens with it.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.broadcasts.status import GONE, normalise_status, status_meaning
from bot.broadcasts.validation import BroadcastRequest, parse_update, read_pipeline
from bot.db import broadcasts as repo
from bot.db.errors import NotFound
from bot.db.models import Broadcast
from bot.errors import UserFacingError
from bot.logs import redact, register_secret
from bot.palabra.errors import (
    AuthenticationError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PalabraAPIError,
    PalabraError,
    RateLimitedError,
)
from bot.shards import ShardPlan

if TYPE_CHECKING:
    from bot.palabra.rest import PalabraRest
    from bot.services import Core

log = logging.getLogger(__name__)

MIN_REF = 4  # shortest id prefix accepted for a broadcast reference


# --- errors -----------------------------------------------------------------------------------------
class BroadcastError(UserFacingError):
    """A `/broadcast` action failed; `user_message` is what the admin is told."""


class BroadcastNotFound(BroadcastError):
    """No broadcast of this guild matches (another guild's looks exactly like this)."""


class BroadcastRejected(BroadcastError):
    """Palabra refused what we sent (validation)."""


class BroadcastUnavailable(BroadcastError):
    """Palabra is not configured, unreachable, out of balance or rejecting our credentials."""


# --- results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputView:
    protocol: str
    languages: tuple[str, ...]
    server: str | None = None
    urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BroadcastView:
    """A broadcast as shown in Discord: never a stream key or token."""

    id: str
    title: str
    status: str | None
    status_text: str
    source: str | None = None
    targets: tuple[str, ...] = ()
    input_protocol: str | None = None
    outputs: tuple[OutputView, ...] = ()
    mixing: dict[str, Any] = field(default_factory=dict)
    announce_channel_id: int | None = None
    creator_user_id: int | None = None
    live: bool = True  # False: Palabra's view was unavailable; status is the last one we saw


@dataclass(frozen=True)
class Ingest:
    """Where to publish the source stream; `stream_key` is a secret (ephemeral replies only)."""

    protocol: str
    server: str | None
    stream_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Created:
    broadcast: BroadcastView
    ingest: Ingest | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Updated:
    broadcast: BroadcastView
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListenInfo:
    """The WebRTC room to listen in; `token` is a secret (ephemeral replies only)."""

    url: str
    token: str = field(repr=False)
    room_name: str | None = None


@dataclass(frozen=True)
class StatusChange:
    guild_id: int
    broadcast_id: str
    title: str
    old: str | None
    new: str | None
    text: str
    announce_channel_id: int | None


# --- service ----------------------------------------------------------------------------------------
class BroadcastService:
    def __init__(self, core: Core) -> None:
        self.core = core

    # -- commands
    async def create(
        self, *, guild_id: int, user_id: int, request: BroadcastRequest, announce_channel_id: int | None = None
    ) -> Created:
        for key in request.stream_keys:
            register_secret(key)
        rest = self._rest()
        async with _palabra("create the broadcast"):
            data = await rest.create_broadcast(request.body())
        broadcast_id = str(data.get("id") or "")
        if not broadcast_id:
            raise BroadcastUnavailable("Palabra created the broadcast but sent no id; check the Palabra dashboard")
        try:
            async with self.core.database.session() as s:
                row = await repo.add_broadcast(
                    s,
                    guild_id=guild_id,
                    palabra_broadcast_id=broadcast_id,
                    creator_user_id=user_id,
                    title=request.title,
                    announce_channel_id=announce_channel_id,
                    status=normalise_status(data.get("status")),
                )
        except Exception:
            await self._forget_at_palabra(broadcast_id)
            raise
        log.info("guild %s created broadcast %s", guild_id, broadcast_id)
        return Created(view_of(data, row), ingest_of(data), request.warnings)

    async def list(self, guild_id: int) -> list[BroadcastView]:
        """This guild's broadcasts, newest first; last known statuses if Palabra cannot be asked."""
        async with self.core.database.session() as s:
            rows = await repo.list_broadcasts(s, guild_id)
        if not rows:
            return []
        try:
            async with _palabra("list broadcasts"):
                known = {str(b.get("id")): b for b in await self._rest().list_broadcasts()}
        except BroadcastUnavailable as exc:
            log.warning("broadcast list for guild %s without Palabra: %s", guild_id, exc)
            return [view_of_row(row) for row in rows]
        return [
            view_of(known[row.palabra_broadcast_id], row) if row.palabra_broadcast_id in known else gone_view(row)
            for row in rows
        ]

    async def show(self, guild_id: int, ref: str) -> tuple[BroadcastView, Ingest | None]:
        """The broadcast and its ingest (the ingest is for ephemeral replies only)."""
        row = await self._owned(guild_id, ref)
        data = await self._fetch(row)
        if data is None:
            return gone_view(row), None
        return view_of(data, row), ingest_of(data)

    async def update(self, guild_id: int, ref: str, **options: Any) -> Updated:
        """Options: title, targets, outputs, voices, delay_s, base_volume, ducked_volume, ignore_video."""
        row = await self._owned(guild_id, ref)
        current = await self._fetch(row)
        if current is None:
            raise BroadcastNotFound(
                f"broadcast {row.title!r} no longer exists at Palabra; /broadcast delete forgets it here"
            )
        patch = parse_update(current, **options)
        for key in patch.stream_keys:
            register_secret(key)
        async with _palabra("update the broadcast"):
            data = await self._rest().update_broadcast(row.palabra_broadcast_id, patch.body)
        async with self.core.database.session() as s:
            row = await repo.update_broadcast(
                s, guild_id, row.palabra_broadcast_id, title=patch.body.get("title", row.title)
            )
        return Updated(view_of(data, row), patch.warnings)

    async def delete(self, guild_id: int, ref: str) -> tuple[str, bool]:
        """Delete at Palabra and forget it; returns (title, whether it still existed at Palabra)."""
        row = await self._owned(guild_id, ref)
        existed = True
        try:
            async with _palabra("delete the broadcast"):
                await self._rest().delete_broadcast(row.palabra_broadcast_id)
        except BroadcastNotFound:
            existed = False
        async with self.core.database.session() as s:
            await repo.delete_broadcast(s, guild_id, row.palabra_broadcast_id)
        log.info("guild %s deleted broadcast %s", guild_id, row.palabra_broadcast_id)
        return row.title, existed

    async def listen(self, guild_id: int, ref: str) -> ListenInfo:
        row = await self._owned(guild_id, ref)
        async with _palabra("get a listening token"):
            data = await self._rest().broadcast_webrtc_token(row.palabra_broadcast_id)
        token, url = data.get("token"), data.get("url")
        if not isinstance(token, str) or not isinstance(url, str):
            raise BroadcastUnavailable("Palabra sent no WebRTC room URL and token for this broadcast")
        return ListenInfo(url, token, data.get("room_name"))

    async def set_announce_channel(self, guild_id: int, ref: str, channel_id: int | None) -> BroadcastView:
        row = await self._owned(guild_id, ref)
        async with self.core.database.session() as s:
            row = await repo.update_broadcast(s, guild_id, row.palabra_broadcast_id, announce_channel_id=channel_id)
        return view_of_row(row)

    async def choices(self, guild_id: int, typed: str = "") -> builtins.list[tuple[str, str]]:
        """(label, id) pairs of this guild's broadcasts matching `typed`, for autocomplete."""
        async with self.core.database.session() as s:
            rows = await repo.list_broadcasts(s, guild_id)
        typed = typed.strip().lower()
        return [
            (f"{row.title} ({row.palabra_broadcast_id[:8]})", row.palabra_broadcast_id)
            for row in rows
            if not typed or typed in row.title.lower() or row.palabra_broadcast_id.startswith(typed)
        ]

    # -- polling
    async def poll_statuses(self) -> builtins.list[StatusChange]:
        """One account-wide listing, compared with the last known statuses of this process's guilds (those
        of its shards: another process announces the others' changes, once); changes are saved."""
        shards = ShardPlan.of(self.core.settings)
        async with self.core.database.session() as s:
            rows = [
                row for row in await s.scalars(select(Broadcast).order_by(Broadcast.id)) if shards.serves(row.guild_id)
            ]
        if not rows:
            return []
        async with _palabra("list broadcasts"):
            known = {str(b.get("id")): b for b in await self._rest().list_broadcasts()}
        changes = []
        for row in rows:
            data = known.get(row.palabra_broadcast_id)
            new = normalise_status(data.get("status")) if data is not None else GONE
            if new == row.status:
                continue
            text = status_meaning(new, data.get("status_description") if data is not None else None)
            try:
                async with self.core.database.session() as s:
                    await repo.update_broadcast_status(s, row.guild_id, row.palabra_broadcast_id, new)
            except NotFound:
                continue  # deleted with /broadcast delete while this round ran
            changes.append(
                StatusChange(
                    row.guild_id, row.palabra_broadcast_id, row.title, row.status, new, text, row.announce_channel_id
                )
            )
        return changes

    # -- plumbing
    def _rest(self) -> PalabraRest:
        if self.core.palabra is None:
            raise BroadcastUnavailable(
                "broadcasts need Palabra credentials; ask the bot's operator to set "
                "PALABRA_CLIENT_ID/PALABRA_CLIENT_SECRET or PALABRA_API_KEY"
            )
        return self.core.palabra

    async def _owned(self, guild_id: int, ref: str) -> Broadcast:
        """The guild's broadcast by full id or a unique id prefix; NotFound otherwise."""
        ref = (ref or "").strip()
        async with self.core.database.session() as s:
            row = await repo.find_broadcast(s, guild_id, ref) if ref else None
            if row is None and len(ref) >= MIN_REF:
                matches = [r for r in await repo.list_broadcasts(s, guild_id) if r.palabra_broadcast_id.startswith(ref)]
                row = matches[0] if len(matches) == 1 else None
        if row is None:
            raise BroadcastNotFound(f"this server has no broadcast {ref[:64]!r}; /broadcast list shows its broadcasts")
        return row

    async def _fetch(self, row: Broadcast) -> dict[str, Any] | None:
        """Palabra's view of the broadcast, or None if Palabra no longer has it."""
        try:
            async with _palabra("read the broadcast"):
                data = await self._rest().get_broadcast(row.palabra_broadcast_id)
        except BroadcastNotFound:
            return None
        return data

    async def _forget_at_palabra(self, broadcast_id: str) -> None:
        """Undo a create whose ownership could not be recorded, so no broadcast is left without an owner."""
        try:
            await self._rest().delete_broadcast(broadcast_id)
        except PalabraError as exc:
            log.error(
                "broadcast %s exists at Palabra but not in our database (%s); delete it there",
                broadcast_id,
                type(exc).__name__,
            )


@contextlib.asynccontextmanager
async def _palabra(action: str) -> AsyncIterator[None]:
    """Palabra's exceptions -> messages for the admin (Palabra's own detail kept, redacted)."""
    try:
        yield
    except InvalidRequestError as exc:
        raise BroadcastRejected(f"Palabra refused to {action}: {_detail(exc)}") from None
    except NotFoundError:
        raise BroadcastNotFound("Palabra has no such broadcast (it may have been deleted outside Discord)") from None
    except AuthenticationError:
        log.error("Palabra rejected the bot's credentials while trying to %s", action)
        raise BroadcastUnavailable("Palabra rejected the bot's credentials; ask the bot's operator") from None
    except InsufficientBalanceError:
        raise BroadcastUnavailable(
            "the Palabra account is out of balance or at its limit; ask the bot's operator"
        ) from None
    except RateLimitedError as exc:
        wait = f" in {exc.retry_after:.0f} s" if exc.retry_after else " in a minute"
        raise BroadcastUnavailable(f"Palabra is busy (rate limited); try again{wait}") from None
    except PalabraError as exc:
        log.warning("Palabra failed to %s: %s", action, exc)
        raise BroadcastUnavailable(
            f"Palabra could not {action} right now ({type(exc).__name__}); try again in a minute"
        ) from None


def _detail(exc: PalabraError) -> str:
    errors = exc.errors if isinstance(exc, PalabraAPIError) else []
    details = [e.get("detail") or e.get("title") for e in errors if isinstance(e, dict)]
    text = "; ".join(d for d in details if isinstance(d, str)) or str(exc)
    return redact(text)[:500]


# --- views ------------------------------------------------------------------------------------------
def ingest_of(data: dict[str, Any]) -> Ingest | None:
    spec = data.get("input")
    if not isinstance(spec, dict):
        return None
    return Ingest(
        str(spec.get("protocol") or "?"),
        spec.get("server") or spec.get("url"),
        spec.get("stream_key") or spec.get("token"),
    )


def view_of(data: dict[str, Any], row: Broadcast) -> BroadcastView:
    source, targets, _ = read_pipeline(data)
    status = normalise_status(data.get("status"))
    spec = given if isinstance(given := data.get("input"), dict) else {}
    mixing: dict[str, Any] = {
        k: data[k]
        for k in ("original_delay_seconds", "original_base_volume", "original_ducked_volume", "ignore_video")
        if k in data
    }
    return BroadcastView(
        id=row.palabra_broadcast_id,
        title=str(data.get("title") or row.title),
        status=status,
        status_text=status_meaning(status, data.get("status_description")),
        source=source,
        targets=targets,
        input_protocol=spec.get("protocol"),
        outputs=tuple(_output_view(o) for o in data.get("outputs") or [] if isinstance(o, dict)),
        mixing=mixing,
        announce_channel_id=row.announce_channel_id,
        creator_user_id=row.creator_user_id,
    )


def view_of_row(row: Broadcast) -> BroadcastView:
    return BroadcastView(
        id=row.palabra_broadcast_id,
        title=row.title,
        status=row.status,
        status_text=status_meaning(row.status),
        announce_channel_id=row.announce_channel_id,
        creator_user_id=row.creator_user_id,
        live=False,
    )


def gone_view(row: Broadcast) -> BroadcastView:
    return BroadcastView(
        id=row.palabra_broadcast_id,
        title=row.title,
        status=GONE,
        status_text=status_meaning(GONE),
        announce_channel_id=row.announce_channel_id,
        creator_user_id=row.creator_user_id,
    )


def _output_view(output: dict[str, Any]) -> OutputView:
    languages = output.get("lang_codes") or ([output["lang_code"]] if output.get("lang_code") else [])
    urls = given if isinstance(given := output.get("urls"), dict) else {}
    server = output.get("server") if output.get("protocol") != "hls_pull" else None
    return OutputView(
        str(output.get("protocol")),
        tuple(str(code) for code in languages),
        redact(server) if isinstance(server, str) else None,
        {str(k): str(v) for k, v in urls.items()},
    )
