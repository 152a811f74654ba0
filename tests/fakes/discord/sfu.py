"""The fake voice server's UDP side: IP discovery and the SFU that relays each sender's RTP to the
other members of its channel (one part of `VoiceServer`, kept in its own module)."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from dataclasses import dataclass

from tests.fakes.discord import rtp
from tests.fakes.discord.calls import Room, VoiceSession
from tests.fakes.discord.realism import SPEAKING_NEVER

log = logging.getLogger(__name__)


@dataclass
class SfuStats:
    received: int = 0
    relayed: int = 0
    dropped: int = 0  # undecryptable, unknown SSRC or sender not in a channel
    ignored: int = 0  # not RTP: keepalives, RTCP, stray bytes
    discoveries: int = 0
    keepalives: int = 0  # non-RTP datagrams from a known client address (they refresh its mapping)
    expired: int = 0  # packets not relayed because the receiver's UDP mapping had expired


class Sfu:
    """The UDP half of `VoiceServer` (which provides the sessions, rooms and sockets it uses)."""

    sessions: dict[tuple[int, int], VoiceSession]
    rooms: dict[int, Room]
    stats: SfuStats
    udp_idle_timeout_s: float | None
    relay_extension: bool
    _transports: list[asyncio.DatagramTransport]
    # Offsets a test picks for the next receivers' views of a sender's sequence numbers (used first,
    # in order); otherwise each (receiver session, sender) pair gets a random one, as Discord's SFU does.
    next_sequence_offsets: list[int]

    def _late_after(self, session: VoiceSession) -> int:
        raise NotImplementedError

    def _spawn(self, coro) -> None:
        raise NotImplementedError

    async def _announce_speaking(self, session: VoiceSession, flags: int) -> None:
        raise NotImplementedError

    def session_by_ssrc(self, ssrc: int) -> VoiceSession | None:
        for session in self.sessions.values():
            if session.ssrc == ssrc:
                return session
        return None

    def _heard_from(self, address: tuple[str, int], server: int) -> VoiceSession | None:
        now = asyncio.get_running_loop().time()
        for session in self.sessions.values():
            if session.address == address and session.endpoint == server:
                session.last_heard = now
                return session
        return None

    def _mapping_alive(self, session: VoiceSession) -> bool:
        """Simulated users stand for full Discord clients, which always send (RTCP, audio); only
        clients on a real socket (bots) can let their mapping expire."""
        timeout = self.udp_idle_timeout_s
        if timeout is None or not getattr(session.participant, "remote", False):
            return True
        return asyncio.get_running_loop().time() - session.last_heard <= timeout

    def datagram(self, data: bytes, address: tuple[str, int], server: int = 0) -> None:
        self.stats.received += 1
        transport = self._transports[server]
        ssrc = rtp.parse_discovery_request(data)
        if ssrc is not None:
            session = self.session_by_ssrc(ssrc)
            if session is None or session.endpoint != server:
                log.debug("IP discovery for unknown ssrc %s on server %s dropped", ssrc, server)
                self.stats.dropped += 1
                return
            log.debug("IP discovery from user %s at %s (server %s)", session.user_id, address, server)
            session.address = address
            session.last_heard = asyncio.get_running_loop().time()
            self.stats.discoveries += 1
            transport.sendto(rtp.discovery_response(ssrc, address[0], address[1]), address)
            return
        known = self._heard_from(address, server)
        if not rtp.is_rtp(data):
            self.stats.ignored += 1
            self.stats.keepalives += known is not None
            return
        sender = self.session_by_ssrc(rtp.ssrc_of(data))
        room = self.rooms.get(sender.channel_id) if sender else None
        if sender is None or sender.mode is None or room is None or room.sessions.get(sender.user_id) is not sender:
            self.stats.dropped += 1
            return
        try:
            aad, plaintext = rtp.open_packet(data, sender.mode, sender.secret_key)
        except rtp.PacketError:
            self.stats.dropped += 1
            return
        sender.address = sender.address or address
        sender.packets_in += 1
        late_after = self._late_after(sender)
        never = sender.speaking_policy.when == SPEAKING_NEVER
        if late_after and sender.packets_in == late_after and not sender.speaking_sent and not never:
            self._spawn(self._announce_speaking(sender, 1))
        if self.relay_extension and not aad[0] & 0x10 and not aad[0] & 0x0F:
            aad = bytes([aad[0] | 0x10]) + aad[1:] + struct.pack(">HH", rtp.EXTENSION_MAGIC, 1)
            plaintext = rtp.audio_level_extension() + plaintext
        sequence = struct.unpack_from(">H", aad, 2)[0]
        for receiver in list(room.sessions.values()):
            if receiver is sender or not receiver.ready_for_media:
                continue
            if not self._mapping_alive(receiver):
                self.stats.expired += 1
                continue
            offset = receiver.sequence_offsets.get(sender.ssrc)
            if offset is None:
                offset = receiver.sequence_offsets[sender.ssrc] = self._new_sequence_offset()
            header = bytearray(aad)
            struct.pack_into(">H", header, 2, (sequence + offset) & 0xFFFF)
            receiver.tx_counter += 1
            packet = rtp.seal(bytes(header), plaintext, receiver.mode, receiver.secret_key, receiver.tx_counter)
            self._transports[receiver.endpoint].sendto(packet, receiver.address)
            self.stats.relayed += 1

    def _new_sequence_offset(self) -> int:
        if self.next_sequence_offsets:
            return self.next_sequence_offsets.pop(0) & 0xFFFF
        return int.from_bytes(os.urandom(2), "big")


class SfuProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: Sfu, index: int) -> None:
        self.server = server
        self.index = index

    def datagram_received(self, data: bytes, addr) -> None:
        self.server.datagram(data, addr, self.index)
