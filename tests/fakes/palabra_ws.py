"""A bare WebSocket client of Palabra's streaming protocol, for tests of the emulator's server side."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import websockets

from tests.fakes.secrets import PALABRA_API_KEY


class Client:
    def __init__(self, ws):
        self.ws = ws
        self.received: list[dict] = []

    async def send(self, kind, data=None):
        await self.ws.send(json.dumps({"message_type": kind, "data": {} if data is None else data}))

    async def audio(self, pcm: bytes, chunk_bytes: int = 10240):
        for i in range(0, len(pcm), chunk_bytes):
            await self.send("input_audio_data", {"data": base64.b64encode(pcm[i : i + chunk_bytes]).decode()})

    async def until(self, kind: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic()))
            self.received.append(message)
            if message["message_type"] == kind:
                return message["data"]

    async def rest(self, timeout: float = 5.0) -> list[dict]:
        """Everything until the server closes."""

        async def drain():
            with contextlib.suppress(websockets.ConnectionClosed):  # 1008 and 1011 closes raise
                async for raw in self.ws:
                    self.received.append(json.loads(raw))

        await asyncio.wait_for(drain(), timeout)
        return self.received

    def of(self, kind: str) -> list[dict]:
        return [m["data"] for m in self.received if m["message_type"] == kind]


def url(emu, token=PALABRA_API_KEY, path="/streaming-api/0123abcd/v1/speech-to-speech/stream"):
    return f"{emu.ws_base_url}{path}" + (f"?token={token}" if token is not None else "")


async def connect(emu, **kw) -> Client:
    return Client(await websockets.connect(url(emu, **kw)))
