"""Simulated human users: members of the fake's voice layer (no discord.py client) who speak and hear
the real wire format over UDP (Opus, DAVE with their own davey.DaveSession, AEAD transport) and take
part in the channel's DAVE group like any client."""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import logging
import os
import random
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import davey
import discord.opus

from tests.fakes.discord import rtp
from tests.fakes.discord.dave import (
    OP_ANNOUNCE_COMMIT,
    OP_EXECUTE_TRANSITION,
    OP_EXTERNAL_SENDER,
    OP_PREPARE_EPOCH,
    OP_PREPARE_TRANSITION,
    OP_PROPOSALS,
    OP_WELCOME,
    Outgoing,
)
from tests.fakes.discord.voice import CLIENT_DISCONNECT, CLIENTS_CONNECT, SPEAKING, VoiceSession

if TYPE_CHECKING:
    from tests.fakes.discord.model import Account, Guild
    from tests.fakes.discord.server import FakeDiscord

log = logging.getLogger(__name__)

RATE = 48_000
FRAME_SAMPLES = 960
FRAME_BYTES = FRAME_SAMPLES * 2 * 2  # 20 ms of s16le stereo
DAVE_MAGIC = b"\xfa\xfa"  # every DAVE protocol frame ends with this marker
REANCHOR_SAMPLES = RATE // 5  # a packet 200 ms later than its timestamp predicts starts a new spurt


def ensure_opus() -> None:
    """Load libopus into discord.py (which the bots' `vc.play` and the fake users both use): PyAV's
    bundled copy first, then the system library."""
    if discord.opus.is_loaded():
        return
    spec = importlib.util.find_spec("av")
    if spec and spec.origin:
        site = os.path.dirname(os.path.dirname(spec.origin))
        for path in sorted(glob.glob(os.path.join(site, "av.libs", "libopus-*.so*"))):
            try:
                discord.opus.load_opus(path)
                return
            except OSError as exc:
                log.debug("could not load %s: %s", path, exc)
    if not discord.opus._load_default():  # system libopus
        raise RuntimeError("libopus not found (neither PyAV's bundled copy nor a system library)")


@dataclass
class SpeechReport:
    """What `FakeUser.speak` sent: the loop time of the first packet, packet counts per feature."""

    started_at: float
    frames: int
    padded: int = 0
    extended: int = 0
    dave_encrypted: int = 0


@dataclass
class _Track:
    """What the user heard from one sender, placed on the user's timeline (sample 0 = join)."""

    pcm: bytearray = field(default_factory=bytearray)
    anchor: int | None = None  # timeline sample of RTP timestamp `first_timestamp`
    first_timestamp: int = 0
    decoder: object = None
    packets: int = 0
    ended: bool = False  # the last frame was a silence frame (senders end a talk spurt with 5)
    ssrc: int = 0  # of the sender's current connection


@dataclass
class ReceiveStats:
    packets: int = 0
    transport_failures: int = 0
    dave_failures: int = 0  # DAVE frames (0xFAFA trailer) that did not decrypt: a real fault
    # Plain Opus frames while our group required DAVE and passthrough was off, dropped like a real
    # client drops them. Expected around joins: a sender encrypts only once its own session is ready.
    unencrypted: int = 0
    opus_errors: int = 0
    unknown_ssrc: int = 0
    decoded: int = 0


class FakeUser:
    """A simulated human member. Create with `await fake.add_user(name)`; then `await join(channel)`,
    `await speak(pcm)`, `recording()`, `await leave()`."""

    def __init__(
        self, fake: FakeDiscord, account: Account, *, mode: str = rtp.AES_GCM, guild: Guild | None = None
    ) -> None:
        self.fake = fake
        self.account = account
        self.guild = guild or fake.guild  # where channel names are looked up; joins follow the channel
        self.mode = mode
        self.dave: davey.DaveSession | None = None
        self.session: VoiceSession | None = None
        self.ssrc_users: dict[int, int] = {}  # from op 5
        self.connected_users: set[int] = set()  # from op 11/13
        # (sender user id, ssrc, flags, packets received so far) for every op 5 that reached us
        self.speaking_events: list[tuple[int, int, int, int]] = []
        self.stats = ReceiveStats()
        self._tracks: dict[int, _Track] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._discovery: asyncio.Future | None = None
        self._t0 = 0.0
        self._seq = random.randrange(1 << 16)
        self._timestamp = random.randrange(1 << 32)
        self._counter = 0
        self.protocol_version = 1  # DAVE on; 0 after an executed downgrade
        self._pending_transitions: dict[int, int] = {}
        self._tasks: set[asyncio.Task] = set()

    @property
    def id(self) -> int:
        return self.account.id

    @property
    def user_id(self) -> int:
        return self.account.id

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def ssrc(self) -> int:
        if self.session is None:
            raise RuntimeError(f"{self.name} is not in a voice channel")
        return self.session.ssrc

    @property
    def joined_at(self) -> float:
        """Loop time of sample 0 of `recording()`."""
        return self._t0

    @property
    def channel_id(self) -> int | None:
        return self.session.channel_id if self.session else None

    # -- joining and leaving --------------------------------------------------------------------------

    async def join(self, channel: int | str) -> None:
        """Join a voice channel (id or name): voice state for the bots, a UDP socket to the SFU with
        IP discovery, then the DAVE group."""
        if self.session is not None:
            await self.leave()
        channel_id = channel if isinstance(channel, int) else self.fake.channel(channel, self.guild).id
        self.guild = self.fake.guild_of_channel(channel_id) or self.guild
        await self.fake.voice_state_update(
            self.account, {"guild_id": str(self.guild.id), "channel_id": str(channel_id)}
        )
        voice = self.fake.voice
        session = voice.sessions[(self.guild.id, self.id)]
        session.participant = self
        session.mode = self.mode
        self.session = session
        self.ssrc_users.clear()
        self.connected_users.clear()
        self.speaking_events.clear()
        self._tracks.clear()
        self.stats = ReceiveStats()
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _UserProtocol(self), remote_addr=("127.0.0.1", voice.udp_port)
        )
        self._discovery = loop.create_future()
        self._transport.sendto(rtp.discovery_request(session.ssrc))
        await asyncio.wait_for(self._discovery, 5)
        self._t0 = loop.time()
        await voice.join_room(session)
        self.dave = davey.DaveSession(davey.DAVE_PROTOCOL_VERSION, self.id, channel_id)
        key_package = self.dave.get_serialized_key_package()
        self.dave.set_external_sender(voice.room(channel_id).coordinator.external_sender_package())
        await voice.key_package(session, key_package)

    async def leave(self) -> None:
        if self.session is None:
            return
        await self.fake.voice_state_update(self.account, {"guild_id": str(self.guild.id), "channel_id": None})
        self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.session = None

    async def wait_dave_ready(self, timeout: float = 10.0, members: int | None = None) -> None:
        """Until this user's DAVE session is ready (and, if given, the group has `members` members)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if (
                self.dave is not None
                and self.dave.ready
                and (members is None or len(self.dave.get_user_ids()) == members)
            ):
                return
            if asyncio.get_running_loop().time() > deadline:
                count = len(self.dave.get_user_ids()) if self.dave and self.dave.ready else 0
                raise TimeoutError(f"{self.name}: DAVE not ready with {members} members (has {count})")
            await asyncio.sleep(0.02)

    # -- the voice server talks to us (Participant protocol) ------------------------------------------

    async def send_json(self, op: int, data: object) -> None:
        if op == SPEAKING:
            self.ssrc_users[int(data["ssrc"])] = int(data["user_id"])
            self.speaking_events.append(
                (int(data["user_id"]), int(data["ssrc"]), int(data["speaking"]), self.stats.packets)
            )
        elif op == CLIENTS_CONNECT:
            self.connected_users.update(int(u) for u in data["user_ids"])
        elif op == CLIENT_DISCONNECT:
            self.connected_users.discard(int(data["user_id"]))
        elif op == OP_PREPARE_TRANSITION:
            tid, version = int(data["transition_id"]), int(data["protocol_version"])
            self._pending_transitions[tid] = version
            if version == 0 and self.dave is not None:
                self.dave.set_passthrough_mode(True, 120)
            if tid == 0:
                self._execute(tid)
            else:  # answer outside the voice server's delivery
                self._spawn(self.fake.voice.transition_ready(self.session, tid))
        elif op == OP_EXECUTE_TRANSITION:
            self._execute(int(data["transition_id"]))
        elif op == OP_PREPARE_EPOCH and int(data["epoch"]) == 1:
            self.protocol_version = int(data["protocol_version"])
            self._spawn(self._new_key_package())

    def _execute(self, transition_id: int) -> None:
        if transition_id not in self._pending_transitions:
            return
        previous, self.protocol_version = self.protocol_version, self._pending_transitions.pop(transition_id)
        if previous == 0 and self.protocol_version > 0 and self.dave is not None:
            self.dave.set_passthrough_mode(True, 10)  # the others may still send plain frames briefly

    async def _new_key_package(self) -> None:
        session, channel_id = self.session, self.session.channel_id
        self.dave.reinit(davey.DAVE_PROTOCOL_VERSION, self.id, channel_id)
        key_package = self.dave.get_serialized_key_package()
        self.dave.set_external_sender(self.fake.voice.room(channel_id).coordinator.external_sender_package())
        await self.fake.voice.key_package(session, key_package)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_dave(self, op: int, payload: bytes) -> list[Outgoing]:
        """Handle a DAVE binary op like discord.py does; returns the coordinator's reactions."""
        dave, room = self.dave, self.fake.voice.room(self.session.channel_id) if self.session else None
        if dave is None or room is None:
            return []
        coordinator = room.coordinator
        if op == OP_EXTERNAL_SENDER:
            dave.set_external_sender(payload)
        elif op == OP_PROPOSALS:
            kind = davey.ProposalsOperationType.append if payload[0] == 0 else davey.ProposalsOperationType.revoke
            result = dave.process_proposals(kind, payload[1:])
            if result is not None:
                return coordinator.commit_welcome(self.id, result.commit + (result.welcome or b""))
        elif op in (OP_ANNOUNCE_COMMIT, OP_WELCOME):
            transition = struct.unpack_from(">H", payload)[0]
            try:
                if op == OP_ANNOUNCE_COMMIT:
                    dave.process_commit(payload[2:])
                else:
                    dave.process_welcome(payload[2:])
            except ValueError as exc:
                log.warning("%s could not process DAVE op %s: %s", self.name, op, exc)
                return coordinator.invalid_commit(self.id, transition)
            if transition == 0:
                return []
            self._pending_transitions[transition] = self.protocol_version
            return coordinator.transition_ready(self.id, transition)
        return []

    # -- speaking ---------------------------------------------------------------------------------------

    async def speak(
        self,
        pcm: bytes,
        *,
        speaking: str = "early",
        late_after: int = 10,
        padding_fraction: float = 0.0,
        extension_fraction: float = 0.0,
        silence_frames: int = 5,
        seed: int = 0,
    ) -> SpeechReport:
        """Send 48 kHz stereo s16le `pcm` as real-time paced 20 ms Opus frames (DAVE-encrypted once
        the group is ready, then transport-encrypted), followed by `silence_frames` F8 FF FE frames.

        speaking: "early" (op 5 before the first packet), "late" (after `late_after` packets) or
        "never". A `padding_fraction` of packets carry RTP padding (1-15 bytes, P bit) and an
        `extension_fraction` a one-byte-header extension (0xBEDE, audio level id 1)."""
        if self.session is None:
            raise RuntimeError(f"{self.name} must join a voice channel before speaking")
        if speaking not in ("early", "late", "never"):
            raise ValueError(f"speaking must be 'early', 'late' or 'never', not {speaking!r}")
        ensure_opus()
        encoder = discord.opus.Encoder()
        rng = random.Random(seed)
        pcm = pcm + bytes(-len(pcm) % FRAME_BYTES)
        frames = [encoder.encode(pcm[i : i + FRAME_BYTES], FRAME_SAMPLES) for i in range(0, len(pcm), FRAME_BYTES)]
        frames += [rtp.SILENCE_FRAME] * silence_frames
        voice, session = self.fake.voice, self.session
        if speaking == "early":
            await voice.speaking(session, 1)
        loop = asyncio.get_running_loop()
        report = SpeechReport(started_at=loop.time(), frames=len(frames))
        for index, frame in enumerate(frames):
            if speaking == "late" and index == late_after:
                await voice.speaking(session, 1)
            payload = frame
            if self.protocol_version > 0 and self.dave is not None and self.dave.ready:
                payload = self.dave.encrypt_opus(frame)
                report.dave_encrypted += payload != frame
            extension = rtp.audio_level_extension() if rng.random() < extension_fraction else b""
            padding = rng.randint(1, 15) if rng.random() < padding_fraction else 0
            report.extended += bool(extension)
            report.padded += bool(padding)
            self._send_rtp(
                rtp.RtpHeader(self._seq, self._timestamp, session.ssrc, extension=extension, padding=padding), payload
            )
            self._seq = (self._seq + 1) & 0xFFFF
            self._timestamp = (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
            delay = report.started_at + (index + 1) * 0.02 - loop.time()
            await asyncio.sleep(max(0.0, delay))
        if speaking != "never":
            await voice.speaking(session, 0)
        return report

    def _send_rtp(self, header: rtp.RtpHeader, payload: bytes) -> None:
        if self._transport is None or self.session is None:
            raise RuntimeError(f"{self.name} is not connected")
        self._counter += 1
        self._transport.sendto(rtp.encrypt(header, payload, self.mode, self.session.secret_key, self._counter))

    # -- hearing ------------------------------------------------------------------------------------------

    def _datagram(self, data: bytes) -> None:
        if self._discovery is not None and not self._discovery.done() and len(data) == rtp.DISCOVERY_SIZE:
            self._discovery.set_result(rtp.parse_discovery_response(data))
            return
        if self.session is None or not rtp.is_rtp(data):
            return
        self.stats.packets += 1
        try:
            packet = rtp.decrypt(data, self.session.mode, self.session.secret_key)
        except rtp.PacketError:
            self.stats.transport_failures += 1
            return
        sender = self.ssrc_users.get(packet.ssrc)
        if sender is None:
            # Before (or without) op 5: the simulated user may ask the server, which knows.
            other = self.fake.voice.session_by_ssrc(packet.ssrc)
            if other is None:
                self.stats.unknown_ssrc += 1
                return
            sender = other.user_id
        frame = packet.payload
        if frame != rtp.SILENCE_FRAME and self.dave is not None and self.dave.ready:
            try:
                frame = self.dave.decrypt(sender, davey.MediaType.audio, frame)
            except ValueError:
                if frame.endswith(DAVE_MAGIC):
                    self.stats.dave_failures += 1
                else:
                    self.stats.unencrypted += 1
                return
        self._place(sender, packet.timestamp, frame, packet.ssrc)

    def _place(self, sender: int, timestamp: int, frame: bytes, ssrc: int = 0) -> None:
        track = self._tracks.setdefault(sender, _Track())
        if track.ssrc != ssrc:  # the sender reconnected (a new SSRC, a new RTP clock): place by arrival
            track.ssrc, track.anchor, track.decoder = ssrc, None, None
        if track.decoder is None:
            track.decoder = discord.opus.Decoder()
        try:
            pcm = track.decoder.decode(frame)
        except discord.opus.OpusError:
            self.stats.opus_errors += 1
            return
        self.stats.decoded += 1
        arrival = max(0, round((asyncio.get_running_loop().time() - self._t0) * RATE) - FRAME_SAMPLES)
        expected = None if track.anchor is None else track.anchor + ((timestamp - track.first_timestamp) & 0xFFFFFFFF)
        if expected is None or (track.ended and arrival - expected > REANCHOR_SAMPLES):
            # First packet, or a new talk spurt whose RTP clock did not advance during the pause
            # (discord.py's player keeps counting from where it stopped): place it by arrival time.
            # Within a spurt the RTP clock rules, so scheduling stalls do not shift the audio.
            track.anchor, track.first_timestamp = arrival, timestamp
        track.ended = frame == rtp.SILENCE_FRAME
        offset = (track.anchor + ((timestamp - track.first_timestamp) & 0xFFFFFFFF)) * 4
        if offset > 3600 * RATE * 4:  # a timestamp from before the anchor (reordering); drop
            return
        end = offset + len(pcm)
        if len(track.pcm) < end:
            track.pcm.extend(bytes(end - len(track.pcm)))
        track.pcm[offset:end] = pcm
        track.packets += 1

    def recording(self) -> dict[int, bytes]:
        """What this user heard since joining, per sender user id: 48 kHz stereo s16le PCM on the
        user's timeline (sample 0 = the moment of joining; gaps are silence)."""
        return {sender: bytes(track.pcm) for sender, track in self._tracks.items()}

    def heard(self, sender_id: int) -> bytes:
        track = self._tracks.get(sender_id)
        return bytes(track.pcm) if track else b""

    def heard_end_of_speech(self, sender_id: int) -> bool:
        """The sender's last frame here was a silence frame: a talk spurt (or a discord.py playback, which
        ends with five) has arrived in full, so a test can wait for this instead of sleeping."""
        track = self._tracks.get(sender_id)
        return track is not None and track.ended


class _UserProtocol(asyncio.DatagramProtocol):
    def __init__(self, user: FakeUser) -> None:
        self.user = user

    def datagram_received(self, data: bytes, addr) -> None:
        self.user._datagram(data)
