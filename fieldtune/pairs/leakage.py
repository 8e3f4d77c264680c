"""An independent check that no held-out concept, anchor or query reaches the training anchors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fieldtune.pairs.text import mention_pattern, normalize_text
from fieldtune.types import Concept, Pair


@dataclass(frozen=True)
class LeakageReport:
    """What the check looked at and every leak it found (empty ``leaks`` = clean)."""

    train_anchors: int
    held_out_anchors: int
    held_out_concepts: int
    leaks: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.leaks

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "leaks": list(self.leaks[:20]), "n_leaks": len(self.leaks), "clean": self.clean}


def check_leakage(train: Sequence[Pair], held_out: Sequence[Pair], concepts: Mapping[str, Concept]) -> LeakageReport:
    """Independently verify that no held-out concept, anchor or query reaches training anchors."""
    leaks: list[str] = []
    held_out_groups = {p.group for p in held_out}
    held_concepts = [concepts[g] for g in sorted(held_out_groups) if g in concepts]
    train_groups = {p.group for p in train}
    for group in sorted(held_out_groups & train_groups):
        leaks.append(f"group {group!r} has pairs in training and in dev/test")
    held_anchor_set = {normalize_text(p.anchor) for p in held_out}
    pattern = mention_pattern(name for c in held_concepts for name in (c.name, *c.aliases))
    for pair in train:
        anchor = normalize_text(pair.anchor)
        if anchor in held_anchor_set:
            leaks.append(f"training anchor {pair.anchor[:60]!r} is also a dev/test anchor")
        elif pattern is not None and (match := pattern.search(pair.anchor)):
            leaks.append(f"training anchor {pair.anchor[:60]!r} mentions held-out concept {match.group(0)!r}")
    return LeakageReport(len(train), len(held_out), len(held_concepts), tuple(leaks))
