"""Discord message text: its length limit, shared by the cogs, transcripts and error replies."""

MESSAGE_LIMIT = 2000


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` cut to `limit` characters, with an ellipsis showing it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
