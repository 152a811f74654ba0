"""The main gateway (`ws://127.0.0.1:P/gateway`, also the resume URL): hello, identify -> READY +
GUILD_CREATE, heartbeats, resume, voice state updates (op 4) and arbitrary dispatches."""

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


class GatewaySession:
    """One bot's gateway session; it survives a socket drop so the client can resume."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.session_id = random_secrets.token_hex(16)
        self.seq = 0
        self.ws: web.WebSocketResponse | None = None
        self.received: list[dict] = []  # every payload the client sent (for assertions)

    async def dispatch(self, event: str, data: object) -> None:
        if self.ws is None or self.ws.closed:
            raise ConnectionError(f"{self.account.name} has no open gateway connection")
        self.seq += 1
        await self.ws.send_str(json.dumps({"op": DISPATCH, "t": event, "s": self.seq, "d": data}))


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: dict[int, GatewaySession] = {}  # user id -> session
        self.resumes = 0  # successful op 6 resumes, for tests

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self.handle)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
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
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict) -> GatewaySession | None:
        account = self.fake.account_by_token(data.get("token", ""))
        if account is None:
            await ws.close(code=4004, message=b"Authentication failed")
            return None
        ready_delay, guild_delay = self.fake.realism.ready_delays(self.fake.bots.index(account))
        await asyncio.sleep(ready_delay)  # clients log in at different speeds
        session = GatewaySession(account)
        session.ws = ws
        self.sessions[account.id] = session
        await session.dispatch(
            "READY",
            {
                "v": 10,
                "user": {**account.user_payload(), "verified": True, "mfa_enabled": False},
                "guilds": [{"id": str(guild.id), "unavailable": True} for guild in self.fake.guilds_of(account)],
                "session_id": session.session_id,
                "resume_gateway_url": self.fake.gateway_url,
                "application": {"id": str(account.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        await asyncio.sleep(guild_delay)  # guilds become available after READY
        for guild in self.fake.guilds_of(account):
            await session.dispatch("GUILD_CREATE", guild.payload())
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict) -> GatewaySession | None:
        account = self.fake.account_by_token(data.get("token", ""))
        session = self.sessions.get(account.id) if account else None
        if session is None or session.session_id != data.get("session_id"):
            await ws.send_str(json.dumps({"op": INVALID_SESSION, "d": False}))
            return None
        session.ws = ws
        self.resumes += 1
        await session.dispatch("RESUMED", {})
        return session

    async def _members_chunk(self, session: GatewaySession, data: dict) -> None:
        guild = self.fake.guild
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

    async def broadcast(self, event: str, data: object) -> None:
        """Dispatch to every connected bot (they are all in the one guild)."""
        for session in list(self.sessions.values()):
            if session.ws is not None and not session.ws.closed:
                await session.dispatch(event, data)

    async def close_all(self) -> None:
        for session in self.sessions.values():
            if session.ws is not None:
                await session.ws.close()


def voice_state_for(session_id: str, user_id: int, channel_id: int | None, data: dict) -> VoiceState:
    return VoiceState(
        user_id=user_id,
        channel_id=channel_id,
        session_id=session_id,
        self_mute=bool(data.get("self_mute")),
        self_deaf=bool(data.get("self_deaf")),
    )


__all__ = ["Gateway", "GatewaySession", "new_token", "voice_state_for"]
