"""Realism mode over real WebSockets: switched on by config or the admin endpoint, reproducible by seed."""

from __future__ import annotations

import base64
from collections import defaultdict

import aiohttp

from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.task import build_task
from tests.fakes.audio import bursts
from tests.fakes.palabra_ws import connect
from tests.fakes.secrets import PALABRA_API_KEY

RATE = 16000
PCM = bursts(RATE, [("tone", 0.8), ("silence", 0.9), ("noise", 0.6), ("silence", 0.9)])


def config(**overrides) -> EmulatorConfig:
    values = {
        "api_keys": {PALABRA_API_KEY},
        "enforce_command_rate_limits": False,
        "pacing_warnings": False,
        "realism_delay_s": (0.0, 0.4),
    }
    values.update(overrides)
    return EmulatorConfig(**values)


async def session_shape(emu) -> dict[str, list[tuple]]:
    """Per transcription id, what came in which shape; wall-clock jitter does not change it."""
    client = await connect(emu)
    await client.send("set_task", build_task("en", ["es", "fr"]))
    await client.until("task_status")
    await client.audio(PCM, chunk_bytes=5120)
    await client.send("end_task")
    shape: dict[str, list[tuple]] = defaultdict(list)
    for message in await client.rest(timeout=15):
        data = message.get("data") or {}
        body = data.get("transcription", data) if isinstance(data, dict) else {}
        tid = body.get("transcription_id", "-") if isinstance(body, dict) else "-"
        if message.get("message_type") == "output_audio_data":
            shape[tid].append(
                ("audio", body["language"], body["translation_part_id"], len(base64.b64decode(body["data"])))
            )
        elif message.get("message_type") in ("validated_transcription", "translated_transcription"):
            shape[tid].append(
                (message["message_type"], body["language"], body.get("translation_part_id"), body["text"])
            )
    return {tid: sorted(items) for tid, items in shape.items()}


async def test_a_seed_reproduces_over_websocket_and_differs_from_the_deterministic_shape():
    shapes = []
    for realism in (5, 5, None):
        async with serve(config(realism=realism)) as emu:
            shapes.append(await session_shape(emu))
    assert shapes[0] == shapes[1]
    assert shapes[0] != shapes[2]
    chunk_sizes = {item[3] for items in shapes[2].values() for item in items if item[0] == "audio"}
    assert max(chunk_sizes) == 9600  # deterministic: 200 ms chunks (and a shorter last one)


async def test_realism_switched_on_at_run_time_reaches_the_next_connection():
    async with serve(config()) as emu, aiohttp.ClientSession() as http:
        before = await session_shape(emu)
        async with http.post(f"{emu.base_url}/_emulator/config", json={"realism": 5, "realism_delay_s": [0, 0.4]}) as r:
            assert r.status == 200
        async with http.post(f"{emu.base_url}/_emulator/config", json={"realism_delay_s": [1, 0]}) as r:
            assert r.status == 400 and "realism_delay_s" in (await r.json())["error"]
        after = await session_shape(emu)
    assert emu.state.config.realism == 5 and emu.state.config.realism_delay_s == (0, 0.4)
    sizes = lambda shape: {item[3] for items in shape.values() for item in items if item[0] == "audio"}  # noqa: E731
    assert max(sizes(before)) == 9600 and any(size % 4 for size in sizes(after))  # odd sample counts
