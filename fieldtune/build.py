"""``fieldtune build``: corpus -> chunks -> concept graph -> pairs -> hard negatives -> tuned model -> evaluation -> card.

Every stage runs through :class:`~fieldtune.workdir.WorkDir`: unchanged stages
are skipped, an interrupted stage runs again (training resumes from its last
checkpoint), and nothing already built is replaced by a partial artifact.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fieldtune.chunking import ChunkingConfig
from fieldtune.encoding import Precision, auto_precision, document_text
from fieldtune.errors import FieldtuneError
from fieldtune.gate import GateConfig
from fieldtune.ingest import OnError
from fieldtune.mining import MiningConfig
from fieldtune.pairs import PairConfig
from fieldtune.pipeline import CHUNKS, DOCUMENTS, chunk_stage, ingest_stage, load_chunks
from fieldtune.types import Chunk, Pair
from fieldtune.workdir import StageResult, WorkDir, json_sha256, read_jsonl, write_json, write_jsonl

logger = logging.getLogger("fieldtune.build")

GRAPH = "graph.json"
GRAPHML = "graph.graphml"
PAIRS_DIR = "pairs"
DERIVED_DIR = "derived"
DERIVED_DEV_DIR = "derived-dev"
MINED_DIR = "mined"
TRAINING_DIR = "training"
MODEL_DIR = "model"
EVAL_DIR = "eval"
MIN_DOCUMENTS = 20
MIN_TRAIN_PAIRS = 64


class CorpusTooSmallError(FieldtuneError):
    """Too little text to learn anything from."""


class LeakageError(FieldtuneError):
    """The leakage check found held-out text among training anchors."""


@dataclass(frozen=True)
class BuildConfig:
    base: str = "minilm"
    budget_minutes: float | None = 15.0
    seed: int = 0
    eval_data: tuple[str, ...] = ()
    chunking: ChunkingConfig = ChunkingConfig()
    pairs: PairConfig = PairConfig()
    mining: MiningConfig = MiningConfig()
    on_error: OnError = OnError.STOP
    precision: Precision | None = None  # encoding for mining/evaluation; None = bf16 where supported
    gate: GateConfig = GateConfig()
    #: append the corpus-fitted principal rotation (fieldtune.rotation) so truncated dimensions keep more
    rotate: bool = True
    train_overrides: dict[str, Any] = field(default_factory=dict)

    def encode_precision(self) -> Precision:
        return self.precision or auto_precision()


@dataclass
class BuildResult:
    out: Path
    stages: list[StageResult]
    evaluations: dict[str, dict[str, Any]]
    seconds: float

    @property
    def model_dir(self) -> Path:
        return self.out / MODEL_DIR


def chunk_texts(chunks: Sequence[Chunk]) -> dict[str, str]:
    """What the model sees for each chunk: its document's title, then its text."""
    return {c.id: document_text(c.title, c.text) for c in chunks}


def _read_pairs(path: Path) -> list[Pair]:
    return [Pair.from_dict(r) for r in read_jsonl(path)] if path.exists() else []


def concepts_stage(workdir: WorkDir, config: BuildConfig) -> StageResult:
    from fieldtune.concepts import ConceptConfig, build_graph

    concept_config = ConceptConfig()

    def build() -> dict[str, Any]:
        graph = build_graph(load_chunks(workdir), config=concept_config, model=config.base, cache_dir=workdir.path("cache"))
        graph.write(workdir.root)
        return {"concepts": len(graph.concepts), "edges": len(graph.edges), **{k: v for k, v in graph.stats.items() if isinstance(v, (int, float, str, dict))}}

    return workdir.run_stage(
        "concepts", inputs={"chunks": workdir.path(CHUNKS)},
        params={"config": asdict(concept_config), "model": config.base, "extractor": "statistical"},
        outputs=[GRAPH, GRAPHML], build=build,
    )


def pairs_stage(workdir: WorkDir, config: BuildConfig) -> StageResult:
    from fieldtune.concepts import read_graph
    from fieldtune.evaluate.beir import write_beir
    from fieldtune.pairs import check_leakage, derived_eval_set, generate_pairs

    pair_config = replace(config.pairs, seed=config.seed)

    def build() -> dict[str, Any]:
        chunks = load_chunks(workdir)
        graph = read_graph(workdir.root)
        pairs = generate_pairs(chunks, graph.concepts, graph.edges, pair_config)
        report = check_leakage(pairs.train, pairs.dev + pairs.test, {c.id: c for c in graph.concepts})
        if not report.clean:
            raise LeakageError(f"leakage check failed ({len(report.leaks)} leaks), first: {report.leaks[0]}")
        if len(pairs.train) < MIN_TRAIN_PAIRS:
            raise CorpusTooSmallError(
                f"only {len(pairs.train)} training pairs from {len(chunks)} chunks and {len(graph.concepts)} concepts; "
                f"at least {MIN_TRAIN_PAIRS} are needed. Add documents (a few hundred abstracts is a good start)."
            )
        directory = workdir.path(PAIRS_DIR)
        for split in ("train", "dev", "test"):
            write_jsonl(directory / f"{split}.jsonl", (p.to_dict() for p in getattr(pairs, split)))
        write_jsonl(directory / "texts.jsonl", ({"id": k, "text": v} for k, v in sorted(pairs.derived_texts.items())))
        derived = derived_eval_set(chunks, graph.concepts, pairs.test)
        if not derived.queries:
            raise CorpusTooSmallError("no held-out concept has a relevant chunk; the derived test set would be empty")
        write_beir(derived, workdir.path(DERIVED_DIR))
        dev_set = derived_eval_set(chunks, graph.concepts, pairs.dev)
        write_beir(dev_set, workdir.path(DERIVED_DEV_DIR))
        return {"derived_dev_queries": len(dev_set.queries), "counts": pairs.counts(), "dropped": dict(pairs.dropped), "leakage": report.to_dict(),
                "derived_queries": len(derived.queries)}

    return workdir.run_stage(
        "pairs", inputs={"chunks": workdir.path(CHUNKS), "graph": workdir.path(GRAPH)},
        params=asdict(pair_config) | {"kinds": [k.value for k in pair_config.kinds]},
        outputs=[f"{PAIRS_DIR}/{s}.jsonl" for s in ("train", "dev", "test", "texts")] + [DERIVED_DIR, DERIVED_DEV_DIR],
        build=build,
    )


def _all_texts(workdir: WorkDir) -> dict[str, str]:
    texts = chunk_texts(load_chunks(workdir))
    texts.update({r["id"]: r["text"] for r in read_jsonl(workdir.path(PAIRS_DIR) / "texts.jsonl")})
    return texts


def mine_stage(workdir: WorkDir, config: BuildConfig) -> StageResult:
    from fieldtune.concepts import read_graph
    from fieldtune.mining import mine_with_model

    mining = replace(config.mining, seed=config.seed)

    def build() -> dict[str, Any]:
        texts = _all_texts(workdir)
        concepts = {c.id: c for c in read_graph(workdir.root).concepts}
        stats = {}
        for split in ("train", "dev"):
            pairs = _read_pairs(workdir.path(PAIRS_DIR) / f"{split}.jsonl")
            mined, mining_stats = mine_with_model(pairs, texts, concepts, model=config.base, config=mining, precision=config.encode_precision().value)
            write_jsonl(workdir.path(MINED_DIR) / f"{split}.jsonl", (p.to_dict() for p in mined))
            stats[split] = mining_stats.to_dict()
        return stats

    return workdir.run_stage(
        "mine", inputs={"pairs": workdir.path(PAIRS_DIR), "chunks": workdir.path(CHUNKS)},
        params={**asdict(mining), "model": config.base, "precision": config.encode_precision().value},
        outputs=[f"{MINED_DIR}/train.jsonl", f"{MINED_DIR}/dev.jsonl"], build=build,
    )


def _train_config(config: BuildConfig) -> Any:
    from fieldtune.training import TrainConfig

    return TrainConfig(base=config.base, budget_minutes=config.budget_minutes, seed=config.seed, **config.train_overrides)


def train_stage(workdir: WorkDir, config: BuildConfig) -> StageResult:
    from fieldtune.training import train

    train_config = _train_config(config)
    params = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(train_config).items()}
    key = json_sha256(params)[:16]
    training_dir = workdir.path(TRAINING_DIR)

    def build() -> dict[str, Any]:
        # Checkpoints of a run with other settings must not be resumed.
        marker = training_dir / "config-key"
        if training_dir.exists() and (not marker.exists() or marker.read_text() != key):
            shutil.rmtree(training_dir)
        training_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(key)
        texts = _all_texts(workdir)
        result = train(
            _read_pairs(workdir.path(MINED_DIR) / "train.jsonl"), _read_pairs(workdir.path(MINED_DIR) / "dev.jsonl"),
            texts, out_dir=training_dir, config=train_config,
        )
        return _jsonable(asdict(result) if hasattr(result, "__dataclass_fields__") else dict(result))

    return workdir.run_stage(
        "train", inputs={"mined": workdir.path(MINED_DIR), "texts": workdir.path(PAIRS_DIR) / "texts.jsonl"},
        params=params, outputs=[f"{TRAINING_DIR}/{MODEL_DIR}/fieldtune.json"], build=build,
    )


def gate_stage(workdir: WorkDir, config: BuildConfig) -> StageResult:
    """Install the best of trained / averaged-with-base / base on the dev split as ``model/``."""
    from fieldtune.gate import GATE_RECORD, run_gate
    from fieldtune.rotation import add_rotation

    trained = workdir.path(TRAINING_DIR) / MODEL_DIR
    dev = workdir.path(DERIVED_DEV_DIR)

    def build() -> dict[str, Any]:
        if not (dev / "queries.jsonl").is_file() or not any(read_jsonl(dev / "queries.jsonl")):
            logger.warning("no dev concepts with relevant chunks: the quality gate cannot run; installing the trained model")
            record: dict[str, Any] = {"chosen": "trained", "scores": {}, "reason": "no dev queries"}
            source = trained
        else:
            record = run_gate(trained, config.base, dev, workdir.path(TRAINING_DIR), config=config.gate,
                              precision=config.encode_precision(), seed=config.seed)
            source = Path(record["directory"]) if record["chosen"] != "base" else _base_copy(trained, config, workdir)
        if config.rotate:
            final = workdir.path(TRAINING_DIR) / "final"
            if final.exists():
                shutil.rmtree(final)
            shutil.copytree(source, final)
            texts = list(chunk_texts(load_chunks(workdir)).values())
            record["rotation"] = add_rotation(final, texts, seed=config.seed, precision=config.encode_precision().value)
            source = final
        _install_model(source, workdir.path(MODEL_DIR))
        write_json(workdir.path(MODEL_DIR) / GATE_RECORD, record)
        return {k: v for k, v in record.items() if k != "directory"}

    return workdir.run_stage(
        "gate", inputs={"trained": trained / "model.safetensors", "dev": dev / "qrels"},
        params={**asdict(config.gate), "precision": config.encode_precision().value, "base": config.base,
                "rotate": config.rotate},
        outputs=[f"{MODEL_DIR}/fieldtune.json", f"{MODEL_DIR}/config.json", f"{MODEL_DIR}/gate.json"], build=build,
    )


def _base_copy(trained: Path, config: BuildConfig, workdir: WorkDir) -> Path:
    """The base model saved as a build's model (its own prompts, none of the trained ones), with a record saying why."""
    from fieldtune.models import load_model

    target = workdir.path(TRAINING_DIR) / "base-kept"
    if target.exists():
        shutil.rmtree(target)
    load_model(config.base, device="cpu").save(str(target))
    record = json.loads((trained / "fieldtune.json").read_text(encoding="utf-8"))
    record.update({"prompts": {}, "kept_base": True, "note": "the quality gate kept the base model's weights"})
    (target / "fieldtune.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return target


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _install_model(source: Path, target: Path) -> None:
    """Move the trained model into place; the previous one is removed only once the new one is complete."""
    if not (source / "fieldtune.json").exists():
        raise FieldtuneError(f"training finished without a model in {source}")
    staging = target.with_name(target.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(source, staging)
    if target.exists():
        old = target.with_name(target.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def eval_stage(workdir: WorkDir, config: BuildConfig) -> StageResult:
    from fieldtune.evaluate.harness import EvalOptions, run_evaluation
    from fieldtune.evaluate.report import to_markdown

    sets = {"derived": workdir.path(DERIVED_DIR), **{Path(p).name: Path(p) for p in config.eval_data}}
    options = EvalOptions(precision=config.encode_precision(), seed=config.seed)

    def build() -> dict[str, Any]:
        summary = {}
        for name, path in sets.items():
            result = run_evaluation(str(workdir.path(MODEL_DIR)), path, ["base", "bm25"], options)
            write_json(workdir.path(EVAL_DIR) / f"{name}.json", result)
            (workdir.path(EVAL_DIR) / f"{name}.md").write_text(to_markdown(result), encoding="utf-8")
            summary[name] = {s: r["results"][next(iter(r["results"]))]["ndcg@10"] for s, r in result["systems"].items()}
        return {"ndcg@10": summary}

    return workdir.run_stage(
        "eval", inputs={"model": workdir.path(MODEL_DIR) / "model.safetensors", **{f"data:{n}": p / "qrels" for n, p in sets.items()}},
        params={"precision": options.precision.value, "seed": options.seed, "sets": sorted(sets)},
        outputs=[f"{EVAL_DIR}/{name}.json" for name in sets], build=build,
    )


def card_stage(workdir: WorkDir, config: BuildConfig, corpus: str | Path) -> StageResult:
    from fieldtune.card import write_card

    def build() -> dict[str, Any]:
        write_card(workdir.root, corpus=str(corpus), config=config)
        return {}

    return workdir.run_stage(
        "card", inputs={"manifest-eval": workdir.path(EVAL_DIR), "graph": workdir.path(GRAPH)},
        params={"corpus": str(corpus)}, outputs=[f"{MODEL_DIR}/README.md"], build=build,
    )


STAGES = ("ingest", "chunk", "concepts", "pairs", "mine", "train", "gate", "eval", "card")


def run_build(corpus: str | Path, out: str | Path, config: BuildConfig | None = None, *, until: str = "card") -> BuildResult:
    """Run every stage up to ``until`` (inclusive); return what was built and the evaluations."""
    if until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
    config = config or BuildConfig()
    started = time.time()
    workdir = WorkDir(out)
    stages = [ingest_stage(workdir, corpus, config.on_error)]
    n_docs = sum(1 for _ in read_jsonl(workdir.path(DOCUMENTS)))
    if n_docs < MIN_DOCUMENTS:
        raise CorpusTooSmallError(f"{corpus}: {n_docs} documents; fieldtune needs at least {MIN_DOCUMENTS} to build a model (a few hundred is better)")
    stages.append(chunk_stage(workdir, config.base, config.chunking))
    for stage in (concepts_stage, pairs_stage, mine_stage, train_stage, gate_stage, eval_stage):
        if STAGES.index(until) < STAGES.index(stages[-1].name) + 1:
            break
        logger.info("stage %s ...", stage.__name__.removesuffix("_stage"))
        stages.append(stage(workdir, config))
    if until == "card":
        stages.append(card_stage(workdir, config, corpus))
    evaluations = {p.stem: json.loads(p.read_text()) for p in sorted(workdir.path(EVAL_DIR).glob("*.json"))}
    return BuildResult(workdir.root, stages, evaluations, round(time.time() - started, 1))
