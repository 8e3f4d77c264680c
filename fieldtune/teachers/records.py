"""The teacher stage's artifact: one :class:`~fieldtune.types.ScoredQuery` per line of a JSONL file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.supervision.common import json_objects, line_label
from fieldtune.types import ScoredQuery
from fieldtune.workdir import write_jsonl


def write_scored_queries(path: str | Path, items: Iterable[ScoredQuery]) -> int:
    """Write ``items`` atomically, one JSON object per line; returns how many."""
    return write_jsonl(path, (item.to_dict() for item in items))


def read_scored_queries(path: str | Path) -> list[ScoredQuery]:
    """The records :func:`write_scored_queries` wrote; a damaged line is named."""
    path = Path(path)
    items = []
    for number, data in json_objects(path):
        try:
            item = ScoredQuery.from_dict(data)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(path, f"not a scored query record ({type(err).__name__}: {err})",
                             record=line_label(number), hint="rerun the teacher stage") from err
        if len(item.candidate_ids) != len(item.teacher_scores):
            raise InputError(path, f"{len(item.candidate_ids)} candidates but {len(item.teacher_scores)} scores",
                             record=line_label(number), hint="rerun the teacher stage")
        items.append(item)
    return items
