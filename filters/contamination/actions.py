"""What to do with a contaminated row: keep it flagged, drop it, or cut the leaked spans out.

`cut_spans` follows lm-evaluation-harness's Janitor: a window of characters around each hit is
removed (so a leaked answer next to the leaked question goes too), and a row with more than
`max_cuts` cuts is too dirty to keep.
"""

from __future__ import annotations

from typing import Iterable, Literal

Action = Literal["flag", "drop", "remove_spans"]


def cut_windows(spans: Iterable[tuple[int, int]], length: int, window: int) -> list[tuple[int, int]]:
    """Each span widened by `window` characters on both sides, clipped to the text, merged."""
    cuts: list[list[int]] = []
    for start, end in sorted(spans):
        a, b = max(0, start - window), min(length, end + window)
        if cuts and a <= cuts[-1][1]:
            cuts[-1][1] = max(cuts[-1][1], b)
        else:
            cuts.append([a, b])
    return [(a, b) for a, b in cuts]


def cut_spans(text: str, spans: Iterable[tuple[int, int]], window: int = 200, max_cuts: int = 10) -> str | None:
    """`text` without the windows around `spans`, the kept pieces joined by a blank line.

    None when the row should go: more than `max_cuts` cuts, or nothing but whitespace left.
    """
    cuts = cut_windows(spans, len(text), window)
    if len(cuts) > max_cuts:
        return None
    pieces, at = [], 0
    for a, b in cuts:
        pieces.append(text[at:a])
        at = b
    pieces.append(text[at:])
    kept = "\n\n".join(p.strip() for p in pieces if p.strip())
    return kept or None
