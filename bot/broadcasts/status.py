"""What a broadcast status means, in words an admin can act on.

Palabra's status enum is unpublished; its UI shows "Waiting for an input stream", "Streaming is
active" and "Streaming error". Both the enum-like values (`waiting_for_input`, `streaming`, `error`)
and those display names are recognised; anything else is shown as Palabra sent it.
"""

from __future__ import annotations

WAITING = "waiting_for_input"
STREAMING = "streaming"
ERROR = "error"
GONE = "gone"  # our own: the broadcast no longer exists at Palabra

_MEANINGS = {
    WAITING: "⏳ Waiting for an input stream — Palabra is ready; start sending to the ingest URL",
    STREAMING: "🔴 Streaming — input received, translating and re-streaming to the outputs",
    ERROR: "⚠️ Error — Palabra could not receive or process the input",
    GONE: "🗑️ Gone — the broadcast no longer exists at Palabra (deleted outside Discord?)",
}


def normalise_status(status: str | None) -> str | None:
    if not status:
        return None
    lowered = status.strip().lower()
    if "wait" in lowered:
        return WAITING
    if "error" in lowered or "fail" in lowered:
        return ERROR
    if lowered in (STREAMING, "active", "live") or "streaming is active" in lowered:
        return STREAMING
    return lowered


def status_meaning(status: str | None, description: str | None = None) -> str:
    """One line: the status and what it means; an error carries Palabra's description."""
    key = normalise_status(status)
    if key is None:
        return "❔ Unknown — Palabra reported no status"
    text = _MEANINGS.get(key, f"❔ {status}")
    generic = {"Streaming error", "Waiting for an input stream", "Streaming is active"}
    if description and description not in generic and (key == ERROR or key not in _MEANINGS):
        text += f": {description}"
    return text
