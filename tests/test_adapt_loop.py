"""The adapt loop: serve with --log-queries, adapt the query encoder while searches go on, roll back.

A real index of the synthetic fixture corpus (bundled model), served by uvicorn
on 127.0.0.1 in a thread; ``adapt`` trains a few steps (``max_steps`` override)
while a client keeps searching.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'fieldtune[serve]'")
httpx = pytest.importorskip("httpx", reason="the live client needs httpx (the dev extra)")

from fieldtune.adapt import ADAPT_LOG, AdaptOptions, adapt_index, read_adapt_queries, stored_pool  # noqa: E402
from fieldtune.encoding import Encoder, document_text  # noqa: E402
from fieldtune.search import Index  # noqa: E402
from fieldtune.search.manifest import IndexManifest, QueryModelPointer  # noqa: E402
from fieldtune.search.query_log import QueryLog  # noqa: E402
from fieldtune.search.query_models import (  # noqa: E402
    QueryModelMismatchError,
    index_document_fingerprint,
    swap_in,
)
from fieldtune.search.service import create_app, serve_in_background  # noqa: E402
from fieldtune.search.state import load_current  # noqa: E402

from .build_fixture import CONCEPTS, write_corpus  # noqa: E402
from .conftest import run_cli  # noqa: E402

pytestmark = pytest.mark.slow

#: Tiny training: enough steps for the query encoder to move, a few seconds on one thread.
TINY = {"max_steps": 8, "batch_size": 8, "learning_rate": 5e-5, "eval_every_steps": 4}
PROBES = ["Kostka polynomial charge", "complete normed vector space", "eigenvalues of an operator"]


def _queries() -> list[str]:
    """About 40 distinct queries of the kind a user of the fixture corpus would type."""
    queries = []
    for name, definition in CONCEPTS:
        queries.append(f"what is a {name}")
        queries.append(" ".join(definition.split()[:5]))
        if len(queries) < 40:
            queries.append(f"{name} decomposition")
    return queries[:40]


def _files_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file holding the index's documents and vectors (segments and generations)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in ("segments", "generations")
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }


def _answers(client: httpx.Client, url: str) -> dict[str, list[tuple[str, float]]]:
    answers = {}
    for query in PROBES:
        response = client.get(f"{url}/search", params={"q": query, "mode": "dense", "k": 10})
        assert response.status_code == 200, response.text
        answers[query] = [(hit["doc_id"], hit["score"]) for hit in response.json()["results"]]
    return answers


@pytest.fixture
def built(tmp_path: Path) -> Path:
    corpus = write_corpus(tmp_path / "corpus.jsonl", n_docs=40)
    Index.build(corpus, tmp_path / "idx", model="minilm", progress=False)
    return tmp_path / "idx"


def test_serve_log_adapt_while_searching_then_roll_back(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "searches.log"  # any name: adapt reads the log's JSONL whatever its suffix
    before_files = _files_digest(built)
    index = Index.open(built)
    query_log = QueryLog(log)
    statuses: list[int] = []
    stop = threading.Event()
    with serve_in_background(create_app(index, query_log=query_log)) as url, httpx.Client(timeout=120) as client:
        for i, query in enumerate(_queries()):
            mode = "dense" if i % 2 else "hybrid"
            assert client.get(f"{url}/search", params={"q": query, "mode": mode}).status_code == 200
        assert client.get(f"{url}/search", params={"q": "   "}).status_code == 422  # blank: refused, not logged
        lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
        assert all(set(line) == {"ts", "query", "mode"} for line in lines)
        assert [(line["query"], line["mode"]) for line in lines] == [
            (q, "dense" if i % 2 else "hybrid") for i, q in enumerate(_queries())
        ]
        answers_before = _answers(client, url)  # its three queries are logged too
        logged = [q.text for q in read_adapt_queries(log)]
        assert logged == _queries() + PROBES

        def keep_searching() -> None:
            with httpx.Client(timeout=120) as background:
                while not stop.is_set():
                    response = background.get(f"{url}/search", params={"q": "Markov chain state", "mode": "dense"})
                    statuses.append(response.status_code)

        searcher = threading.Thread(target=keep_searching, daemon=True)
        searcher.start()
        try:
            options = AdaptOptions(budget_minutes=5, seed=0, overrides=TINY, keep_rejected=True)
            result = adapt_index(built, log, options)
            record = json.loads((built / ADAPT_LOG).read_text(encoding="utf-8").splitlines()[-1])
            assert record["action"] == "adapt" and record["swapped"] == result.swapped and record["reason"]
            assert result.train_queries + result.dev_queries == len(logged) and result.dev_queries >= 10
            assert result.model == "query-models/000001" and (built / result.model / "fieldtune.json").is_file()
            if result.swapped:
                assert result.adapted_score > result.current_score
            else:  # the record says why; nothing changed, and the trained encoder goes in by the same swap
                assert "does not beat" in result.reason and result.adapted_score <= result.current_score
                assert load_current(built).manifest.query_model is None
                assert _answers(client, url) == answers_before
                swap_in(built, built / result.model, index_document_fingerprint(IndexManifest.read(built)))
            assert load_current(built).manifest.query_model.path == result.model
            answers_after = _answers(client, url)  # the server's next refresh loaded the swapped-in encoder
            code, out, err = run_cli(["adapt", "--index", str(built), "--rollback"], capsys, monkeypatch)
            assert code == 0, err
            assert "rolled back" in out
            answers_rolled_back = _answers(client, url)
        finally:
            stop.set()
            searcher.join(120)
        assert len(statuses) > 5 and set(statuses) == {200}, statuses[:20]
        assert answers_after != answers_before
        assert [doc for doc, _ in answers_after[PROBES[0]]]  # still answering with documents
        assert answers_rolled_back == answers_before  # the same encoder as before: the same answers exactly
        code, _, err = run_cli(["adapt", "--index", str(built), "--rollback"], capsys, monkeypatch)
        assert code == 2 and "no earlier query encoder" in err
    query_log.close()
    assert _files_digest(built) == before_files  # no document re-encoded or rewritten

    # An index refuses a query encoder whose document route is not the model its vectors came from.
    with pytest.raises(QueryModelMismatchError, match="was encoded with"):
        swap_in(built, built / result.model, "0" * 64)
    manifest = IndexManifest.read(built)
    pointer = QueryModelPointer(result.model, (None,), "0" * 64)
    dataclasses.replace(manifest, query_model=pointer).write(built)
    with pytest.raises(QueryModelMismatchError, match="was encoded with"):
        Index.open(built).search("Hilbert space", mode="dense")
    code, _, err = run_cli(["search", "--index", str(built), "--mode", "dense", "Hilbert space"], capsys, monkeypatch)
    assert code == 2 and "query-models/000001" in err and "was encoded with" in err


def test_stored_vectors_stand_in_for_a_re_encode(built: Path) -> None:
    """int8 storage dequantised is within 1e-3 of cosine 1 of the model's own document vectors: no re-encode."""
    state = load_current(built)
    encoder = Encoder("minilm", precision=state.manifest.precision, use_cache=False, show_progress=False)
    pool = stored_pool(state, encoder)
    chunks = [state.chunk(row) for row in range(state.store.rows)]  # nothing deleted: every row is live
    assert list(pool.ids) == [c["id"] for c in chunks]
    fresh = encoder.encode([document_text(c.get("title", ""), c["text"]) for c in chunks], kind="document")
    cosines = np.sum(fresh * pool.vectors, axis=1)
    assert cosines.min() > 0.999


def test_bad_input_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", n_docs=6)
    index_dir = tmp_path / "idx"
    Index.build(corpus, index_dir, model="minilm", progress=False)

    def adapt(*args: str) -> tuple[int, str]:
        code, _, err = run_cli(["adapt", "--index", str(index_dir), *args], capsys, monkeypatch)
        return code, err

    missing = tmp_path / "no-such.log"
    code, err = adapt("--queries", str(missing))
    assert code == 2 and str(missing) in err
    empty = tmp_path / "empty.log"
    empty.write_text("", encoding="utf-8")
    code, err = adapt("--queries", str(empty))
    assert code == 2 and str(empty) in err and "no usable query" in err
    one = tmp_path / "one.log"
    one.write_text(json.dumps({"ts": "t", "query": "Hall algebra", "mode": "dense"}) + "\n", encoding="utf-8")
    code, err = adapt("--queries", str(one))
    assert code == 2 and str(one) in err
    code, err = adapt("--rollback")
    assert code == 2 and "no earlier query encoder" in err
    code, err = adapt()
    assert code == 2 and "--queries" in err

    log = tmp_path / "queries.jsonl"
    log.write_text("".join(json.dumps({"query": q}) + "\n" for q in _queries()), encoding="utf-8")
    segment = index_dir / IndexManifest.read(index_dir).segments[0].name
    (segment / "vectors.npy").unlink()
    code, err = adapt("--queries", str(log))
    assert code == 2 and "vectors.npy" in err
    shutil.rmtree(index_dir)
    code, err = adapt("--queries", str(log))
    assert code == 2 and str(index_dir) in err
