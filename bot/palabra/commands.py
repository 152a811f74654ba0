"""Commands for Palabra's WebSocket, in order, each let out once its rate-limit budget on the current
socket allows (sans-I/O: time comes in as arguments). The budgets are bot.palabra.task's."""

from __future__ import annotations

from collections import deque

from bot.palabra import protocol as p
from bot.palabra.task import COMMAND_RATE_LIMITS

RATE_LIMIT_MARGIN_S = 0.05  # keep clear of the server's own measurement of the interval


class CommandQueue:
    def __init__(self) -> None:
        self._queue: deque[p.Command] = deque()
        self._last: dict[str, float] = {}  # rate-limit budget -> when it was last spent on this socket

    def __len__(self) -> int:
        return len(self._queue)

    def append(self, command: p.Command) -> None:
        self._queue.append(command)

    def new_socket(self) -> None:
        """A socket closed: what was queued is moot and a new socket starts with fresh budgets."""
        self._queue.clear()
        self._last.clear()

    def last_sent(self, budget: str) -> float | None:
        return self._last.get(budget)

    def slot(self, command: p.Command) -> float:
        """Earliest time `command` may go out on the current socket."""
        limit = COMMAND_RATE_LIMITS.get(command.message_type)
        if limit is None:
            return float("-inf")
        budget, interval = limit
        last = self._last.get(budget)
        return float("-inf") if last is None else last + interval + RATE_LIMIT_MARGIN_S

    def next_slot(self) -> float | None:
        return self.slot(self._queue[0]) if self._queue else None

    def due(self, now: float) -> list[p.Command]:
        """The queued commands that may go out at `now`, in order (their budgets are spent)."""
        out: list[p.Command] = []
        while self._queue and self.slot(self._queue[0]) <= now:
            command = self._queue.popleft()
            limit = COMMAND_RATE_LIMITS.get(command.message_type)
            if limit is not None:
                self._last[limit[0]] = now
            out.append(command)
        return out
