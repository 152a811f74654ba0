"""The two dialects of Palabra's streaming protocol, and how a new socket's task is known to run.

Sources, where they disagree. Chunk length: Palabra's publishing page says 320 ms is optimal (docs).
Readiness: SDK 2.2 waits for a pushed `task_status`; the 2026-09 live probe got none and had to poll
`get_task` (the probe wins over the SDK), so "auto" accepts the ack and polls. Ending: the docs
describe `end_task {eos_timeout, force}` answered by `eos`; the live probe saw `end_task {}` answered
by `end_of_stream` (the probe wins), so "auto" sends `{}` and either end message is accepted;
"legacy" sends the docs' form. Interrupt: the docs' management page (cited in our notes; not among
the primary pages) names `flush_task`, SDK >= 2.1.1 `interrupt_task`; no probe covered it. "auto"
keeps Palabra's newest SDK's name, "legacy" the docs'. The product itself never interrupts.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Literal

from bot.palabra import protocol as p
from bot.palabra.errors import PalabraError
from bot.palabra.task import rejection

Dialect = Literal["auto", "current", "legacy"]
DIALECTS = ("auto", "current", "legacy")
POLL_INTERVAL_S = 2.1  # get_task while waiting for the task; shares set_task's 1-per-2-s budget
LEGACY_EOS_TIMEOUT = 4


class Handshake(enum.Enum):
    READY = "ready"  # the task runs (the event is also for the caller: a task_status ack)
    READY_CONSUMED = "ready_consumed"  # the task runs (the event was only the answer to a poll)
    CONSUMED = "consumed"  # an answer to the handshake, nothing more
    OTHER = "other"  # not about the handshake


def handshake_event(event: p.Event, task: dict[str, Any]) -> tuple[Handshake, PalabraError | None]:
    """What an event that arrives before the task runs means, and the refusal it carries if any."""
    if isinstance(event, p.TaskStatus) and event.confirms_task:
        return Handshake.READY, None
    if isinstance(event, p.CurrentTask) and event.status in ("running", "paused"):
        return Handshake.READY_CONSUMED, None
    if isinstance(event, p.ErrorMessage):
        if event.code == "NOT_FOUND":  # get_task before the task exists
            return Handshake.CONSUMED, None
        return Handshake.CONSUMED, rejection(event.code, event.desc, event.param, task)
    return Handshake.OTHER, None


def polls(dialect: Dialect) -> bool:
    return dialect != "current"


def poll_at(opened_at: float, last_task_command: float | None) -> float:
    """When to ask `get_task` next while the task is not known to run."""
    return (opened_at if last_task_command is None else last_task_command) + POLL_INTERVAL_S


def end_command(dialect: Dialect) -> p.EndTask:
    return p.EndTask(eos_timeout=LEGACY_EOS_TIMEOUT, force=False) if dialect == "legacy" else p.EndTask()


def interrupt_command(dialect: Dialect, languages: Sequence[str] | None) -> p.Command:
    command_cls = p.FlushTask if dialect == "legacy" else p.InterruptTask
    return command_cls(tuple(languages) if languages else ("global",))
