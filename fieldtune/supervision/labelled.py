"""Read the user's labelled pairs (``build --train-data``) into :class:`~fieldtune.types.LabelledQuery` records.

Two layouts (see :func:`read_train_data`):

* a BEIR directory: the judgements of ``qrels/train.tsv`` (relevance > 0 is a
  positive, 0 an explicit negative) with the texts of those queries from
  ``queries.jsonl``; evaluation queries are never read (:mod:`fieldtune.supervision.beir`);
* a ``.jsonl`` file, one query per line, the layout of the E5 and
  EmbeddingGemma training cards::

      {"query": "...", "positive": "doc-1", "negatives": ["doc-7", "doc-9"]}

  ``positive`` and ``positives`` (an id or a list of ids, both may be given),
  ``negative`` and ``negatives`` likewise; ``_id``/``id`` optional (``q<line>``).

Every id must be a document of the corpus, or the line that names it is
reported. Lines with the same query (same normalised text) are merged, since
pair files often give one line per (query, positive): positives and negatives
are joined in order, and a document that is a positive anywhere is not a negative.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.ingest.common import json_type
from fieldtune.supervision.beir import query_texts, training_judgements
from fieldtune.supervision.common import (
    QueryFormat,
    SupervisionReport,
    json_objects,
    line_label,
    logger,
    normalise,
    record_id,
    record_text,
)
from fieldtune.types import LabelledQuery

#: JSONL keys holding judged document ids: (singular, plural) for positives and for negatives.
POSITIVE_KEYS = ("positive", "positives")
NEGATIVE_KEYS = ("negative", "negatives")


@dataclass
class _Entry:
    id: str
    text: str
    positives: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)


class _LabelCollector:
    """Merges judgements by normalised query text, keeping the first id and the input order."""

    def __init__(self, path: Path, report: SupervisionReport) -> None:
        self.path = path
        self.report = report
        self._entries: dict[str, _Entry] = {}
        self._ids: dict[str, tuple[str, str]] = {}  # query id -> (normalised text, where first seen)

    def add(self, query_id: str, text: str, positives: Iterable[str], negatives: Iterable[str], where: str) -> None:
        if not text.strip():
            self.report.blank += 1
            return
        key = normalise(text)
        seen = self._ids.setdefault(query_id, (key, where))
        if seen[0] != key:
            raise InputError(self.path, f"query id {query_id!r} was already used at {seen[1]} for another query",
                             record=where, hint="give every query its own id")
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(query_id, text.strip())
        else:
            self.report.duplicates += 1
        entry.positives.extend(doc for doc in positives if doc not in entry.positives)
        entry.negatives.extend(doc for doc in negatives if doc not in entry.negatives)

    def finish(self) -> list[LabelledQuery]:
        kept = []
        for entry in self._entries.values():
            if not entry.positives:
                self.report.no_positive += 1
                continue
            negatives = tuple(doc for doc in entry.negatives if doc not in entry.positives)
            kept.append(LabelledQuery(entry.id, entry.text, tuple(entry.positives), negatives))
        self.report.read += len(kept)
        if not kept:
            raise InputError(self.path, f"holds no query with a relevant document ({self.report.summary()})",
                             hint="give each query at least one positive document id")
        if self.report.blank or self.report.duplicates or self.report.no_positive:
            logger.info("%s: %s", self.path, self.report.summary())
        return kept


def read_train_data(
    path: str | Path, corpus_ids: Collection[str], *, report: SupervisionReport | None = None
) -> list[LabelledQuery]:
    """The user's labelled queries in input order; see the module docstring for the layouts.

    ``corpus_ids`` are the corpus's *document* ids (the caller maps them to
    chunks). An unknown id, a record without a positive, or any malformed
    record raises :class:`~fieldtune.errors.InputError` naming the file and line.
    """
    path = Path(path).expanduser()
    report = SupervisionReport() if report is None else report
    known = set(corpus_ids)
    if not path.exists():
        raise InputError(path, "does not exist", hint="check the path given to --train-data")
    collector = _LabelCollector(path, report)
    if path.is_dir():
        _read_beir(path, known, collector)
    elif QueryFormat.from_path(path) is QueryFormat.JSONL:
        _read_jsonl(path, known, collector)
    else:
        raise InputError(
            path,
            f"unsupported file type {path.suffix or '(no suffix)'} for labelled data: "
            "expected a .jsonl file or a BEIR directory with qrels/train.tsv",
        )
    return collector.finish()


def _read_beir(directory: Path, known: Collection[str], collector: _LabelCollector) -> None:
    judgements = training_judgements(directory, ("train",), collector.report)
    for judgement in judgements:
        if judgement.doc_id not in known:
            raise InputError(judgement.path, f"judges document {judgement.doc_id!r}, which is not in the corpus",
                             record=judgement.where, hint="train on the corpus the judgements were made for")
    texts = query_texts(directory, judgements)
    by_query: dict[str, tuple[list[str], list[str]]] = {}
    for judgement in judgements:
        positives, negatives = by_query.setdefault(judgement.query_id, ([], []))
        (positives if judgement.grade > 0 else negatives).append(judgement.doc_id)
    for query_id, (text, where) in texts.items():
        positives, negatives = by_query[query_id]
        collector.add(query_id, text, positives, negatives, where)


def _read_jsonl(path: Path, known: Collection[str], collector: _LabelCollector) -> None:
    for number, data in json_objects(path):
        text = record_text(path, number, data)
        positives = _ids(path, number, data, POSITIVE_KEYS, known)
        negatives = _ids(path, number, data, NEGATIVE_KEYS, known)
        if text and not positives:
            raise InputError(path, "has no positive document id", record=line_label(number),
                             hint='give one as "positive": "<document id>" or "positives": [...]')
        collector.add(record_id(path, number, data), text, positives, negatives, line_label(number))


def _ids(path: Path, number: int, data: dict[str, object], keys: tuple[str, ...], known: Collection[str]) -> list[str]:
    """The document ids under ``keys`` (each an id or a list of ids), checked against the corpus."""
    ids: list[str] = []
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
                raise InputError(path, f"`{key}` must hold document ids (strings), found {json_type(item)} {item!r}",
                                 record=line_label(number))
            doc_id = str(item).strip()
            if doc_id not in known:
                raise InputError(path, f"`{key}` names document {doc_id!r}, which is not in the corpus",
                                 record=line_label(number), hint="use the ids of the corpus given to build")
            ids.append(doc_id)
    return ids
