"""The voice server's side of DAVE, for the fake Discord: one copy, in `bot.voice.dave_server` (the
bench builds its DAVE groups with it too); re-exported here under the names the fakes and tests use."""

from bot.voice.dave_server import (
    OP_ANNOUNCE_COMMIT,
    OP_EXECUTE_TRANSITION,
    OP_EXTERNAL_SENDER,
    OP_PREPARE_EPOCH,
    OP_PREPARE_TRANSITION,
    OP_PROPOSALS,
    OP_WELCOME,
    DaveCoordinator,
    DaveSessionDriver,
    ExternalSender,
    LocalDaveGroup,
    Outgoing,
    dave_group,
    read_varint,
    split_commit_welcome,
    varint,
    vec,
)

__all__ = [
    "OP_ANNOUNCE_COMMIT",
    "OP_EXECUTE_TRANSITION",
    "OP_EXTERNAL_SENDER",
    "OP_PREPARE_EPOCH",
    "OP_PREPARE_TRANSITION",
    "OP_PROPOSALS",
    "OP_WELCOME",
    "DaveCoordinator",
    "DaveSessionDriver",
    "ExternalSender",
    "LocalDaveGroup",
    "Outgoing",
    "dave_group",
    "read_varint",
    "split_commit_welcome",
    "varint",
    "vec",
]
