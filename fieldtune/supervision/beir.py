"""The training side of a BEIR directory: ``qrels/train.tsv`` (and ``dev.tsv``), never ``test.tsv``'s queries.

A BEIR directory holds every query of the set in one ``queries.jsonl``, the
evaluation ones included. Which queries are for training is said only by the
qrels files, so the readers here take **only the queries judged in a training
split** (:data:`TRAINING_SPLITS`) and keep no other query's text. Asking for
the ``test`` split is refused, and a query id that ``qrels/test.tsv`` also
judges is left out (and counted as held out): a build must never see an
evaluation query, or its evaluation would measure memory, not retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.supervision.common import (
    SupervisionReport,
    decoded_lines,
    json_objects,
    line_label,
    logger,
    record_id,
    record_text,
)

QUERIES = "queries.jsonl"
QRELS = "qrels"
#: The qrels splits a build may train on, in the order their queries are read.
TRAINING_SPLITS = ("train", "dev")
#: The split that holds evaluation queries: its query texts are never read, its ids only to exclude them.
EVALUATION_SPLIT = "test"


@dataclass(frozen=True)
class Judgement:
    """One qrels line: ``grade`` > 0 is relevant, 0 (or less) judged not relevant."""

    query_id: str
    doc_id: str
    grade: int
    path: Path
    line: int

    @property
    def where(self) -> str:
        return line_label(self.line)


def qrels_path(directory: Path, split: str) -> Path:
    return directory / QRELS / f"{split}.tsv"


def read_judgements(path: Path) -> list[Judgement]:
    """Every judgement of a qrels file (``query-id<TAB>corpus-id<TAB>score``, header optional, TREC 4 columns too)."""
    judgements: list[Judgement] = []
    for number, line in decoded_lines(path):
        row = [cell.strip() for cell in line.rstrip("\r\n").split("\t")]
        if not any(row) or (number == 1 and not row[-1].lstrip("-").isdigit()):
            continue  # blank line or header
        if len(row) == 4:  # TREC style: qid 0 docid grade
            row = [row[0], row[2], row[3]]
        if len(row) != 3 or not row[0] or not row[1] or not row[2].lstrip("-").isdigit():
            raise InputError(
                path, f"expected 'query-id<TAB>corpus-id<TAB>score', got {line.strip()!r}", record=line_label(number)
            )
        judgements.append(Judgement(row[0], row[1], int(row[2]), path, number))
    return judgements


def training_judgements(
    directory: Path, splits: Sequence[str], report: SupervisionReport
) -> list[Judgement]:
    """The judgements of ``splits`` whose query is not also an evaluation query (see the module docstring).

    The first split is required (``qrels/train.tsv``); later ones are read when present.
    """
    refused = [split for split in splits if split not in TRAINING_SPLITS]
    if refused:
        raise ValueError(
            f"split {refused[0]!r} is not a training split (allowed: {', '.join(TRAINING_SPLITS)}); "
            f"evaluation queries ({EVALUATION_SPLIT}) are never read by a build"
        )
    if not (directory / QUERIES).is_file():
        raise InputError(directory, f"has no {QUERIES}", hint=f"a BEIR directory needs {QUERIES} and {QRELS}/train.tsv")
    first = qrels_path(directory, splits[0])
    if not first.is_file():
        raise InputError(
            first,
            "does not exist",
            hint=f"a BEIR directory gives its training queries in {QRELS}/train.tsv; "
            f"queries judged only in {QRELS}/{EVALUATION_SPLIT}.tsv are evaluation queries and are never read",
        )
    judgements = [j for split in splits if qrels_path(directory, split).is_file()
                  for j in read_judgements(qrels_path(directory, split))]
    evaluation = _evaluation_ids(directory)
    held_out = {j.query_id for j in judgements if j.query_id in evaluation}
    if held_out:
        report.held_out += len(held_out)
        logger.warning(
            "%s: left out %d queries that %s/%s.tsv also judges (evaluation queries are never trained on)",
            directory, len(held_out), QRELS, EVALUATION_SPLIT,
        )
    return [j for j in judgements if j.query_id not in held_out]


def refuse_evaluation_queries_file(path: Path) -> None:
    """Refuse a BEIR directory's own ``queries.jsonl`` given as a file: it holds the evaluation queries too."""
    if path.name == QUERIES and qrels_path(path.parent, EVALUATION_SPLIT).is_file():
        raise InputError(
            path,
            f"is the query file of a BEIR set whose {QRELS}/{EVALUATION_SPLIT}.tsv judges some of its queries: "
            "training on it would train on the evaluation queries",
            hint=f"pass the directory {path.parent} instead: only the queries of {QRELS}/train.tsv "
            f"(and dev.tsv) are read from it",
        )


def _evaluation_ids(directory: Path) -> set[str]:
    """Ids (only) of the queries the evaluation split judges, so they can be left out."""
    path = qrels_path(directory, EVALUATION_SPLIT)
    return {j.query_id for j in read_judgements(path)} if path.is_file() else set()


def query_texts(directory: Path, judgements: Sequence[Judgement]) -> dict[str, tuple[str, str]]:
    """``id -> (text, "line N")`` from ``queries.jsonl`` for the judged queries only, in the file's order.

    Other queries' texts are passed over, never kept. A judged query missing
    from the file is an error naming the qrels line that judges it.
    """
    want = {j.query_id for j in judgements}
    path = directory / QUERIES
    found: dict[str, tuple[str, str]] = {}
    for number, data in json_objects(path):
        query_id = record_id(path, number, data)
        if query_id not in want:
            continue
        if query_id in found:
            raise InputError(path, f"duplicate query id {query_id!r} (first at {found[query_id][1]})",
                             record=line_label(number))
        found[query_id] = (record_text(path, number, data), line_label(number))
    missing = next((j for j in judgements if j.query_id not in found), None)
    if missing is not None:
        raise InputError(missing.path, f"judges query {missing.query_id!r}, which is not in {QUERIES}",
                         record=missing.where, hint="add the query to queries.jsonl or remove its judgements")
    return found
