"""The main gateway (`ws://127.0.0.1:P/gateway`, also the resume URL): hello, identify -> READY +
GUILD_CREATE, heartbeats, resume, voice state updates (op 4) and arbitrary dispatches.

Sharded like Discord: IDENTIFY's `shard: [id, count]` (default [0, 1]) makes a session of that shard,
which gets READY and GUILD_CREATE for, and events of, only the guilds with `(guild_id >> 22) % count
== id`. A shard outside 0..count-1 is closed with 4010 (Invalid shard); a bot in more guilds per
shard than `max_guilds_per_shard` with 4011 (Sharding required)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets as random_secrets
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from tests.fakes.discord.model import Account, VoiceState, new_token

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, VOICE_STATE, RESUME, RECONNECT = 0, 1, 2, 4, 6, 7
REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 8, 9, 10, 11
CLOSE_INVALID_SHARD, CLOSE_SHARDING_REQUIRED = 4010, 4011
DISCORD_MAX_GUILDS_PER_SHARD = 2500
SHARD_SHIFT = 22


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's formula (written out here too: the fake must not trust the product's copy)."""
    return (guild_id >> SHARD_SHIFT) % shard_count


class GatewaySession:
    """One bot's gateway session; it survives a socket drop so the client can resume."""

    def __init__(self, account: Account, shard: tuple[int, int] = (0, 1)) -> None:
        self.account = account
        self.shard = shard  # (id, count), as identified
        self.session_id = random_secrets.token_hex(16)
        self.seq = 0
        self.ws: web.WebSocketResponse | None = None
        self.received: list[dict] = []  # every payload the client sent (for assertions)

    def serves(self, guild_id: int) -> bool:
        shard_id, count = self.shard
        return shard_of(guild_id, count) == shard_id

    @property
    def is_open(self) -> bool:
        return self.ws is not None and not self.ws.closed

    async def dispatch(self, event: str, data: object) -> None:
        if self.ws is None or self.ws.closed:
            raise ConnectionError(f"{self.account.name} has no open gateway connection")
        self.seq += 1
        await self.ws.send_str(json.dumps({"op": DISPATCH, "t": event, "s": self.seq, "d": data}))


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.shard_sessions: dict[tuple[int, int], GatewaySession] = {}  # (user id, shard id) -> session
        self.sessions: dict[int, GatewaySession] = {}  # user id -> its latest session, whatever its shard
        self.resumes = 0  # successful op 6 resumes, for tests
        self.identified: list[tuple[int, tuple[int, int]]] = []  # (user id, shard) of every accepted IDENTIFY
        self.refused: list[tuple[int, int]] = []  # (user id, close code) of every refused IDENTIFY
        self.max_guilds_per_shard = DISCORD_MAX_GUILDS_PER_SHARD
        self._guilds_released = asyncio.Event()  # cleared by hold_guilds(): READY goes out, GUILD_CREATE waits
        self._guilds_released.set()
        # False: a client's close frame is never answered and its connection is held open (a Discord
        # unreachable at shutdown); the client's close then waits for its own timeout.
        self.answer_close = True
        self._unanswered = asyncio.Event()  # set by close_all(): the held connections end
        self._held_logins: set[int] = set()  # hold_logins(): these bots' identifies wait for a release
        self._logins_released = asyncio.Event()
        self._logins_released.set()

    def hold_guilds(self) -> None:
        """Identifies from now on get READY (guilds unavailable) but GUILD_CREATE only at release_guilds()."""
        self._guilds_released.clear()

    def release_guilds(self) -> None:
        self._guilds_released.set()

    def hold_logins(self, *user_ids: int) -> None:
        """These bots' identifies from now on get no READY until release_logins() (a slow login)."""
        self._held_logins.update(user_ids)
        self._logins_released.clear()

    def release_logins(self) -> None:
        self._held_logins.clear()
        self._logins_released.set()

    def session_of(self, user_id: int, guild_id: int | None = None) -> GatewaySession | None:
        """The bot's session that serves `guild_id` (any of its sessions if None), preferring open ones."""
        mine = [s for (uid, _), s in self.shard_sessions.items() if uid == user_id]
        if guild_id is not None:
            mine = [s for s in mine if s.serves(guild_id)]
        return next((s for s in mine if s.is_open), mine[0] if mine else None)

    def shards_of(self, user_id: int) -> list[tuple[int, int]]:
        """The shards a bot has identified on, in order."""
        return sorted(s.shard for (uid, _), s in self.shard_sessions.items() if uid == user_id)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self.handle)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0, autoclose=False)  # answered below
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": HELLO, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        session: GatewaySession | None = None
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            payload = json.loads(message.data)
            op, data = payload.get("op"), payload.get("d")
            if session is not None:
                session.received.append(payload)
            if op == HEARTBEAT:
                await ws.send_str(json.dumps({"op": HEARTBEAT_ACK, "d": None}))
            elif op == IDENTIFY:
                session = await self._identify(ws, data)
            elif op == RESUME:
                session = await self._resume(ws, data)
            elif session is None:
                await ws.close(code=4003, message=b"Not authenticated")
            elif op == VOICE_STATE:
                await self.fake.voice_state_update(session.account, data)
            elif op == REQUEST_MEMBERS:
                await self._members_chunk(session, data)
        if not ws.closed:
            if self.answer_close:
                await ws.close()
            else:
                await self._unanswered.wait()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict) -> GatewaySession | None:
        account = self.fake.account_by_token(data.get("token", ""))
        if account is None:
            await ws.close(code=4004, message=b"Authentication failed")
            return None
        shard = self._shard_of_identify(data["shard"] if data.get("shard") is not None else [0, 1])
        refusal = self._refusal(account, shard)
        if refusal is not None:
            code, reason = refusal
            self.refused.append((account.id, code))
            await ws.close(code=code, message=reason)
            return None
        assert shard is not None
        ready_delay, guild_delay = self.fake.realism.ready_delays(self.fake.bots.index(account))
        await asyncio.sleep(ready_delay)  # clients log in at different speeds
        if account.id in self._held_logins:
            await self._logins_released.wait()
        session = GatewaySession(account, shard)
        session.ws = ws
        self.shard_sessions[(account.id, shard[0])] = session
        self.sessions[account.id] = session
        self.identified.append((account.id, shard))
        guilds = [guild for guild in self._member_guilds(account) if session.serves(guild.id)]
        await session.dispatch(
            "READY",
            {
                "v": 10,
                "user": {**account.user_payload(), "verified": True, "mfa_enabled": False},
                "guilds": [{"id": str(guild.id), "unavailable": True} for guild in guilds],
                "session_id": session.session_id,
                "resume_gateway_url": self.fake.gateway_url,
                "shard": list(shard),
                "application": {"id": str(account.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        await asyncio.sleep(guild_delay)  # guilds become available after READY
        await self._guilds_released.wait()
        for guild in guilds:
            await session.dispatch("GUILD_CREATE", guild.payload())
        return session

    @staticmethod
    def _shard_of_identify(value: object) -> tuple[int, int] | None:
        """`[id, count]` as two ints, or None if malformed."""
        if not isinstance(value, list) or len(value) != 2 or not all(type(v) is int for v in value):
            return None
        return value[0], value[1]

    def _refusal(self, account: Account, shard: tuple[int, int] | None) -> tuple[int, bytes] | None:
        """Discord's close code and reason for a shard it would not accept, or None."""
        if shard is None or shard[1] < 1 or not 0 <= shard[0] < shard[1]:
            return CLOSE_INVALID_SHARD, b"Invalid shard"
        if len(self._member_guilds(account)) > self.max_guilds_per_shard * shard[1]:
            return CLOSE_SHARDING_REQUIRED, b"Sharding required"
        return None

    def _member_guilds(self, account: Account) -> list:
        return self.fake.guilds_of(account)

    async def _resume(self, ws: web.WebSocketResponse, data: dict) -> GatewaySession | None:
        account = self.fake.account_by_token(data.get("token", ""))
        wanted = data.get("session_id")
        session = next(
            (s for s in self.shard_sessions.values() if account and s.account is account and s.session_id == wanted),
            None,
        )
        if session is None:
            await ws.send_str(json.dumps({"op": INVALID_SESSION, "d": False}))
            return None
        session.ws = ws
        self.resumes += 1
        await session.dispatch("RESUMED", {})
        return session

    async def _members_chunk(self, session: GatewaySession, data: dict) -> None:
        guild_id = int(data.get("guild_id") or self.fake.guild.id)
        guild = next((g for g in self.fake.guilds if g.id == guild_id), self.fake.guild)
        await session.dispatch(
            "GUILD_MEMBERS_CHUNK",
            {
                "guild_id": str(guild.id),
                "members": [guild.member_payload(member) for member in guild.members.values()],
                "chunk_index": 0,
                "chunk_count": 1,
                "nonce": data.get("nonce"),
            },
        )

    async def broadcast(self, event: str, data: object, *, guild_id: int | None = None) -> None:
        """Dispatch a guild's event to every connected bot session whose shard serves that guild
        (`guild_id`, else the payload's `guild_id`, else, for GUILD_CREATE, its `id`)."""
        guild_id = guild_id or _guild_of_payload(event, data)
        for session in list(self.shard_sessions.values()):
            if session.is_open and (guild_id is None or session.serves(guild_id)):
                await session.dispatch(event, data)

    async def close_all(self) -> None:
        self._unanswered.set()
        self.release_guilds()  # identifies still held end too, not left pending at shutdown
        self.release_logins()
        for session in self.shard_sessions.values():
            if session.ws is not None:
                await session.ws.close()


def _guild_of_payload(event: str, data: object) -> int | None:
    if not isinstance(data, dict):
        return None
    value = data.get("id") if event in ("GUILD_CREATE", "GUILD_UPDATE") else data.get("guild_id")
    return int(value) if value else None


def voice_state_for(session_id: str, user_id: int, channel_id: int | None, data: dict) -> VoiceState:
    return VoiceState(
        user_id=user_id,
        channel_id=channel_id,
        session_id=session_id,
        self_mute=bool(data.get("self_mute")),
        self_deaf=bool(data.get("self_deaf")),
    )


__all__ = ["Gateway", "GatewaySession", "new_token", "shard_of", "voice_state_for"]
