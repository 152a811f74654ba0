"""The voice server's side of DAVE: it is the MLS *external sender* that makes every client of one
voice channel (real discord.py clients and simulated users alike) share one MLS group.

Used by `python -m bot bench` (`dave_group`) and by the fake Discord's voice server (`DaveCoordinator`).

Sans-I/O: `DaveCoordinator` consumes what clients send (key packages, commit+welcome, transition
ready, leaves) and returns `Outgoing` messages addressed to user ids; the voice gateway (or the
in-process driver `dave_group`) only moves them.

Wire structures (RFC 9420, TLS presentation language, `<V>` = MLS varint length prefix) are
hand-serialised; only the few the server produces are needed:

- op 25 ExternalSender: `signature_key<V> | u16 credential_type=1 (basic) | identity<V>`
- op 27 proposals: `u8 0 (append) | MLSMessage proposals<V>`; each MLSMessage is a PublicMessage
  `u16 version=1 | u16 wire_format=1 | FramedContent | signature<V>` with
  FramedContent `group_id<V> | u64 epoch | u8 sender_type=2 (external) | u32 sender_index=0 |
  authenticated_data<V> | u8 content_type=2 (proposal) | Proposal`, Proposal `u16 1 | KeyPackage`
  (add) or `u16 3 | u32 leaf_index` (remove); signed with ECDSA P-256/SHA-256 over
  `SignContent{label<V>="MLS 1.0 FramedContentTBS", content<V>=u16 1|u16 1|FramedContent}`.
- op 29 `u16 transition_id | commit`, op 30 `u16 transition_id | welcome`.

Group bookkeeping: the server never sees inside the group, so it mirrors the ratchet tree's leaf
occupancy (removes blank a leaf; each add takes the leftmost blank leaf, else a new one at the end)
to name leaves in remove proposals. One proposal batch is outstanding at a time; it goes to every
member (a commit names proposals by reference, so all must have stored them), and the commit of the
member on the lowest leaf is the one announced (the others' are ignored, as Discord keeps the first).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

# Voice gateway opcodes the coordinator emits.
OP_PREPARE_TRANSITION = 21
OP_EXECUTE_TRANSITION = 22
OP_PREPARE_EPOCH = 24
OP_EXTERNAL_SENDER = 25
OP_PROPOSALS = 27
OP_ANNOUNCE_COMMIT = 29
OP_WELCOME = 30

_MLS_VERSION = 1
_WIRE_PUBLIC_MESSAGE = 1
_WIRE_WELCOME = 3
_SENDER_EXTERNAL = 2
_CONTENT_PROPOSAL = 2
_PROPOSAL_ADD = 1
_PROPOSAL_REMOVE = 3
_CREDENTIAL_BASIC = 1
_DAVE_CIPHERSUITE = 2  # MLS_128_DHKEMP256_AES128GCM_SHA256_P256
_SIGN_LABEL = b"MLS 1.0 FramedContentTBS"


# --- TLS / MLS serialisation ------------------------------------------------------------------------


def varint(length: int) -> bytes:
    """RFC 9420 §2.1.2 variable-length integer (used as the length prefix of `<V>` vectors)."""
    if length < 0x40:
        return bytes([length])
    if length < 0x4000:
        return struct.pack(">H", 0x4000 | length)
    if length < 0x40000000:
        return struct.pack(">I", 0x80000000 | length)
    raise ValueError(f"vector too long for an MLS varint: {length} bytes")


def vec(data: bytes) -> bytes:
    return varint(len(data)) + data


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """(value, offset after it); raises ValueError if the buffer is too short or the prefix invalid."""
    if offset >= len(data):
        raise ValueError("truncated varint")
    prefix = data[offset] >> 6
    if prefix == 0:
        return data[offset], offset + 1
    if prefix == 1:
        if offset + 2 > len(data):
            raise ValueError("truncated varint")
        return struct.unpack_from(">H", data, offset)[0] & 0x3FFF, offset + 2
    if prefix == 2:
        if offset + 4 > len(data):
            raise ValueError("truncated varint")
        return struct.unpack_from(">I", data, offset)[0] & 0x3FFFFFFF, offset + 4
    raise ValueError("invalid varint prefix")


def _skip_vec(data: bytes, offset: int) -> int:
    length, offset = read_varint(data, offset)
    if offset + length > len(data):
        raise ValueError("vector runs past the end")
    return offset + length


def split_commit_welcome(data: bytes) -> tuple[bytes, bytes | None]:
    """Split op 28's payload: a commit MLSMessage immediately followed by an optional Welcome.

    The Welcome is `[u16 1 | u16 3] | u16 cipher_suite | secrets<V> | encrypted_group_info<V>`, so it
    is found by scanning back from the end for the ciphersuite whose two vectors end exactly at the
    end of the buffer (the commit itself is not parsed).
    """
    suite = struct.pack(">H", _DAVE_CIPHERSUITE)
    for start in range(len(data) - 4, 0, -1):
        if data[start : start + 2] != suite:
            continue
        try:
            end = _skip_vec(data, _skip_vec(data, start + 2))
        except ValueError:
            continue
        if end != len(data):
            continue
        header = struct.pack(">HH", _MLS_VERSION, _WIRE_WELCOME)
        cut = start - 4 if data[start - 4 : start] == header else start
        if cut == 0:
            break
        return data[:cut], data[cut:]
    return data, None


# --- the external sender -----------------------------------------------------------------------------


class ExternalSender:
    """The server's P-256 signing identity and the proposals it signs."""

    def __init__(self, identity: bytes = b"fake-discord-voice") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.identity = identity

    @property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def package(self) -> bytes:
        """op 25 payload."""
        return vec(self.public_key) + struct.pack(">H", _CREDENTIAL_BASIC) + vec(self.identity)

    def add_proposal(self, group_id: bytes, epoch: int, key_package: bytes) -> bytes:
        return self._proposal_message(group_id, epoch, struct.pack(">H", _PROPOSAL_ADD) + key_package)

    def remove_proposal(self, group_id: bytes, epoch: int, leaf_index: int) -> bytes:
        return self._proposal_message(group_id, epoch, struct.pack(">HI", _PROPOSAL_REMOVE, leaf_index))

    def _proposal_message(self, group_id: bytes, epoch: int, proposal: bytes) -> bytes:
        content = (
            vec(group_id)
            + struct.pack(">QBI", epoch, _SENDER_EXTERNAL, 0)
            + vec(b"")
            + bytes([_CONTENT_PROPOSAL])
            + proposal
        )
        header = struct.pack(">HH", _MLS_VERSION, _WIRE_PUBLIC_MESSAGE)
        to_sign = vec(_SIGN_LABEL) + vec(header + content)
        signature = self._key.sign(to_sign, ec.ECDSA(hashes.SHA256()))
        return header + content + vec(signature)


# --- the coordinator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """A message for one user: binary ops carry `payload` bytes (without the seq/op prefix the voice
    gateway adds); JSON ops carry a dict."""

    user_id: int
    op: int
    payload: bytes | dict[str, Any]


@dataclass
class _Batch:
    committer: int
    removes: list[int]  # leaf indices
    adds: list[tuple[int, bytes]]  # (user id, key package)


@dataclass
class _Transition:
    recipients: set[int]
    waiting: set[int] = field(default_factory=set)


class DaveCoordinator:
    """MLS group membership for one voice channel, from the external sender's point of view."""

    def __init__(self, channel_id: int, sender: ExternalSender | None = None) -> None:
        self.channel_id = channel_id
        self.group_id = struct.pack(">Q", channel_id)
        self.sender = sender or ExternalSender()
        self.epoch = 0
        self._leaves: list[int | None] = []  # ratchet tree leaf -> user id (None = blank)
        self._removing: set[int] = set()  # leaves proposed or queued for removal
        self._joiners: dict[int, bytes] = {}  # user id -> newest key package, not yet proposed
        self._batch: _Batch | None = None
        self._transitions: dict[int, _Transition] = {}
        self._next_transition = 1
        self.commits = 0

    # -- queries

    @property
    def members(self) -> dict[int, int]:
        """user id -> leaf index, for members in the group and not being removed."""
        return {user: leaf for leaf, user in enumerate(self._leaves) if user is not None and leaf not in self._removing}

    @property
    def settled(self) -> bool:
        """No proposal outstanding, nobody waiting to join, no transition waiting for readiness."""
        return self._batch is None and not self._joiners and not self._removing and not self._transitions

    def external_sender_package(self) -> bytes:
        return self.sender.package()

    # -- inputs

    def key_package(self, user_id: int, key_package: bytes) -> list[Outgoing]:
        """op 26 from a client (first join, or a re-initialised session replacing its old leaf)."""
        out = self._abort_batch_of(user_id)
        self._drop_leaf_of(user_id)
        if not self._has_group():
            self._found(user_id)
            return out + self._propose()
        self._joiners[user_id] = key_package
        return out + self._propose()

    def leave(self, user_id: int) -> list[Outgoing]:
        """The user left the channel (or its voice session ended)."""
        out = self._abort_batch_of(user_id)
        self._joiners.pop(user_id, None)
        self._drop_leaf_of(user_id)
        for tid in list(self._transitions):
            out += self._ready(user_id, tid)
        if not self.members:
            self._reset()
            return out + self._refound()
        return out + self._propose()

    def commit_welcome(self, user_id: int, data: bytes) -> list[Outgoing]:
        """op 28 from the committer."""
        batch = self._batch
        if batch is None or batch.committer != user_id:
            log.info("ignoring a commit from user %s: no proposals outstanding for it", user_id)
            return []
        commit, welcome = split_commit_welcome(data)
        if batch.adds and welcome is None:
            raise ValueError("commit adds members but op 28 carries no Welcome")
        self._batch = None
        existing = [user for user in self.members]
        for leaf in batch.removes:
            self._leaves[leaf] = None
            self._removing.discard(leaf)
        added = [user for user, _ in batch.adds]
        for user in added:
            self._place(user)
        self._trim()
        self.epoch += 1
        self.commits += 1
        tid = self._new_transition(set(existing) | set(added))
        prefix = struct.pack(">H", tid)
        out = [Outgoing(user, OP_ANNOUNCE_COMMIT, prefix + commit) for user in existing]
        out += [Outgoing(user, OP_WELCOME, prefix + welcome) for user in added if welcome is not None]
        # A key package that arrived while its owner's previous one was being added replaces it.
        for user in added:
            if user in self._joiners:
                self._drop_leaf_of(user)
        return out + self._propose()

    def transition_ready(self, user_id: int, transition_id: int) -> list[Outgoing]:
        """op 23 from a client."""
        return self._ready(user_id, transition_id)

    def prepare_transition(self, protocol_version: int, user_ids: list[int]) -> list[Outgoing]:
        """op 21 to `user_ids` (e.g. a downgrade to protocol version 0); op 22 follows once all have
        answered op 23."""
        tid = self._new_transition(set(user_ids))
        payload = {"protocol_version": protocol_version, "transition_id": tid}
        return [Outgoing(user, OP_PREPARE_TRANSITION, payload) for user in user_ids]

    def prepare_epoch(self, protocol_version: int, user_ids: list[int]) -> list[Outgoing]:
        """op 24 with epoch 1: everyone re-initialises and sends a new key package; a new group forms
        from scratch (used to upgrade back to DAVE after a downgrade)."""
        self._reset()
        self._joiners.clear()
        self._transitions.clear()
        payload = {"protocol_version": protocol_version, "epoch": 1}
        return [Outgoing(user, OP_PREPARE_EPOCH, payload) for user in user_ids]

    def invalid_commit(self, user_id: int, transition_id: int) -> list[Outgoing]:
        """op 31: the client could not process a commit/welcome; it re-initialises and sends a new
        key package (handled by `key_package`)."""
        log.warning("user %s reported an invalid commit/welcome for transition %s", user_id, transition_id)
        return self._ready(user_id, transition_id)

    # -- internals

    def _has_group(self) -> bool:
        return any(user is not None for user in self._leaves)

    def _found(self, user_id: int) -> None:
        """A lone member's session has made its own one-member group at epoch 0."""
        self._leaves = [user_id]
        self.epoch = 0

    def _reset(self) -> None:
        self._leaves = []
        self._removing.clear()
        self._batch = None
        self.epoch = 0

    def _refound(self) -> list[Outgoing]:
        if not self._joiners:
            return []
        founder = next(iter(self._joiners))
        del self._joiners[founder]
        self._found(founder)
        return self._propose()

    def _drop_leaf_of(self, user_id: int) -> None:
        for leaf, user in enumerate(self._leaves):
            if user == user_id:
                self._removing.add(leaf)

    def _abort_batch_of(self, user_id: int) -> list[Outgoing]:
        """The committer went away or re-initialised: its commit will never come; re-queue the batch."""
        batch = self._batch
        if batch is None or batch.committer != user_id:
            return []
        self._batch = None
        for user, key_package in batch.adds:
            self._joiners.setdefault(user, key_package)
        return []

    def _place(self, user_id: int) -> None:
        for leaf, user in enumerate(self._leaves):
            if user is None and leaf not in self._removing:
                self._leaves[leaf] = user_id
                return
        self._leaves.append(user_id)

    def _trim(self) -> None:
        while self._leaves and self._leaves[-1] is None:
            self._leaves.pop()

    def _propose(self) -> list[Outgoing]:
        if self._batch is not None or not (self._joiners or self._removing):
            return []
        members = self.members
        if not members:
            return []
        committer = min(members, key=members.__getitem__)
        removes = sorted(self._removing)
        adds = list(self._joiners.items())
        self._joiners.clear()
        self._batch = _Batch(committer, removes, adds)
        messages = [self.sender.remove_proposal(self.group_id, self.epoch, leaf) for leaf in removes]
        messages += [self.sender.add_proposal(self.group_id, self.epoch, kp) for _, kp in adds]
        payload = bytes([0]) + vec(b"".join(messages))
        # Every member must store the proposals: the commit refers to them by reference.
        return [Outgoing(user, OP_PROPOSALS, payload) for user in sorted(members, key=members.__getitem__)]

    def _new_transition(self, recipients: set[int]) -> int:
        tid = self._next_transition
        self._next_transition = tid + 1 if tid < 0xFFFF else 1
        self._transitions[tid] = _Transition(recipients, set(recipients))
        return tid

    def _ready(self, user_id: int, transition_id: int) -> list[Outgoing]:
        transition = self._transitions.get(transition_id)
        if transition is None:
            return []
        transition.waiting.discard(user_id)
        if transition.waiting:
            return []
        del self._transitions[transition_id]
        payload = {"transition_id": transition_id}
        return [Outgoing(user, OP_EXECUTE_TRANSITION, payload) for user in sorted(transition.recipients)]


# --- an in-process group (unit tests, the bench) --------------------------------------------------


class DaveSessionDriver:
    """One davey.DaveSession driven as discord.py would: ops 25, 27 (answering 28), 29/30 (answering 23)."""

    def __init__(self, session: Any) -> None:  # a davey.DaveSession (davey ships no type hints)
        self.session = session

    def handle(self, message: Outgoing, coordinator: DaveCoordinator) -> list[Outgoing]:
        import davey

        session, user = self.session, self.session.user_id
        if isinstance(message.payload, dict):
            return []  # JSON ops (21, 22, 24) need no answer from an in-process group
        if message.op == OP_EXTERNAL_SENDER:
            session.set_external_sender(message.payload)
        elif message.op == OP_PROPOSALS:
            op_type = (
                davey.ProposalsOperationType.append if message.payload[0] == 0 else davey.ProposalsOperationType.revoke
            )
            result = session.process_proposals(op_type, message.payload[1:])
            if result is not None:
                data = result.commit + (result.welcome or b"")
                return coordinator.commit_welcome(user, data)
        elif message.op in (OP_ANNOUNCE_COMMIT, OP_WELCOME):
            transition_id = struct.unpack_from(">H", message.payload)[0]
            if message.op == OP_ANNOUNCE_COMMIT:
                session.process_commit(message.payload[2:])
            else:
                session.process_welcome(message.payload[2:])
            return coordinator.transition_ready(user, transition_id)
        return []


class LocalDaveGroup:
    """Davey sessions of one channel wired straight to a coordinator (no networking): join, leave and
    re-initialise members and watch the group re-form. `sessions[user_id]` is a davey.DaveSession."""

    def __init__(self, channel_id: int = 1_000_000_000_000_000_001) -> None:
        self.channel_id = channel_id
        self.coordinator = DaveCoordinator(channel_id)
        self._drivers: dict[int, DaveSessionDriver] = {}
        self._held: dict[int, list[Outgoing]] = {}  # user -> messages not yet delivered (a slow link)
        self._held_ops: dict[int, set[int] | None] = {}

    @property
    def sessions(self) -> dict[int, Any]:
        return {user: driver.session for user, driver in self._drivers.items()}

    def join(self, user_id: int) -> Any:
        import davey

        session = davey.DaveSession(davey.DAVE_PROTOCOL_VERSION, user_id, self.channel_id)
        self._drivers[user_id] = DaveSessionDriver(session)
        self.reinit(user_id)
        return session

    def reinit(self, user_id: int) -> None:
        """What discord.py does on every op 4 SESSION_DESCRIPTION: a fresh key package."""
        import davey

        session = self._drivers[user_id].session
        session.reinit(davey.DAVE_PROTOCOL_VERSION, user_id, self.channel_id)
        key_package = session.get_serialized_key_package()
        session.set_external_sender(self.coordinator.external_sender_package())
        self._deliver(self.coordinator.key_package(user_id, key_package))

    def leave(self, user_id: int) -> None:
        del self._drivers[user_id]
        self._deliver(self.coordinator.leave(user_id))

    def hold(self, user_id: int, ops: set[int] | None = None) -> None:
        """Keep this member's messages (or those with one of `ops`) back, as a slow link would."""
        self._held.setdefault(user_id, [])
        self._held_ops[user_id] = ops

    def release(self, user_id: int) -> None:  # deliver what `hold` kept back
        self._held_ops.pop(user_id, None)
        self._deliver(self._held.pop(user_id, []))

    def _deliver(self, pending: list[Outgoing]) -> None:
        queue = list(pending)
        while queue:
            message = queue.pop(0)
            if message.user_id in self._held:
                ops = self._held_ops.get(message.user_id)
                if ops is None or message.op in ops:
                    self._held[message.user_id].append(message)
                    continue
            driver = self._drivers.get(message.user_id)
            if driver is not None:
                queue.extend(driver.handle(message, self.coordinator))


def dave_group(user_ids: list[int], channel_id: int = 1_000_000_000_000_000_001) -> dict[int, Any]:
    """N davey sessions (user id -> davey.DaveSession) sharing one ready DAVE group, no networking.

    Every session can `encrypt_opus` and every other one `decrypt(sender_id, MediaType.audio, frame)`.
    """
    group = LocalDaveGroup(channel_id)
    for user_id in user_ids:
        group.join(user_id)
    sessions = group.sessions
    not_ready = [uid for uid, session in sessions.items() if len(user_ids) > 1 and not session.ready]
    if not_ready:
        raise RuntimeError(f"DAVE group did not form: sessions {not_ready} are not ready")
    return sessions
