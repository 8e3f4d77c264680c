"""Text matching shared by the split, the leakage check and mining: normalised anchors and name mentions."""

from __future__ import annotations

import re
from collections.abc import Iterable


def normalize_text(text: str) -> str:
    """Lower case, whitespace collapsed: two anchors that differ only so count as the same anchor."""
    return " ".join(text.lower().split())


def mention_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive whole-word regex for many names (longest first); plural endings match too."""
    unique = sorted({n.strip().lower() for n in names if n and n.strip()}, key=len, reverse=True)
    if not unique:
        return None
    alternatives = "|".join(re.escape(n) for n in unique)
    return re.compile(r"(?<!\w)(?:" + alternatives + r")(?:s|es|x)?(?!\w)", re.IGNORECASE)
