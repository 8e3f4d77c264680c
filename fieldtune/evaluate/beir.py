"""Reading a BEIR-layout evaluation set, with errors that name the file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fieldtune.errors import InputError
from fieldtune.types import EvalSet, Qrels
from fieldtune.workdir import atomic_write


def _read_queries(path: Path) -> dict[str, str]:
    if not path.exists():
        raise InputError(path, "does not exist", hint="a BEIR directory needs queries.jsonl")
    queries: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="strict") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                qid = str(record.get("_id", record.get("id")))
                text = record["text"]
            except (json.JSONDecodeError, KeyError, AttributeError) as error:
                raise InputError(path, f"malformed query record ({error})", record=f"line {number}") from error
            if qid in queries:
                raise InputError(path, f"duplicate query id {qid!r}", record=f"line {number}")
            if text is None:
                text = ""  # a blank query: the harness leaves it out and says so
            if not isinstance(text, str):
                raise InputError(path, f"query {qid!r} has a {type(text).__name__} as text, not a string",
                                 record=f"line {number}")
            queries[qid] = text
    if not queries:
        raise InputError(path, "is empty")
    return queries


def _read_qrels(path: Path) -> Qrels:
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.tsv")) if path.parent.exists() else []
        raise InputError(path, "does not exist", hint=f"available splits: {', '.join(available) or 'none'}")
    qrels: Qrels = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(reader, 1):
            if not row or (number == 1 and not row[-1].lstrip("-").isdigit()):
                continue  # blank line or header
            if len(row) == 4:  # TREC style: qid 0 docid rel
                row = [row[0], row[2], row[3]]
            try:
                qid, docid, grade = row[0], row[1], int(row[2])
            except (IndexError, ValueError) as error:
                raise InputError(path, f"expected 'query-id<TAB>corpus-id<TAB>score', got {row!r}",
                                 record=f"line {number}") from error
            qrels.setdefault(qid, {})[docid] = grade
    if not qrels:
        raise InputError(path, "has no judgements")
    return qrels


def load_beir(directory: str | Path, split: str = "test") -> EvalSet:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` and check they agree."""
    from fieldtune.ingest import read_corpus

    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "is not a directory", hint="--data expects a BEIR directory")
    documents = read_corpus(directory)
    corpus = {doc.id: doc for doc in documents}
    queries = _read_queries(directory / "queries.jsonl")
    qrels_path = directory / "qrels" / f"{split}.tsv"
    qrels = _read_qrels(qrels_path)
    unknown_docs = sorted({doc for rels in qrels.values() for doc in rels if doc not in corpus})
    if unknown_docs:
        shown = ", ".join(unknown_docs[:5]) + (" ..." if len(unknown_docs) > 5 else "")
        raise InputError(qrels_path, f"names {len(unknown_docs)} documents not in corpus.jsonl: {shown}")
    unknown_queries = sorted(q for q in qrels if q not in queries)
    if unknown_queries:
        shown = ", ".join(unknown_queries[:5]) + (" ..." if len(unknown_queries) > 5 else "")
        raise InputError(qrels_path, f"names {len(unknown_queries)} queries not in queries.jsonl: {shown}")
    return EvalSet(name=directory.name, corpus=corpus, queries=queries, qrels=qrels)


def write_beir(eval_set: EvalSet, directory: Path, split: str = "test") -> Path:
    """Write ``eval_set`` in BEIR layout under ``directory`` (each file atomically); return it."""
    directory = Path(directory)
    with atomic_write(directory / "corpus.jsonl") as handle:
        for doc in eval_set.corpus.values():
            record = {"_id": doc.id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    with atomic_write(directory / "queries.jsonl") as handle:
        for qid, text in eval_set.queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with atomic_write(directory / "qrels" / f"{split}.tsv") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["query-id", "corpus-id", "score"])
        for qid in sorted(eval_set.qrels):
            for doc_id, grade in sorted(eval_set.qrels[qid].items()):
                writer.writerow([qid, doc_id, grade])
    return directory
