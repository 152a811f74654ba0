"""SubRip (.srt) output shared by live sessions and `simulate`: cue numbering, times, and filling in
the times Palabra did not give (a missing start follows the previous cue; a missing or empty span
lasts two seconds)."""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_CUE_S = 2.0


def srt_time(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def format_srt(cues: Iterable[tuple[float | None, float | None, list[str]]]) -> str:
    """`cues` are (start, end, text rows) in order; empty rows are left out."""
    blocks = []
    previous_end = 0.0
    for index, (given_start, given_end, rows) in enumerate(cues, start=1):
        start = given_start if given_start is not None else previous_end
        end = given_end if given_end is not None and given_end > start else start + DEFAULT_CUE_S
        previous_end = end
        text = "\n".join(row for row in rows if row)
        blocks.append(f"{index}\n{srt_time(start)} --> {srt_time(end)}\n{text}")
    return "\n\n".join(blocks) + ("\n" if blocks else "")
