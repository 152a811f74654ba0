"""Guild channels over REST (`/guilds/{guild}/channels`) and the permission checks Discord makes
before acting (403 Missing Permissions, code 50013), computed from roles and channel overwrites."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakes.discord.model import CATEGORY, MANAGE_CHANNELS, TEXT, VOICE, Account, Channel, Guild, Overwrite

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord


def _error(status: int, message: str, code: int) -> Exception:
    from tests.fakes.discord.rest import http_error

    return http_error(status, message, code)


def _json(data: object, status: int = 200) -> web.Response:
    from tests.fakes.discord.rest import json_response

    return json_response(data, status)


def require_permissions(fake: FakeDiscord, account: Account, channel_id: int, needed: int) -> None:
    """Raise 403 Missing Permissions unless `account` has every bit of `needed` in the channel (an
    unknown channel passes: the handler answers 404 for it)."""
    guild = fake.guild_of_channel(channel_id)
    if guild is None or account.id not in guild.members:
        return
    if guild.channel_permissions_of(account, guild.channels[channel_id]) & needed != needed:
        raise _error(403, "Missing Permissions", 50013)


class GuildChannels:
    """List and create a guild's channels; what was created is kept in `created` for tests."""

    def __init__(self, fake: FakeDiscord, caller: Callable[[web.Request], Account]) -> None:
        self.fake = fake
        self._caller = caller
        self.created: list[Channel] = []

    def routes(self, app: web.Application, api: str) -> None:
        app.router.add_get(api + "/guilds/{guild}/channels", self.list_channels)
        app.router.add_post(api + "/guilds/{guild}/channels", self.create_channel)

    def _guild(self, request: web.Request, account: Account) -> Guild:
        guild = next((g for g in self.fake.guilds if g.id == int(request.match_info["guild"])), None)
        if guild is None or account.id not in guild.members:
            raise _error(404, "Unknown Guild", 10004)
        return guild

    async def list_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(request, self._caller(request))
        return _json([c.payload(guild.id) for c in guild.channels.values()])

    async def create_channel(self, request: web.Request) -> web.Response:
        """Manage Channels in the parent category (or the server) is needed; a channel created in a
        category without overwrites of its own gets the category's (it is synced with it)."""
        account = self._caller(request)
        guild = self._guild(request, account)
        payload = await request.json()
        kind, name = int(payload.get("type", TEXT)), str(payload.get("name") or "").strip()
        parent = guild.channels.get(int(payload["parent_id"])) if payload.get("parent_id") else None
        if kind not in (TEXT, VOICE, CATEGORY) or not 1 <= len(name) <= 100:
            raise _error(400, "Invalid Form Body", 50035)
        if payload.get("parent_id") and (parent is None or parent.type != CATEGORY):
            raise _error(400, "Invalid Form Body", 50035)
        granted = guild.channel_permissions_of(account, parent) if parent else guild.permissions_of(account)
        if not granted & MANAGE_CHANNELS:
            raise _error(403, "Missing Permissions", 50013)
        channel = guild.add_channel(name, kind, parent.id if parent else None)
        channel.overwrites = _overwrites(payload.get("permission_overwrites"), parent)
        self.created.append(channel)
        data = channel.payload(guild.id)
        await self.fake.gateway.broadcast("CHANNEL_CREATE", data)
        return _json(data, 201)


def _overwrites(given: list | None, parent: Channel | None) -> dict[int, Overwrite]:
    if not given:
        inherited = parent.overwrites.values() if parent else []
        return {o.id: Overwrite(o.id, o.type, o.allow, o.deny) for o in inherited}
    return {
        int(o["id"]): Overwrite(int(o["id"]), int(o["type"]), int(o.get("allow") or 0), int(o.get("deny") or 0))
        for o in given
    }
