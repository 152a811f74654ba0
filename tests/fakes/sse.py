"""Reading a text/event-stream response (the caption overlay's) as its events."""

from __future__ import annotations

import json

import httpx


class EventReader:
    """Parses a text/event-stream response into (id, event name, data) triples, across several reads."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, count: int) -> list[tuple[str, str, dict]]:
        found: list[tuple[str, str, dict]] = []
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if "event" in fields:
                    found.append((fields.get("id", ""), fields["event"], json.loads(fields.get("data", "{}"))))
                    if len(found) == count:
                        return found
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        return found
