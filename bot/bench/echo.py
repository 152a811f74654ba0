"""A light Palabra-compatible echo for the bench, run in its own process (`python -m bot.bench.echo`).

It speaks just enough of the streaming protocol for `StreamingSession`: `set_task` is acknowledged
as running, every `input_audio_data` chunk is timed on arrival (the monotonic clock is system-wide on
Linux, so the bench compares it with its own), and translated audio goes back in one of three modes,
chosen by the task's `bench_mode`:

- "continuous": for every input chunk, the same duration of 24 kHz speech per target language (the
  capacity run: two languages playing all the time);
- "utterances": every `UTTERANCE_EVERY_S` one short utterance per language, stamped with its send
  time (the latency run: the speaker is idle when it arrives, so egress is measured from arrival);
- "silent": nothing (idle sessions).

Output messages are built from a pre-encoded template, so the echo's own cost stays small. On SIGTERM
it writes {bench_id: [chunk arrival times]} as JSON to `--results` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import time
from pathlib import Path
from typing import Any

import websockets

from bot.audio.frames import PALABRA_OUTPUT_RATE

OUTPUT_RATE = PALABRA_OUTPUT_RATE
UTTERANCE_EVERY_S = 1.2
UTTERANCE_S = 0.4


def speech_24k(seconds: float) -> bytes:
    from bot.audio.frames import PALABRA_OUTPUT
    from bot.audio.resample import Resampler
    from bot.bench.micro import speech_pcm

    pcm48 = speech_pcm(int(seconds * 50) + 1)
    down = Resampler(48000, 2, OUTPUT_RATE, PALABRA_OUTPUT.channels)
    return (down.process(pcm48) + down.flush())[: int(seconds * OUTPUT_RATE) * 2]


class Echo:
    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        chunk = speech_24k(0.32)
        self._chunk_b64 = base64.b64encode(chunk).decode()
        self._utterance_b64 = base64.b64encode(speech_24k(UTTERANCE_S)).decode()

    def audio_message(self, language: str, data_b64: str, *, last: bool, tid: str, sent: float | None) -> str:
        stamp = f',"bench_sent":{sent!r}' if sent is not None else ""
        flag = "true" if last else "false"
        head = f'{{"message_type":"output_audio_data","data":{{"transcription_id":"{tid}","language":"{language}",'
        return head + f'"last_chunk":{flag},"data":"{data_b64}"{stamp}}}}}'

    async def serve(self, ws: Any) -> None:
        task: dict[str, Any] = {}
        times: list[float] = []
        talker: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                now = time.monotonic()
                parsed = json.loads(message)
                kind = parsed.get("message_type")
                if kind == "input_audio_data":
                    times.append(now)
                    if task.get("bench_mode") == "continuous":
                        # One chunk of speech per chunk heard, and one more at first: like Palabra's TTS,
                        # the output runs a little ahead, so the speakers never wait on the echo itself.
                        for _ in range(2 if len(times) == 1 else 1):
                            for language in _targets(task):
                                await ws.send(
                                    self.audio_message(language, self._chunk_b64, last=False, tid="c", sent=None)
                                )
                elif kind == "set_task":
                    task = parsed.get("data") or {}
                    self.arrivals[str(task.get("bench_id"))] = times
                    status = {"command": "set_task", "event": "started", "task_status": "running"}
                    await ws.send(json.dumps({"message_type": "task_status", "data": status}))
                    if task.get("bench_mode") == "utterances":
                        talker = asyncio.create_task(self._utterances(ws, _targets(task)))
                elif kind == "end_task":
                    await ws.send(json.dumps({"message_type": "end_of_stream", "data": {}}))
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            if talker is not None:
                talker.cancel()

    async def _utterances(self, ws: Any, targets: list[str]) -> None:
        count = 0
        while True:
            await asyncio.sleep(UTTERANCE_EVERY_S)
            count += 1
            for language in targets:
                sent = time.monotonic()  # carried in the id: the bench measures egress from here
                message = self.audio_message(
                    language, self._utterance_b64, last=True, tid=f"u{count}@{sent!r}", sent=sent
                )
                await ws.send(message)


def _targets(task: dict[str, Any]) -> list[str]:
    translations = (task.get("pipeline") or {}).get("translations") or []
    return [str(t.get("target_language")) for t in translations] or ["es"]


async def main_async(port_file: str, results: str) -> None:
    echo = Echo()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with websockets.serve(echo.serve, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        await asyncio.to_thread(Path(port_file).write_text, str(port))
        await stop.wait()
    await asyncio.to_thread(Path(results).write_text, json.dumps(echo.arrivals))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--results", required=True)
    args = parser.parse_args()
    asyncio.run(main_async(args.port_file, args.results))


if __name__ == "__main__":
    main()
