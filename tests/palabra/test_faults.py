"""The fault table's Palabra rows, over real loopback HTTP and WebSocket against the emulator's fault
injection: WebSocket aborted (no close frame) and closed with 1011 mid-utterance; REST 5xx and 429
bursts, 401, insufficient balance and the parallel-session limit at start. Each test prints its figure
(`FIGURE ...`, run with -s to see it) and asserts the bound the README states."""

from __future__ import annotations

import asyncio
import time

import pytest
import soxr

from bot.palabra import protocol as p
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.emulator.streaming import STREAM_LOGS
from bot.palabra.errors import (
    AuthenticationError,
    InsufficientBalanceError,
    ParallelSessionLimitError,
    RateLimitedError,
    ServerError,
)
from bot.palabra.streaming import StreamingSession
from bot.palabra.task import build_task
from tests.fakes.audio import bursts, from_pcm, windowed_xcorr
from tests.fakes.secrets import PALABRA_CLIENT_ID, PALABRA_CLIENT_SECRET

pytestmark = pytest.mark.timeout(60)

RATE = 16000
SPEED = 4.0
APP = Credentials.app(PALABRA_CLIENT_ID, PALABRA_CLIENT_SECRET)
# The drop comes 1 s of wall time (4 s of audio) in, in the middle of the 2.5-5.5 s utterance.
PATTERN = [
    ("silence", 0.5),
    ("tone", 1.0),
    ("silence", 1.0),
    ("tone", 3.0),
    ("silence", 1.0),
    ("noise", 1.0),
    ("silence", 1.0),
]
UTTERANCES = [(0.5, 1.5), (2.5, 5.5), (6.5, 7.5)]


def config(**overrides) -> EmulatorConfig:
    values = {"client_credentials": {PALABRA_CLIENT_ID: PALABRA_CLIENT_SECRET}, "time_scale": SPEED}
    values.update(overrides)
    return EmulatorConfig(**values)


async def start(emu, **kwargs) -> StreamingSession:
    return await StreamingSession.start(
        credentials=APP, task=build_task("en", ["es"]), api_url=emu.base_url, pace=SPEED, ready_timeout=10.0, **kwargs
    )


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def heard_scores(events, pcm) -> list[float]:
    """Per finished utterance: correlation of the translated audio with the input it came from."""
    scores = []
    for validated in of(events, p.ValidatedTranscription):
        source = from_pcm(pcm)[int(validated.start * RATE) : int(validated.end * RATE)]
        audio = b"".join(a.pcm for a in of(events, p.OutputAudio) if a.transcription_id == validated.transcription_id)
        score, _lag = windowed_xcorr(from_pcm(audio), soxr.resample(source, RATE, 24000))
        scores.append(score)
    return scores


@pytest.mark.parametrize(("fault", "close_code"), [("aborted, no close frame", None), ("closed with 1011", 1011)])
async def test_websocket_drop_mid_utterance_reconnects_fast_and_loses_nothing(fault, close_code):
    pcm = bursts(RATE, PATTERN)
    fault_config = config(drop_after_s=1.0, drop_count=1, drop_close_code=close_code, pacing_warnings=False)
    async with serve(fault_config) as emu:
        session = await start(emu, max_reconnects=3)
        reader = asyncio.create_task(_collect(session))
        await session.send_audio(pcm)
        await session.end(timeout=20)
        events = await asyncio.wait_for(reader, 5)
        assert emu.runner.app[STREAM_LOGS][1].dropped
        first, second = emu.state.streams
        assert emu.state.sessions == {second.session_id: emu.state.sessions[second.session_id]}  # dropped one deleted
    if close_code is not None:
        assert first.close_code == close_code
    heard_before_drop = len(first.input_pcm) / 2 / RATE
    assert 2.5 < heard_before_drop < 5.5  # the drop came in the middle of the second utterance
    validated = of(events, p.ValidatedTranscription)
    assert [(round(v.start, 1), round(v.end, 1)) for v in validated] == UTTERANCES  # none lost, one timeline
    outage = session.stats.outages_s
    scores = heard_scores(events, pcm)
    print(
        f"FIGURE Palabra WebSocket {fault}: reconnect {outage[0]:.2f} s, {len(validated)}/3 finals, "
        f"translation correlation min {min(scores):.2f}"
    )
    assert len(outage) == 1 and outage[0] <= 2.0
    assert min(scores) >= 0.9  # the interrupted utterance's translation is heard again, whole


async def _collect(session: StreamingSession) -> list[p.Event]:
    return [event async for event in session]


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, 1.0)])
async def test_rest_burst_at_start_is_retried_and_retry_after_is_honoured(status, retry_after):
    async with serve(config(rest_fail_first=3, rest_fail_status=status)) as emu:
        started = time.monotonic()
        session = await start(emu)
        waited = time.monotonic() - started
        await session.close()
        assert emu.state.rest_calls == 4  # three refused, the fourth created the session
    print(f"FIGURE Palabra REST {status} x3 at start: started after {waited:.2f} s")
    if retry_after:
        assert waited >= 3 * retry_after - 0.05  # each retry waited out Retry-After, not the ~0.5 s backoff


def _insufficient_balance(emu) -> None:
    emu.state.insufficient_balance = True


def _parallel_limit(emu) -> None:
    emu.state.config.max_parallel_sessions = 0


def _fail_all(status: int):
    def fail(emu) -> None:
        emu.state.config.update({"rest_fail_first": 100, "rest_fail_status": status})

    return fail


@pytest.mark.parametrize(
    ("fault", "expected", "told"),
    [
        (_fail_all(401), AuthenticationError, "refused the bot's credentials"),
        (_insufficient_balance, InsufficientBalanceError, "out of balance"),
        (_parallel_limit, ParallelSessionLimitError, "limit of parallel sessions"),
        (_fail_all(503), ServerError, "outage (HTTP 503)"),
        (_fail_all(429), RateLimitedError, "rate limiting the bot; try again in 1 s"),
    ],
)
async def test_rest_refusal_at_start_is_exactly_itself(fault, expected, told):
    async with serve(config()) as emu:
        fault(emu)
        with pytest.raises(expected) as info:
            await start(emu)
        assert emu.state.streams == [] and emu.state.sessions == {}  # nothing half-started
    assert type(info.value) is expected and told in info.value.user_message
    print(f"FIGURE Palabra REST {expected.__name__} at start: told {info.value.user_message!r}")
