"""What the fake's REST API stores for tests to assert on: messages (with uploaded files), webhooks and
interactions with everything the bot answered to them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Attachment:
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class StoredMessage:
    """A message as the fake keeps it: the JSON it returned plus the uploaded files' bytes."""

    data: dict
    files: list[Attachment] = field(default_factory=list)
    deleted: bool = False
    edits: list[dict] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def content(self) -> str:
        return self.data.get("content") or ""

    @property
    def embeds(self) -> list[dict]:
        return self.data.get("embeds") or []

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)


@dataclass
class Webhook:
    id: int
    token: str
    channel_id: int
    name: str
    application_id: int | None

    def payload(self, guild_id: int) -> dict:
        return {
            "id": str(self.id),
            "type": 1,
            "guild_id": str(guild_id),
            "channel_id": str(self.channel_id),
            "name": self.name,
            "avatar": None,
            "token": self.token,
            "application_id": str(self.application_id) if self.application_id else None,
        }


@dataclass
class InteractionRecord:
    """An interaction the fake dispatched, and everything the bot answered to it."""

    id: int
    token: str
    application_id: int
    channel_id: int
    payload: dict
    responses: list[dict] = field(default_factory=list)  # callback bodies {"type": n, "data": {...}}
    original: StoredMessage | None = None
    followups: list[StoredMessage] = field(default_factory=list)

    @property
    def response_type(self) -> int | None:
        return self.responses[0]["type"] if self.responses else None

    @property
    def ephemeral(self) -> bool:
        data = (self.responses[0].get("data") or {}) if self.responses else {}
        return bool(int(data.get("flags") or 0) & 64)

    def text(self) -> str:
        """All text the user saw: the response, its edits and followups (content and embeds)."""
        parts: list[str] = []
        for response in self.responses:
            parts.extend(_texts(response.get("data") or {}))
        for message in ([self.original] if self.original else []) + self.followups:
            parts.extend(_texts(message.data))
            for edit in message.edits:
                parts.extend(_texts(edit))
        return "\n".join(p for p in parts if p)


def _texts(data: dict) -> list[str]:
    out = [data.get("content") or ""]
    for embed in data.get("embeds") or []:
        out += [embed.get("title") or "", embed.get("description") or ""]
        out += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields") or []]
    return out
