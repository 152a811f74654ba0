"""The fake voice server: voice gateway v8 over TLS (`wss://127.0.0.1:VP/?v=8`), the DAVE external
sender per channel, and the UDP SFU.

Participants are either real clients on a WebSocket (`WsParticipant`, e.g. discord.py) or in-process
simulated users (`tests.fakes.discord.users.FakeUser`), which receive the same JSON and binary
messages through method calls and speak the real wire format over UDP.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import struct

from aiohttp import WSMsgType, web

from tests.fakes.discord import rtp
from tests.fakes.discord.calls import Room, VoiceSession
from tests.fakes.discord.dave import (
    OP_ANNOUNCE_COMMIT,
    OP_EXTERNAL_SENDER,
    OP_PROPOSALS,
    OP_WELCOME,
    DaveCoordinator,
    Outgoing,
)
from tests.fakes.discord.realism import (
    RESUME_FULL,
    RESUME_INVALID,
    RESUME_LATE,
    RESUME_LATE_S,
    RESUME_RESUMED_ONLY,
    SPEAKING_LATE,
    SPEAKING_NEVER,
    Realism,
)
from tests.fakes.discord.sfu import Sfu, SfuProtocol, SfuStats

log = logging.getLogger(__name__)

BINARY_OPS = {OP_EXTERNAL_SENDER, OP_PROPOSALS, OP_ANNOUNCE_COMMIT, OP_WELCOME}

# Voice gateway opcodes.
IDENTIFY, SELECT_PROTOCOL, READY, HEARTBEAT, SESSION_DESCRIPTION, SPEAKING = 0, 1, 2, 3, 4, 5
HEARTBEAT_ACK, RESUME, HELLO, RESUMED, CLIENTS_CONNECT, CLIENT_DISCONNECT = 6, 7, 8, 9, 11, 13
TRANSITION_READY, KEY_PACKAGE, COMMIT_WELCOME, INVALID_COMMIT = 23, 26, 28, 31

CLOSE_SERVER_CRASHED = 4015  # client resumes (op 7)
CLOSE_SESSION_INVALID = 4006  # client starts over with a new identify
CLOSE_DISCONNECTED = 4014  # kicked / moved
CLOSE_AUTH_FAILED = 4004


class VoiceServer(Sfu):
    """Voice gateway + SFU on 127.0.0.1. Start with `await start()`, stop with `await stop()`."""

    def __init__(
        self,
        ssl_context,
        *,
        late_speaking_packets: int = 0,
        relay_extension: bool = True,
        realism: Realism | None = None,
        udp_idle_timeout_s: float | None = None,
    ) -> None:
        self._ssl = ssl_context
        self.realism = realism or Realism(None)
        # Like a NAT or Discord's SFU: a receiver whose address sent nothing for this long is sent
        # nothing more until it sends again (None: mappings never expire).
        self.udp_idle_timeout_s = udp_idle_timeout_s
        self.ports: list[int] = []  # TCP (wss) port per voice server; endpoint i is "127.0.0.1:<ports[i]>"
        self.udp_ports: list[int] = []
        self._runners: list[web.AppRunner] = []
        self._transports: list[asyncio.DatagramTransport] = []
        self.sessions: dict[tuple[int, int], VoiceSession] = {}  # (guild, user) -> session
        self.rooms: dict[int, Room] = {}
        self.stats = SfuStats()
        # Tests may hold back the SPEAKING (op 5) SSRC mapping until a sender's Nth packet.
        self.late_speaking_packets = late_speaking_packets
        # Discord's SFU forwards packets with a one-byte header extension (first byte 0x90) even when
        # the sender (e.g. discord.py) sent none; so does the fake unless this is False.
        self.relay_extension = relay_extension
        self._ssrcs = itertools.count(int.from_bytes(os.urandom(2), "big") + 1000)
        self._ws: dict[int, web.WebSocketResponse] = {}  # user -> live voice websocket
        self._tasks: set[asyncio.Task] = set()
        self._open_ws: set[web.WebSocketResponse] = set()
        self.events: list[tuple[int, int]] = []  # (user id, op) of every client message, for tests
        self.resume_answers: list[tuple[int, str]] = []  # (user id, behaviour) per resume attempt
        # A test may hold every new voice websocket's upgrade until this event is set (a slow TLS or
        # HTTP handshake); `upgrades_waiting` counts the ones held now.
        self.hold_upgrades: asyncio.Event | None = None
        self.next_sequence_offsets: list[int] = []
        self.upgrades_waiting = 0

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def udp_port(self) -> int:
        return self.udp_ports[0]

    @property
    def endpoint(self) -> str:
        """The first voice server's endpoint (where every session starts)."""
        return self.endpoint_of(0)

    def endpoint_of(self, index: int) -> str:
        return f"127.0.0.1:{self.ports[index]}"

    async def start(self) -> None:
        await self.add_server()

    async def add_server(self) -> int:
        """Another voice server (TLS gateway + UDP socket) serving the same calls; returns its index."""
        index = len(self.ports)
        app = web.Application()

        async def handle(request: web.Request) -> web.WebSocketResponse:
            return await self._handle_ws(request, index)

        app.router.add_get("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self._runners.append(runner)
        self.ports.append(runner.addresses[0][1])
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: SfuProtocol(self, index), local_addr=("127.0.0.1", 0)
        )
        self._transports.append(transport)
        self.udp_ports.append(transport.get_extra_info("sockname")[1])
        return index

    async def stop(self) -> None:
        for ws in list(self._open_ws):  # also sockets a client abandoned (replaced by a newer one)
            await ws.close()
        for task in list(self._tasks):
            task.cancel()
        for transport in self._transports:
            transport.close()
        for runner in self._runners:
            await runner.cleanup()

    # -- sessions (driven by the main gateway) -------------------------------------------------------

    def expect(self, guild_id: int, user_id: int, session_id: str, channel_id: int, token: str) -> bool:
        """A VOICE_SERVER_UPDATE was sent; returns True if an existing session stays (same channel)."""
        current = self.sessions.get((guild_id, user_id))
        if current and current.channel_id == channel_id and current.session_id == session_id:
            current.token = token
            return True
        if current:
            # Moved: leave the old channel now; the client reconnects with the new token.
            del self.sessions[(guild_id, user_id)]
            self._spawn(self._leave_room(current))
        session = VoiceSession(guild_id, user_id, session_id, channel_id, token, next(self._ssrcs))
        session.speaking_policy = self.realism.speaking_policy(user_id)
        self.sessions[(guild_id, user_id)] = session
        return False

    def move_to_server(self, guild_id: int, user_id: int, index: int, token: str) -> VoiceSession:
        """The call of this session moved to voice server `index` (a VOICE_SERVER_UPDATE with its
        endpoint is on its way): the old server forgets the client, which must identify on the new one."""
        session = self.sessions[(guild_id, user_id)]
        session.endpoint, session.token, session.mode, session.address = index, token, None, None
        return session

    async def end_session(self, guild_id: int, user_id: int, *, close_code: int | None = CLOSE_DISCONNECTED) -> None:
        """The user left voice (or was kicked): leave the room; close its socket with `close_code`."""
        session = self.sessions.pop((guild_id, user_id), None)
        if session is None:
            return
        await self._leave_room(session)
        ws = self._ws.pop(user_id, None)
        if ws is not None and close_code is not None and not ws.closed:
            await ws.close(code=close_code)

    async def close_socket(self, user_id: int, code: int, *, resume: str | None = None) -> None:
        """Close a client's voice WebSocket. 4015: the session stays and the client resumes, answered
        as `resume` says (a `realism.RESUME_*`; default: the realism's choice, or "full");
        4006: the session is invalidated (the client leaves the channel and connects afresh)."""
        ws = self._ws.get(user_id)
        if ws is None:
            raise KeyError(f"user {user_id} has no voice websocket")
        session = self.session_of(user_id)
        if session is not None:
            session.resume_behaviour = resume
        if code == CLOSE_SESSION_INVALID:
            for (guild_id, uid), _session in list(self.sessions.items()):
                if uid == user_id:
                    await self.end_session(guild_id, uid, close_code=None)
        await ws.close(code=code)

    def session_of(self, user_id: int) -> VoiceSession | None:
        for (_, uid), session in self.sessions.items():
            if uid == user_id:
                return session
        return None

    def room(self, channel_id: int) -> Room:
        room = self.rooms.get(channel_id)
        if room is None:
            room = self.rooms[channel_id] = Room(channel_id, DaveCoordinator(channel_id))
        return room

    # -- room membership ------------------------------------------------------------------------------

    async def join_room(self, session: VoiceSession) -> None:
        room = self.room(session.channel_id)
        others = [s for s in room.sessions.values() if s.user_id != session.user_id]
        room.sessions[session.user_id] = session
        participant = session.participant
        if others:
            await participant.send_json(CLIENTS_CONNECT, {"user_ids": [str(s.user_id) for s in others]})
            for other in others:
                await other.participant.send_json(CLIENTS_CONNECT, {"user_ids": [str(session.user_id)]})
                if other.speaking_sent:
                    await participant.send_json(SPEAKING, self._speaking(other, 1))

    async def _leave_room(self, session: VoiceSession) -> None:
        room = self.rooms.get(session.channel_id)
        if room is None or room.sessions.get(session.user_id) is not session:
            return
        del room.sessions[session.user_id]
        for other in room.sessions.values():
            await self._send_json(other, CLIENT_DISCONNECT, {"user_id": str(session.user_id)})
        await self.deliver(room, room.coordinator.leave(session.user_id))

    async def key_package(self, session: VoiceSession, key_package: bytes) -> None:
        room = self.room(session.channel_id)
        await self.deliver(room, room.coordinator.key_package(session.user_id, key_package))

    async def deliver(self, room: Room, messages: list[Outgoing]) -> None:
        """Send the coordinator's messages; in-process participants answer at once (queued here)."""
        async with room.lock:
            queue = list(messages)
            while queue:
                message = queue.pop(0)
                session = room.sessions.get(message.user_id)
                if session is None or session.participant is None:
                    continue
                try:
                    if message.op in BINARY_OPS:
                        queue.extend(await session.participant.send_dave(message.op, message.payload))
                    else:
                        await session.participant.send_json(message.op, message.payload)
                except ConnectionError as exc:
                    log.info("could not deliver DAVE op %s to user %s: %s", message.op, message.user_id, exc)

    async def transition_ready(self, session: VoiceSession, transition_id: int) -> None:
        room = self.room(session.channel_id)
        await self.deliver(room, room.coordinator.transition_ready(session.user_id, transition_id))

    async def downgrade(self, channel_id: int) -> None:
        """DAVE off for a channel: op 21 (protocol_version 0) to everyone, op 22 once all are ready;
        clients then send plain Opus (receivers pass it through)."""
        room = self.room(channel_id)
        await self.deliver(room, room.coordinator.prepare_transition(0, list(room.sessions)))

    async def upgrade(self, channel_id: int) -> None:
        """DAVE back on: op 24 (epoch 1) to everyone; each client re-initialises, sends a key package,
        and a new group forms (op 27-30, transitions 22/23)."""
        room = self.room(channel_id)
        await self.deliver(room, room.coordinator.prepare_epoch(1, list(room.sessions)))

    def _late_after(self, session: VoiceSession) -> int:
        """Relayed packets before the sender's SSRC mapping may be announced (0: at once)."""
        policy = session.speaking_policy
        return max(self.late_speaking_packets, policy.after_packets if policy.when == SPEAKING_LATE else 0)

    async def speaking(self, session: VoiceSession, flags: int) -> None:
        """op 5 from a participant: tell the others which SSRC is whose (unless held back or withheld)."""
        if session.speaking_policy.when == SPEAKING_NEVER:
            return
        late_after = self._late_after(session)
        if flags and late_after and session.packets_in < late_after:
            return
        await self._announce_speaking(session, flags)

    async def _announce_speaking(self, session: VoiceSession, flags: int) -> None:
        if flags:
            session.speaking_sent = True
        room = self.rooms.get(session.channel_id)
        for other in list(room.sessions.values()) if room else []:
            if other.user_id != session.user_id:
                await self._send_json(other, SPEAKING, self._speaking(session, flags))

    @staticmethod
    def _speaking(session: VoiceSession, flags: int) -> dict:
        return {"user_id": str(session.user_id), "ssrc": session.ssrc, "speaking": flags}

    async def _send_json(self, session: VoiceSession, op: int, data: object) -> None:
        if session.participant is None:
            return
        try:
            await session.participant.send_json(op, data)
        except ConnectionError as exc:
            log.info("could not send op %s to user %s: %s", op, session.user_id, exc)

    def session_description(self, session: VoiceSession) -> dict:
        return {
            "mode": session.mode,
            "secret_key": list(session.secret_key),
            "dave_protocol_version": 1,
            "audio_codec": "opus",
            "video_codec": None,
            "media_session_id": os.urandom(16).hex(),
        }

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the voice gateway ----------------------------------------------------------------------------

    async def _handle_ws(self, request: web.Request, server: int) -> web.WebSocketResponse:
        if self.hold_upgrades is not None:
            self.upgrades_waiting += 1
            try:
                await self.hold_upgrades.wait()
            finally:
                self.upgrades_waiting -= 1
        ws = web.WebSocketResponse(heartbeat=None, compress=True)
        await ws.prepare(request)
        participant = WsParticipant(ws, server)
        self._open_ws.add(ws)
        session: VoiceSession | None = None
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    payload = json.loads(message.data)
                    session = await self._on_json(participant, session, payload)
                    if session is not None:
                        self.events.append((session.user_id, payload.get("op")))
                elif message.type == WSMsgType.BINARY:
                    if session is not None and message.data:
                        self.events.append((session.user_id, message.data[0]))
                    await self._on_binary(session, message.data)
        finally:
            self._open_ws.discard(ws)
            if session is not None and self._ws.get(session.user_id) is ws:
                del self._ws[session.user_id]
        return ws

    async def _on_json(self, participant: WsParticipant, session: VoiceSession | None, msg: dict):
        op, data = msg.get("op"), msg.get("d") or {}
        if op == IDENTIFY:
            return await self._identify(participant, data)
        if op == RESUME:
            return await self._resume(participant, data)
        if session is None:
            await participant.ws.close(code=4003)  # not authenticated
            return None
        if op == HEARTBEAT:
            await participant.send_json(HEARTBEAT_ACK, {"t": data.get("t")})
        elif op == SELECT_PROTOCOL:
            mode = data.get("data", {}).get("mode")
            if mode not in rtp.MODES:
                await participant.ws.close(code=4016)  # unknown encryption mode
                return session
            session.mode = mode
            await participant.send_json(SESSION_DESCRIPTION, self.session_description(session))
            await participant.send_dave(
                OP_EXTERNAL_SENDER, self.room(session.channel_id).coordinator.external_sender_package()
            )
            await self.join_room(session)
        elif op == SPEAKING:
            await self.speaking(session, int(data.get("speaking", 0)))
        elif op == TRANSITION_READY:
            await self.transition_ready(session, int(data["transition_id"]))
        elif op == INVALID_COMMIT:
            room = self.room(session.channel_id)
            await self.deliver(room, room.coordinator.invalid_commit(session.user_id, int(data["transition_id"])))
        else:
            log.debug("voice op %s from user %s ignored", op, session.user_id)
        return session

    async def _identify(self, participant: WsParticipant, data: dict) -> VoiceSession | None:
        key = (int(data.get("server_id", 0)), int(data.get("user_id", 0)))
        session = self.sessions.get(key)
        if session is None or session.token != data.get("token") or session.session_id != data.get("session_id"):
            await participant.ws.close(code=CLOSE_AUTH_FAILED)
            return None
        if session.endpoint != participant.server:  # the call lives on another voice server now
            await participant.ws.close(code=CLOSE_SESSION_INVALID)
            return None
        if int(data.get("max_dave_protocol_version", 0)) < 1:
            await participant.ws.close(code=4017)  # E2EE/DAVE protocol required
            return None
        await self._leave_room(session)  # a fresh identify starts a new connection
        session.mode, session.address, session.speaking_sent, session.packets_in = None, None, False, 0
        self._attach(session, participant)
        await participant.send_json(HELLO, {"heartbeat_interval": 41250, "v": 8})
        await participant.send_json(
            READY,
            {
                "ssrc": session.ssrc,
                "ip": "127.0.0.1",
                "port": self.udp_ports[session.endpoint],
                "modes": list(rtp.MODES),
                "heartbeat_interval": 1,
            },
        )
        return session

    async def _resume(self, participant: WsParticipant, data: dict) -> VoiceSession | None:
        key = (int(data.get("server_id", 0)), int(self._user_of_session(data.get("session_id"))))
        session = self.sessions.get(key)
        invalid = session is None or session.token != data.get("token") or session.mode is None
        if invalid or session.endpoint != participant.server:
            await participant.ws.close(code=CLOSE_SESSION_INVALID)
            return None
        behaviour = session.resume_behaviour or self.realism.resume_behaviour()
        session.resume_behaviour = None
        self.resume_answers.append((session.user_id, behaviour))
        if behaviour == RESUME_INVALID:
            await self.end_session(session.guild_id, session.user_id, close_code=None)
            await participant.ws.close(code=CLOSE_SESSION_INVALID)
            return None
        self._attach(session, participant)
        await participant.send_json(HELLO, {"heartbeat_interval": 41250, "v": 8})
        if behaviour == RESUME_LATE:
            self._spawn(self._answer_resume_late(session, participant))
        elif behaviour in (RESUME_FULL, RESUME_RESUMED_ONLY):
            await participant.send_json(RESUMED, None)
            if behaviour == RESUME_FULL:
                await self._describe_again(session, participant)
        return session  # RESUME_SILENT: heartbeats are answered, nothing else

    async def _describe_again(self, session: VoiceSession, participant: WsParticipant) -> None:
        # discord.py 2.7.1 waits for a secret key on every new socket; it then starts a new DAVE
        # session (op 26), which replaces its leaf in the group.
        await participant.send_json(SESSION_DESCRIPTION, self.session_description(session))
        await participant.send_dave(
            OP_EXTERNAL_SENDER, self.room(session.channel_id).coordinator.external_sender_package()
        )

    async def _answer_resume_late(self, session: VoiceSession, participant: WsParticipant) -> None:
        await asyncio.sleep(RESUME_LATE_S)
        try:
            await participant.send_json(RESUMED, None)
            await self._describe_again(session, participant)
        except ConnectionError:
            pass  # the client gave up first

    def _user_of_session(self, session_id) -> int:
        for (_, user_id), session in self.sessions.items():
            if session.session_id == session_id:
                return user_id
        return 0

    def _attach(self, session: VoiceSession, participant: WsParticipant) -> None:
        participant.user_id = session.user_id
        session.participant = participant
        self._ws[session.user_id] = participant.ws

    async def _on_binary(self, session: VoiceSession | None, data: bytes) -> None:
        if session is None or not data:
            return
        op, payload = data[0], data[1:]
        room = self.room(session.channel_id)
        if op == KEY_PACKAGE:
            await self.key_package(session, payload)
        elif op == COMMIT_WELCOME:
            await self.deliver(room, room.coordinator.commit_welcome(session.user_id, payload))
        else:
            log.debug("binary voice op %s from user %s ignored", op, session.user_id)


class WsParticipant:
    """A client on a voice WebSocket. Server messages carry a sequence number (binary: u16 prefix)."""

    def __init__(self, ws: web.WebSocketResponse, server: int = 0) -> None:
        self.ws = ws
        self.server = server  # index of the voice server this socket reached
        self.remote = True  # a client on a real socket (its UDP mapping can expire)
        self.user_id = 0
        self._seq = 0

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    async def send_json(self, op: int, data: object) -> None:
        if self.ws.closed:
            raise ConnectionError("voice websocket closed")
        await self.ws.send_str(json.dumps({"op": op, "d": data, "seq": self._next_seq()}))

    async def send_dave(self, op: int, payload: bytes) -> list[Outgoing]:
        if self.ws.closed:
            raise ConnectionError("voice websocket closed")
        await self.ws.send_bytes(struct.pack(">HB", self._next_seq(), op) + payload)
        return []
