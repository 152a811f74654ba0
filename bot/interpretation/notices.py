"""Telling people in text when the bot cannot hear someone.

The receiver reports a `DecryptFailure` on the first failure of a run and every 25th after it. The
first few failures right after someone joins are normal (the DAVE group is still forming), so a notice
goes out only once a run is long enough to mean lost speech, and at most once per person per interval
so a broken connection does not flood the channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.voice.receive import DecryptFailure

log = logging.getLogger(__name__)

MIN_CONSECUTIVE = 25  # about half a second of one person's audio
NOTICE_INTERVAL_S = 300.0

_REASONS = {
    "transport": "the voice connection's encryption",
    "dave": "Discord's end-to-end encryption (DAVE)",
}


class DecryptFailureNotices:
    def __init__(
        self,
        send: Callable[[str], Awaitable[object]],
        name_of: Callable[[int | None], str],
        *,
        min_consecutive: int = MIN_CONSECUTIVE,
        interval_s: float = NOTICE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send, self._name_of = send, name_of
        self.min_consecutive, self.interval_s, self._clock = min_consecutive, interval_s, clock
        self._last_notice: dict[int | None, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def __call__(self, failure: DecryptFailure) -> None:
        """Called on the event loop by the receiver for each reported failure."""
        text = self.notice_for(failure)
        if text is None:
            return
        task = asyncio.ensure_future(self._deliver(text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def notice_for(self, failure: DecryptFailure) -> str | None:
        if failure.consecutive < self.min_consecutive:
            return None
        now = self._clock()
        last = self._last_notice.get(failure.user_id)
        if last is not None and now - last < self.interval_s:
            return None
        self._last_notice[failure.user_id] = now
        who = self._name_of(failure.user_id) if failure.user_id is not None else "someone in this channel"
        why = _REASONS.get(failure.stage, "encryption")
        return (
            f"⚠️ I can't decrypt the voice of {who} ({why}: {failure.reason}), so their speech is not "
            "being interpreted right now. Leaving and rejoining the voice channel usually fixes it."
        )

    async def _deliver(self, text: str) -> None:
        try:
            await self._send(text)
            self.sent += 1
        except Exception as exc:  # the channel may be gone or not writable: the log still says it
            log.warning("could not post a decryption notice: %s", exc)
