"""The fake Discord's adversarial mode: `FakeDiscord(realism=SEED)`, every choice drawn from one seeded
RNG so a failing seed replays. `realism=None` keeps the deterministic, in-order behaviour.

What a seed varies (all within what Discord's protocol allows; see the package docstring):
- clients ready at different times: READY after a per-account delay (the first bot, the listener,
  quickly; the others 0.8-3 s later, as speaker bots logging in after it), GUILD_CREATE a little later;
- op 5 (SPEAKING, the SSRC -> user mapping) per voice session: on time, only after the sender's Nth
  packet, or never (receivers must find the sender by trial decryption);
- the order of VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE when a connected bot re-sends op 4 (Discord
  gives no order; discord.py's resume waits for both in a state-dependent way);
- what a voice resume (op 7 after close 4015) gets back: op 9 + a new op 4 (what discord.py 2.7.1
  needs), op 9 alone (the documented minimum), op 9 + op 4 seconds late, nothing, or close 4006.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Answers to a voice resume (op 7).
RESUME_FULL = "full"  # op 9 Resumed, then a new op 4 Session Description and the DAVE external sender
RESUME_RESUMED_ONLY = "resumed_only"  # op 9 alone: the session carries on with its key
RESUME_LATE = "late"  # op 9 and op 4, but only after RESUME_LATE_S
RESUME_SILENT = "silent"  # heartbeats answered, nothing else
RESUME_INVALID = "invalid"  # close 4006: the session is gone
RESUME_BEHAVIOURS = (RESUME_FULL, RESUME_RESUMED_ONLY, RESUME_LATE, RESUME_SILENT, RESUME_INVALID)
RESUME_LATE_S = 4.0

SPEAKING_ON_TIME, SPEAKING_LATE, SPEAKING_NEVER = "on_time", "late", "never"


@dataclass(frozen=True)
class SpeakingPolicy:
    when: str = SPEAKING_ON_TIME
    after_packets: int = 0  # for SPEAKING_LATE: announce at the sender's Nth relayed packet


class Realism:
    """Seeded choices of the fake; with `seed=None` every answer is today's deterministic one."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self.forced_server_update_first: bool | None = None  # a test may pin this one choice
        self.log: list[tuple[str, object]] = []  # (decision, value): printed by tests on failure

    @property
    def enabled(self) -> bool:
        return self.seed is not None

    def _note(self, what: str, value: object) -> None:
        self.log.append((what, value))

    def ready_delays(self, bot_index: int) -> tuple[float, float]:
        """(seconds before READY, further seconds before GUILD_CREATE) for the bot with this index."""
        if not self.enabled:
            return 0.0, 0.0
        ready = self._rng.uniform(0.0, 0.3) if bot_index == 0 else self._rng.uniform(0.8, 3.0)
        guild = self._rng.uniform(0.0, 0.5)
        self._note(f"ready_delays[{bot_index}]", (round(ready, 3), round(guild, 3)))
        return ready, guild

    def speaking_policy(self, user_id: int) -> SpeakingPolicy:
        if not self.enabled:
            return SpeakingPolicy()
        when = self._rng.choice((SPEAKING_ON_TIME, SPEAKING_LATE, SPEAKING_NEVER))
        policy = SpeakingPolicy(when, self._rng.randint(3, 60) if when == SPEAKING_LATE else 0)
        self._note(f"speaking[{user_id}]", policy)
        return policy

    def server_update_first(self) -> bool:
        """For a connected bot's repeated op 4: VOICE_SERVER_UPDATE before VOICE_STATE_UPDATE?"""
        if self.forced_server_update_first is not None:
            return self.forced_server_update_first
        if not self.enabled:
            return True  # what discord.py's resume path handles
        first = self._rng.random() < 0.5
        self._note("server_update_first", first)
        return first

    def resume_behaviour(self) -> str:
        if not self.enabled:
            return RESUME_FULL
        behaviour = self._rng.choice(RESUME_BEHAVIOURS)
        self._note("resume", behaviour)
        return behaviour

    def uniform(self, low: float, high: float) -> float:
        return self._rng.uniform(low, high) if self.enabled else low

    def chance(self, probability: float) -> bool:
        return self.enabled and self._rng.random() < probability
