"""Search latency machinery, by behaviour (never by time): the query-vector LRU, the warm-up, the encoder swap.

Timings live in ``benchmarks/search_latency.py``; here the real bundled model
answers on a tiny real index, and a real query encoder is swapped in as
``fieldtune adapt`` does.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from fieldtune.encoding import Encoder
from fieldtune.models import resolve_model
from fieldtune.search import Index
from fieldtune.search.manifest import IndexManifest
from fieldtune.search.query_cache import QueryEmbeddingCache, QueryKey
from fieldtune.search.query_models import index_document_fingerprint, next_model_dir, query_prompt, swap_in
from fieldtune.types import Document

from .conftest import TINY_CORPUS, build_tiny_index

DOCUMENTS = [Document(id=r["_id"], title=r["title"], text=r["text"]) for r in TINY_CORPUS]


def _key(text: str, fingerprint: str = "f", prompt: str = "") -> QueryKey:
    return QueryKey(text, fingerprint, prompt)


def test_the_lru_keeps_the_most_recent_entries_and_no_more() -> None:
    cache = QueryEmbeddingCache(capacity=2)
    cache.put(_key("a"), np.ones(3))
    cache.put(_key("b"), np.full(3, 2.0))
    assert cache.get(_key("a")) is not None  # "a" is now the most recent
    cache.put(_key("c"), np.full(3, 3.0))
    assert cache.get(_key("b")) is None and len(cache) == 2
    assert cache.get(_key("c"))[0] == 3.0 and cache.get(_key("a"))[0] == 1.0
    # the same text from another encoder, or with another prompt, is another entry
    assert cache.get(_key("a", fingerprint="g")) is None and cache.get(_key("a", prompt="query: ")) is None
    stored = cache.get(_key("a"))
    with pytest.raises(ValueError):
        stored[0] = 5.0  # shared between searches: read-only
    assert cache.stats() == {"entries": 2, "capacity": 2, "hits": 4, "misses": 3}
    cache.clear()
    assert len(cache) == 0 and cache.get(_key("c")) is None


def test_a_zero_capacity_cache_keeps_nothing_and_a_negative_one_is_refused() -> None:
    off = QueryEmbeddingCache(capacity=0)
    off.put(_key("a"), np.ones(3))
    assert off.get(_key("a")) is None and len(off) == 0
    with pytest.raises(ValueError, match="capacity"):
        QueryEmbeddingCache(capacity=-1)


def test_the_lru_stays_bounded_and_consistent_under_threads() -> None:
    cache = QueryEmbeddingCache(capacity=50)
    wrong: list[str] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for n in rng.integers(0, 200, size=2000).tolist():
            key = _key(f"q{n}")
            vector = cache.get(key)
            if vector is None:
                cache.put(key, np.full(4, float(n)))
            elif vector[0] != n:
                wrong.append(key.text)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong and len(cache) == 50
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == 8 * 2000


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_index(tmp_path_factory, DOCUMENTS, "latency").root


@pytest.fixture
def index(root: Path, tmp_path: Path) -> Index:
    copy = tmp_path / "index"
    shutil.copytree(root, copy)
    return Index.open(copy)


def test_a_repeated_query_is_answered_from_the_cache_with_the_same_results(index: Index) -> None:
    query = "parabolic equation of heat diffusion"
    first = index.search(query, k=3, mode="dense")
    stats = index.query_cache.stats()
    assert stats["entries"] == 1 and stats["hits"] == 0
    second = index.search(query, k=3, mode="hybrid")
    assert index.query_cache.stats()["hits"] == 1 and index.info()["query_cache"] == index.query_cache.stats()
    assert index.search(query, k=3, mode="dense") == first and first[0].doc_id == "d5" and second[0].doc_id == "d5"
    # the cached vector is what the index's own encoder makes of the query, with the model's query prompt
    encoder = Encoder("minilm", precision=index.manifest.precision, use_cache=False, show_progress=False)
    fingerprint, prompt = index._query_embedder().identity()
    cached = index.query_cache.get(QueryKey(query, fingerprint, prompt))
    np.testing.assert_allclose(cached, encoder.encode([query], kind="query")[0], atol=1e-5)
    assert prompt == query_prompt(encoder.model)


def test_a_batch_encodes_each_new_text_once_and_bm25_needs_no_vector(index: Index) -> None:
    queries = ["vertex colouring of graphs", "heat diffusion", "vertex colouring of graphs"]
    results = index.search_batch(queries, k=2, mode="hybrid")
    assert results[0] == results[2] and results[0][0].doc_id == "d4"
    assert index.query_cache.stats() == {"entries": 2, "capacity": index.query_cache.capacity, "hits": 0,
                                         "misses": 3}
    index.search("graph colouring", k=2, mode="bm25")
    assert len(index.query_cache) == 2


def test_warm_up_loads_the_encoder_and_keeps_no_query(index: Index) -> None:
    assert index._encoder is None  # an opened index loads its model lazily
    index.warm_up()
    assert index._encoder is not None and len(index.query_cache) == 0
    assert index.search("structure constants of the Hall algebra", k=1)[0].doc_id == "d2"


def test_swapping_the_query_encoder_drops_the_old_vectors(index: Index) -> None:
    """After ``adapt`` swaps the encoder, a repeated query is encoded by the new one, not served from the LRU."""
    query = "structure constants of the Hall algebra"
    index.search(query, k=1, mode="dense")
    old_fingerprint, old_prompt = index._query_embedder().identity()
    old = index.query_cache.get(QueryKey(query, old_fingerprint, old_prompt)).copy()
    # A real query encoder: the index's model with a query prompt (its document route is unchanged).
    model_dir = next_model_dir(index.root)
    shutil.copytree(resolve_model("minilm").location, model_dir)
    config = model_dir / "config_sentence_transformers.json"
    settings = json.loads(config.read_text(encoding="utf-8"))
    config.write_text(json.dumps({**settings, "prompts": {"query": "query: ", "document": ""}}), encoding="utf-8")
    swap_in(index.root, model_dir, index_document_fingerprint(IndexManifest.read(index.root)))

    index.search(query, k=1, mode="dense")  # notices the new index.json, loads the new encoder
    fingerprint, prompt = index._query_embedder().identity()
    assert prompt == "query: " and len(index.query_cache) == 1
    assert index.query_cache.get(QueryKey(query, old_fingerprint, old_prompt)) is None
    new = index.query_cache.get(QueryKey(query, fingerprint, prompt))
    expected = Encoder(str(model_dir), precision=index.manifest.precision, use_cache=False, show_progress=False)
    np.testing.assert_allclose(new, expected.encode([query], kind="query")[0], atol=1e-5)
    assert float(new @ old) < 0.9999  # the prompt changed the vector: the old one was not reused


def test_snippets_still_find_every_inflection_of_the_query_words() -> None:
    """Only words that begin like a query stem are stemmed now: the matches must be the same words as before."""
    from fieldtune.search.snippet import make_snippet, mark

    text = "Proteins fold; FOLDED chains, folding and unfolded ones. Lying and dying cells lie still."
    snippet, highlights = make_snippet(text, "folding of dying cells")
    assert mark(snippet, highlights) == ("Proteins [fold]; [FOLDED] chains, [folding] and unfolded ones. "
                                         "Lying and [dying] [cells] lie still.")
    # "lying" stems to "lie", which begins differently from the word: it is still found
    assert mark(*make_snippet(text, "lie")) == "Proteins fold; FOLDED chains, folding and unfolded ones. " \
                                              "[Lying] and dying cells [lie] still."
    # a letter whose lower case is longer (offsets would shift) takes the word-by-word path
    snippet, highlights = make_snippet("İstanbul cells fold", "cell")
    assert mark(snippet, highlights) == "İstanbul [cells] fold"
    assert make_snippet(text, "the of and") == (text, [])  # stop words only: nothing to highlight


def test_score_fusion_matches_a_hand_computed_table() -> None:
    """Score fusion (in numpy): min-max per system, weighted sum, each key's row from the system ranking it higher."""
    from fieldtune.search.fusion import Hits, weighted_scores

    dense = Hits.ranked(np.array([1, 2, 3]), np.array([0.9, 0.5, 0.1]), np.array([10, 20, 30]))
    bm25 = Hits.ranked(np.array([3, 4]), np.array([10.0, 5.0]), np.array([31, 41]))
    fused = weighted_scores(dense, bm25, 0.5)
    # dense normalised 1, 0.5, 0; BM25 1, 0: key 1 -> 0.5, 2 -> 0.25, 3 -> 0 + 0.5, 4 -> 0; ties by smaller key
    assert fused.keys.tolist() == [1, 3, 2, 4]
    assert fused.scores.tolist() == [0.5, 0.5, 0.25, 0.0]
    assert fused.rows.tolist() == [10, 31, 20, 41]  # key 3: BM25 ranks it first, dense third
    tie = weighted_scores(Hits.ranked(np.array([5]), np.array([0.3]), np.array([50])),
                          Hits.ranked(np.array([5]), np.array([2.0]), np.array([51])), 0.3)
    assert tie.rows.tolist() == [50] and tie.scores.tolist() == [1.0]  # same rank in both: the dense row
    assert len(weighted_scores(Hits.empty(), Hits.empty())) == 0


def test_queries_that_arrive_together_each_get_their_own_vector(index: Index) -> None:
    """Callers waiting for the encoder are encoded in one batch: each must still get its own query's vector."""
    queries = [f"{topic} number {n}" for n, topic in enumerate(["tableaux", "Hall algebra", "chaperones", "colouring",
                                                                 "heat flow", "p-groups", "diffusion", "vertices"])]
    embedder = index._query_embedder()
    barrier = threading.Barrier(len(queries))
    vectors: dict[int, np.ndarray] = {}

    def ask(n: int) -> None:
        barrier.wait()
        vectors[n] = embedder.encode([queries[n]])[0]

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(queries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = Encoder("minilm", precision=index.manifest.precision, use_cache=False, show_progress=False)
    expected = alone.encode(queries, kind="query")
    for n in range(len(queries)):
        np.testing.assert_allclose(vectors[n], expected[n], atol=1e-5)


def test_waiting_texts_are_split_into_batches_of_similar_length() -> None:
    from fieldtune.search.query_models import length_groups

    lengths = [12, 300, 15, 11, 290, 14]
    groups = length_groups(lengths, call_cost=64)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))  # each text exactly once
    assert sorted(sorted(group) for group in groups) == [[0, 2, 3, 5], [1, 4]]  # the two long ones apart

    def cost(split: list[list[int]]) -> int:
        return sum(64 + len(group) * max(lengths[i] for i in group) for group in split)

    everything, one_by_one = [list(range(len(lengths)))], [[i] for i in range(len(lengths))]
    assert cost(groups) < min(cost(everything), cost(one_by_one))
    assert length_groups([20, 21, 22], call_cost=64) == [[0, 1, 2]]  # similar lengths stay one batch
    assert length_groups([]) == []


def test_a_batch_with_a_long_query_gives_each_query_its_own_vector(index: Index) -> None:
    """A batch split by length: every caller still gets the vector of its own text, as if encoded alone."""
    long_query = " ".join(["the structure constants of the Hall algebra of a discrete valuation ring"] * 12)
    texts = ["heat flow", long_query, "graph colouring", "chaperone proteins fold", long_query[:200]]
    vectors = index._query_embedder().encode(texts)
    alone = Encoder("minilm", precision=index.manifest.precision, use_cache=False, show_progress=False)
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector, alone.encode([text], kind="query")[0], atol=1e-5)


@pytest.mark.slow
def test_an_openvino_query_encoder_pads_its_batches_without_changing_a_vector(tmp_path: Path) -> None:
    """The graph path pads a batch to a multiple of PAD_TOKENS tokens: every query's vector stays its own."""
    ov = pytest.importorskip("openvino")
    from fieldtune.encoders.openvino import OpenVinoModel
    from fieldtune.export import export_onnx
    from fieldtune.onnx_layout import ONNX_FILE, ONNX_RECORD, OPENVINO_FILE
    from fieldtune.search.query_cache import QueryEmbeddingCache
    from fieldtune.search.query_models import PAD_TOKENS, QueryEmbedder

    model_dir = export_onnx("minilm", tmp_path / "graph")  # an fp32 graph, run by OpenVINO as an int8 one is
    ov.save_model(ov.convert_model(str(model_dir / ONNX_FILE)), str(model_dir / OPENVINO_FILE))
    (model_dir / ONNX_FILE).unlink()
    record = json.loads((model_dir / ONNX_RECORD).read_text(encoding="utf-8"))
    record["files"] = sorted(p.name for p in model_dir.iterdir() if p.name != ONNX_RECORD) + [ONNX_RECORD]
    (model_dir / ONNX_RECORD).write_text(json.dumps(record), encoding="utf-8")
    encoder = Encoder(str(model_dir), use_cache=False, show_progress=False)
    assert isinstance(encoder.model, OpenVinoModel)
    embedder = QueryEmbedder(encoder, QueryEmbeddingCache(), threading.Lock())
    texts = ["heat flow", "graph colouring of planar maps", "chaperone proteins fold",
             " ".join(["structure constants of the Hall algebra"] * 6)]
    lengths = [len(encoder.model.feed([text])["input_ids"][0]) for text in texts]
    assert any(length % PAD_TOKENS for length in lengths)  # some batch really is padded
    vectors = embedder.encode(texts)
    for text, vector in zip(texts, vectors, strict=True):
        alone = encoder.model.encode_query([text], batch_size=1)[0]  # exact length, no padding
        np.testing.assert_allclose(vector, alone / np.linalg.norm(alone), atol=1e-5)


def test_searches_waiting_together_run_as_one_batch_and_a_failure_reaches_only_its_batch() -> None:
    from fieldtune.search.coalesce import Coalescer

    release = threading.Event()
    batches: list[tuple[str, list[str]]] = []

    def run(queries: list[str], settings: str) -> list[str]:
        batches.append((settings, list(queries)))
        if queries == ["first"]:
            release.wait(30)  # the others queue up meanwhile
        if settings == "bad":
            raise ValueError("bad settings")
        return [f"{settings}:{query}" for query in queries]

    coalescer: Coalescer[str, str] = Coalescer(run)
    answers: dict[str, object] = {}

    def ask(query: str, settings: str) -> None:
        try:
            answers[query] = coalescer.submit(query, settings)
        except ValueError as error:
            answers[query] = error

    first = threading.Thread(target=ask, args=("first", "k10"))
    first.start()
    while not batches:
        release.wait(0.01)
    others = [threading.Thread(target=ask, args=(q, s)) for q, s in [("b", "k10"), ("c", "k10"), ("d", "bad")]]
    for thread in others:
        thread.start()
    while sum(len(w) for w in coalescer._waiting.values()) < 3:
        release.wait(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert batches[0] == ("k10", ["first"])
    assert sorted((s, sorted(q)) for s, q in batches[1:]) == [("bad", ["d"]), ("k10", ["b", "c"])]
    assert answers["first"] == "k10:first" and answers["b"] == "k10:b" and answers["c"] == "k10:c"
    assert isinstance(answers["d"], ValueError)
    assert coalescer.batches == 2 and coalescer.queries == 3  # the failed batch is not counted


def test_concurrent_searches_get_the_results_of_searching_alone(index: Index) -> None:
    queries = ["Kostka numbers and tableaux", "Hall polynomials", "chaperone proteins", "graph colouring",
               "heat equation diffusion", "abelian p-groups", "semistandard shape", "adjacent vertices"]
    alone = {(q, mode): index.search_batch([q], k=3, mode=mode)[0] for q in queries for mode in ("hybrid", "dense")}
    barrier = threading.Barrier(2 * len(queries))
    got: dict[tuple[str, str], object] = {}

    def ask(query: str, mode: str) -> None:
        barrier.wait()
        got[(query, mode)] = index.search(query, k=3, mode=mode)

    threads = [threading.Thread(target=ask, args=key) for key in alone]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # the same documents in the same order; scores equal but for float rounding (a batch pads its queries)
    assert {key: _ranking(results) for key, results in got.items()} == {key: _ranking(r) for key, r in alone.items()}
    for key, results in got.items():
        np.testing.assert_allclose([r.score for r in results], [r.score for r in alone[key]], atol=1e-5)
    # and a batch answers each query as it would be answered alone
    together = index.search_batch(queries, k=3, mode="hybrid")
    assert [_ranking(r) for r in together] == [_ranking(alone[(q, "hybrid")]) for q in queries]


def _ranking(results: list) -> list[tuple[str, str, str]]:
    return [(r.doc_id, r.chunk_id, r.snippet) for r in results]
