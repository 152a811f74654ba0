"""Behaviour switches of the emulator: protocol dialect, limits and fault injection.

Set from CLI flags (`python -m bot emulator --help`) or at run time through the admin endpoint
`POST /_emulator/config` with a JSON object of these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from bot.palabra.task import COMMAND_RATE_LIMITS


@dataclass
class EmulatorConfig:
    # Dialect: SDK >= 2.2 gets task_status acks; the 2026-09 live probe saw none (get_task polling).
    ack_task_status: bool = True
    # "end_of_stream" (SDK >= 2.1.1) or "eos" (docs, SDK <= 2.1.0).
    end_message: str = "end_of_stream"
    # Credentials accepted by REST (ClientID/ClientSecret pairs, and platform API keys).
    client_credentials: dict[str, str] = field(default_factory=dict)  # client_id -> client_secret
    api_keys: set[str] = field(default_factory=set)
    # Limits.
    max_parallel_sessions: int = 10
    session_ttl_s: float = 3600.0
    audio_timeout_s: float = 10.0  # SERVICE_TIMEOUT + close 1008 after this long without audio
    ws_connections_per_minute: int = 20
    # Palabra's published per-command intervals, the same table the client paces itself by.
    command_interval_s: dict[str, float] = field(
        default_factory=lambda: {command: interval for command, (_, interval) in COMMAND_RATE_LIMITS.items()}
    )
    enforce_command_rate_limits: bool = True
    pacing_warnings: bool = True
    # Deterministic "translation".
    vad_threshold_dbfs: float = -45.0
    partial_interval_s: float = 0.25
    output_chunk_s: float = 0.2
    time_scale: float = 1.0  # >1 when a client streams faster than real time (simulate --speed)
    # Fault injection.
    drop_after_s: float | None = None  # close the next WebSocket abruptly this long after set_task
    drop_count: int = 0  # how many connections to drop (0 = every one while drop_after_s is set)
    drop_close_code: int | None = None  # None: abort the TCP connection (no close frame); else close with it
    rest_fail_first: int = 0  # fail the first K REST calls ...
    rest_fail_status: int = 503  # ... with this status (429 adds Retry-After)
    processing_delay_s: float = 0.0  # added before emitting each utterance's results
    task_start_delay_s: float = 0.0  # get_task answers NOT_FOUND this long after set_task
    # Seeded realism (realism.py): None = the deterministic behaviour above; a seed = per-utterance
    # delays within realism_delay_s (real seconds, divided by time_scale like every realism timing),
    # any result order, parts, bursts, duplicates, unknown messages. Read when a connection's task
    # starts, so a change reaches the next connection.
    realism: int | None = None
    realism_delay_s: tuple[float, float] = (0.0, 7.0)

    def __post_init__(self) -> None:
        self._check_realism()

    def _check_realism(self) -> None:
        low, high = self.realism_delay_s
        if not 0 <= low <= high:
            raise ValueError(f"realism_delay_s must be (min, max) with 0 <= min <= max, got {self.realism_delay_s}")
        if self.realism is not None and (isinstance(self.realism, bool) or not isinstance(self.realism, int)):
            raise ValueError(f"realism must be an integer seed or None, got {self.realism!r}")

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown emulator settings: {', '.join(sorted(unknown))}")
        converted = {name: _convert(name, value) for name, value in values.items()}
        replace(self, **converted)  # validates the result before anything changes
        for name, value in converted.items():
            setattr(self, name, value)


def _convert(name: str, value: Any) -> Any:
    """JSON has no sets or tuples."""
    if name == "api_keys":
        return set(value)
    if name == "realism_delay_s":
        return tuple(value)
    return value
