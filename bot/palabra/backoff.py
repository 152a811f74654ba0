"""Reconnect and retry delays: a pure, seeded generator, so schedules are testable without sleeping."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(rng: random.Random, *, base: float = 0.25, cap: float = 8.0) -> Iterator[float]:
    """Delays before attempt 1, 2, 3…: `min(cap, base * 2**k)` scaled by a jitter factor in [0.5, 1).

    The jitter keeps many clients that lost the same server from coming back in lockstep; the
    lower bound of half the nominal delay keeps a burst of failures from turning into a busy loop.
    """
    if base <= 0 or cap < base:
        raise ValueError(f"need 0 < base <= cap, got base={base}, cap={cap}")
    attempt = 0
    while True:
        yield min(cap, base * 2**attempt) * rng.uniform(0.5, 1.0)
        attempt += 1
