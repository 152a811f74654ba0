"""The fake voice server's state: one `VoiceSession` per user's voice connection, one `Room` per
channel with its DAVE group, and the `Participant` protocol both WebSocket clients and simulated
users implement."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Protocol

from tests.fakes.discord.dave import DaveCoordinator, Outgoing
from tests.fakes.discord.realism import SpeakingPolicy


class Participant(Protocol):
    """What the voice server needs from anyone in a channel."""

    user_id: int

    async def send_json(self, op: int, data: object) -> None: ...

    async def send_dave(self, op: int, payload: bytes) -> list[Outgoing]: ...


@dataclass
class VoiceSession:
    """One user's voice connection in one guild (survives a resume; replaced on a new identify)."""

    guild_id: int
    user_id: int
    session_id: str
    channel_id: int
    token: str
    ssrc: int
    secret_key: bytes = field(default_factory=lambda: os.urandom(32))
    mode: str | None = None
    address: tuple[str, int] | None = None
    participant: Participant | None = None
    tx_counter: int = 0  # nonce counter of the packets the SFU sends to this user
    # This receiver's view of each sender's sequence numbers: sender SSRC -> offset added to them.
    sequence_offsets: dict[int, int] = field(default_factory=dict)
    speaking_sent: bool = False
    packets_in: int = 0
    speaking_policy: SpeakingPolicy = field(default_factory=SpeakingPolicy)
    resume_behaviour: str | None = None  # forced answer to the next resume (else the realism's choice)
    endpoint: int = 0  # index of the voice server (TLS gateway + UDP socket) this session is on
    last_heard: float = 0.0  # loop time of the last datagram from `address` (the NAT/SFU mapping)

    @property
    def ready_for_media(self) -> bool:
        return self.mode is not None and self.address is not None


@dataclass
class Room:
    """The participants of one voice channel and their DAVE group."""

    channel_id: int
    coordinator: DaveCoordinator
    sessions: dict[int, VoiceSession] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
