"""The model card (``DIR/model/README.md``), in the spirit of the reference cards, with honest tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fieldtune.concepts.graph import read_graph
from fieldtune.evaluate.plots import card_figures
from fieldtune.evaluate.report import comparison_rows, dimension_rows, markdown_table, summary_rows
from fieldtune.evaluate.result import EvaluationResult
from fieldtune.gate import TEACHER_METRIC
from fieldtune.hub_metadata import card_data
from fieldtune.model_record import GateRecord, ModelRecord
from fieldtune.stages.artifacts import MODEL, MODEL_CARD, QUERY_DEV_SET
from fieldtune.training.losses import LOSSES
from fieldtune.training.query_model import QUERY_SIDE_KEY
from fieldtune.types import EdgeType
from fieldtune.workdir import WorkDir, atomic_write

#: where a build keeps its model and its evaluations, relative to the work directory
EVAL_DIR = "eval"
#: ends the usage line that loads the model, so a pushed card can name the Hub repository instead of a local path
USAGE_MARK = "  # this model"

DERIVED_EXPLAINED = (
    "**What the derived test set is, and is not.** It is made from the corpus alone: the concepts of a "
    "held-out part of the concept graph (split by concept, never seen in training) become queries (the "
    "concept's name), and the chunks where that concept is central are the relevant documents; every "
    "chunk of the corpus is a candidate. A leakage check verified that no held-out concept, alias or "
    "query text appears among the training anchors. It measures whether the model learned the field's "
    "vocabulary well enough to find passages about concepts it was not trained on. It is *not* a set of "
    "real users' queries, its labels come from an automatic extractor (relevant chunks that never name "
    "the concept are not labelled), and concept names favour lexical matching, which is why BM25 is "
    "strong on it. Judge the model on your own queries, or on an external set (`--eval-data`)."
)


def _eval_section(name: str, result: EvaluationResult) -> list[str]:
    counts = result.counts
    lines = [f"### {'Derived test set (held-out concepts)' if name == 'derived' else name}", "",
             f"{counts.documents:,} documents, {counts.judged_queries:,} judged queries. "
             f"Paired bootstrap 95% CIs over queries ({result.settings.bootstrap_resamples:,} resamples); "
             "Δ is this model minus the other system; * marks a CI that excludes zero.", ""]
    gain = _gain_sentence(result)
    if gain:
        lines += [gain, ""]
    for header, rows in (summary_rows(result), dimension_rows(result), comparison_rows(result)):
        lines += [*markdown_table(header, rows), ""]
    return lines


def _gain_sentence(result: EvaluationResult) -> str | None:
    """The gain over the first dense baseline at full dimension with its CI: the number a reader looks for first."""
    full = result.system().full_dim
    dense = [name for name in result.baselines if result.system(name).kind == "dense"]
    for comp in result.comparisons:
        if dense and comp.system == dense[0] and comp.model_dim == full and comp.system_dim == comp.model_dim:
            d = comp.model_minus_system
            verdict = "significant" if d.significant else "not significant: the CI includes zero"
            return (f"**Gain over {comp.system}** ({comp.metric}, {full} dimensions): {d.delta:+.4f}, "
                    f"95% CI [{d.ci_low:+.4f}, {d.ci_high:+.4f}] over {d.n_queries:,} queries ({verdict}).")
    return None


GATE_EXPLAINED = {
    "trained": "The trained weights beat the base there, and are the ones in this directory.",
    "averaged": ("The trained weights averaged with the base's did best there, so this directory holds that average "
                 "(weight-space ensembling keeps more of what the base knew)."),
    "adapted": ("The query encoder adapted to the teacher beat the base there; documents keep the base's embeddings "
                "(the document route is the base, unchanged)."),
    "adapted-averaged": ("The adapted query encoder averaged with the base's did best there, so the query route "
                         "holds that average; documents keep the base's embeddings."),
    "base": ("**No trained candidate beat the base there, so this directory "
             "holds the base model's weights unchanged** (plus the rotation described below, if any). "
             "Training on this corpus did not help; the evaluation "
             "below compares the base with itself and with BM25."),
}


def _gate_section(gate: GateRecord | None) -> list[str]:
    if gate is None:
        return []
    scores = gate.scores
    lines = ["## Quality gate", ""]
    if not scores:
        return [*lines, f"Not run ({gate.reason or 'no dev data'}); the trained weights are installed.", ""]
    rotation = gate.rotation
    if rotation:
        lines_rotation = [
            "A final bias-free linear layer rotates the embeddings into the principal axes of this corpus's "
            f"embeddings (fitted on {rotation.get('texts', '?'):,} chunks): inner products at full dimension are "
            "unchanged, and the first coordinates, which Matryoshka truncation keeps, carry more of the signal "
            f"(share of energy in the first 128 coordinates {rotation.get('energy@128:before', 0):.0%} before, "
            f"{rotation.get('energy@128:after', 0):.0%} after). Gains at truncated dimensions over the base come "
            "partly from this rotation, which any model could be given.", ""]
    else:
        lines_rotation = []
    return [*lines, _gate_sentence(gate) + " " + GATE_EXPLAINED[gate.chosen], "", *lines_rotation]


def _gate_sentence(gate: GateRecord) -> str:
    """Which candidates were scored, on what, by which measure, under which rule."""
    candidates = [name for name in gate.scores if name != "base"]
    if gate.metric == TEACHER_METRIC:
        where = ("on your queries held out from training, by how closely each ranks their candidates like the "
                 "teacher (minus the listwise KL divergence from the teacher; higher is better)")
    elif (gate.dev_queries_file or "").endswith(QUERY_DEV_SET.split("/")[-1]):
        where = ("on your queries held out from training (judged by your labels, or else the teacher's top ten), "
                 "nDCG@10")
    else:
        where = ("on the dev split's derived task (held-out dev concepts as queries; the test split is untouched), "
                 "nDCG@10")
    scores = ", ".join(f"{name} {value:.4f}" for name, value in gate.scores.items())
    sentence = (f"Before installing a model the build scored {len(candidates)} candidates and the base {where}: "
                f"{scores}.")
    if gate.required_significance:
        sentence += (" Without your own queries a candidate must beat the base with a paired-bootstrap 95% CI "
                     "above zero.")
    if gate.gains:
        gains = (f"{name} {g['delta']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]"
                 for name, g in gate.gains.items())
        sentence += " Gains over the base [95% CI]: " + ", ".join(gains) + "."
    return sentence


def _loss_line(record: ModelRecord) -> str:
    """The loss the training run recorded, not the default one (its registered name if this version lacks it)."""
    name = record.loss
    loss = "not recorded" if name is None else LOSSES[name].title if name in LOSSES else f"`{name}`"
    patience = record.config.get("early_stopping_patience")
    stopping = "early stopping on dev loss" if patience is None or patience > 0 else "no early stopping"
    if _query_side(record):
        return (f"Loss: `{name}` ({loss} form, over each query's teacher-scored candidates) at every Matryoshka "
                f"dimension, on the query encoder only; {stopping}, best state kept.")
    return (f"Loss: {loss} inside MatryoshkaLoss (sentence-transformers), no-duplicates batches, "
            f"{stopping}, best checkpoint kept.")


def _query_side(record: ModelRecord) -> bool:
    return bool(record.extra.get(QUERY_SIDE_KEY))


def _how_trained(record: ModelRecord, stats: dict[str, Any]) -> str:
    if _query_side(record):
        queries = stats.get("queries", {})
        return (f"with its query encoder adapted to {queries.get('train', '?'):,} queries scored by a teacher "
                "(documents keep the base model's embeddings)")
    return "with pairs drawn from a concept graph of the corpus"


def _query_data_section(stats: dict[str, Any]) -> list[str]:
    queries, teacher = stats.get("queries", {}), stats.get("teacher", {})
    train = teacher.get("train", {})
    return [
        "## Training data", "",
        f"{queries.get('train', '?'):,} training queries and {queries.get('dev', '?'):,} held out for the quality gate "
        f"({queries.get('report', '')}; {queries.get('labelled', 0):,} with judged documents, "
        f"{queries.get('pseudo', 0):,} pseudo-queries from the corpus). For each query the teacher (search's hybrid "
        "fusion of BM25 and the base model) scored the union of the top chunks by BM25 and by the base model: "
        f"{train.get('mean_candidates', '?')} candidates per query on average. The query encoder learned to rank "
        "them as the teacher does; the document encoder is the base model, unchanged.", "",
    ]


def _pair_data_section(stats: dict[str, Any], config: Any) -> list[str]:
    pair_stats = stats.get("pairs", {})
    counts = pair_stats.get("counts", {})
    kinds = sorted({k for split in counts.values() for k in split})
    return [
        "## Training data", "",
        *markdown_table(["Pair kind", *counts.keys()],
                        [[k, *(f"{counts[s].get(k, 0):,}" for s in counts)] for k in kinds]), "",
        f"Split by concept (dev {config.pairs.dev_fraction:.0%}, test {config.pairs.test_fraction:.0%} of concepts). "
        f"Training anchors dropped to keep held-out concepts unseen: {json.dumps(pair_stats.get('dropped', {}))}. "
        f"Leakage check: {'clean' if pair_stats.get('leakage', {}).get('clean') else 'see manifest'} "
        f"({pair_stats.get('leakage', {}).get('train_anchors', '?')} training anchors vs "
        f"{pair_stats.get('leakage', {}).get('held_out_anchors', '?')} held-out anchors).", "",
        f"Hard negatives mined with the base model, refusing false negatives (same anchor's positives, same document, "
        f"chunks naming the concept, scores within {config.mining.margin:.0%} of the positive): "
        f"{json.dumps(stats.get('mine', {}).get('train', {}))}.", "",
    ]


def read_evaluations(root: Path) -> dict[str, EvaluationResult]:
    """The build's evaluations by set name (``eval/<set>.json``)."""
    return {p.stem: EvaluationResult.read(p) for p in sorted((root / EVAL_DIR).glob("*.json"))}


def render_card(root: Path, *, corpus: str, config: Any, figures: str = "") -> str:
    """The card's Markdown, from the build's manifest, graph, model records and evaluations under ``root``.

    ``figures`` is Markdown showing the evaluation's plots (:func:`write_card` writes them beside the card).
    """
    manifest = WorkDir(root).manifest().get("stages", {})
    graph = read_graph(root)
    model_dir = root / MODEL
    record = ModelRecord.read(model_dir)
    evaluations = read_evaluations(root)
    stats = {name: stage.get("stats", {}) for name, stage in manifest.items()}
    concepts = graph.concepts
    edges = graph.edges
    by_id = {c.id: c.name for c in concepts}
    edge_types: dict[str, int] = {}
    for edge in edges:
        edge_types[edge.type.value] = edge_types.get(edge.type.value, 0) + 1
    base_model = record.base_model or config.base
    dims = record.matryoshka_dims

    metadata = card_data(model_name=root.name, base_model=base_model, evaluations=evaluations,
                         matryoshka=len(dims) > 1, loss=record.loss)
    lines = [
        "---", metadata.to_yaml(), "---", "",
        f"# {root.name}: a retrieval model tuned by fieldtune", "",
        f"Fine-tuned from `{base_model}` on `{Path(corpus).name}` "  # the name: a card may be published
        f"({stats['ingest'].get('documents', '?'):,} documents, "
        f"{stats['chunk'].get('chunks', '?'):,} chunks of at most "
        f"{config.chunking.max_tokens} tokens), {_how_trained(record, stats)}. "
        f"Matryoshka dimensions: {', '.join(map(str, dims))}.", "",
        "## Usage", "", "```python", "from sentence_transformers import SentenceTransformer",
        f'model = SentenceTransformer("{model_dir}"){USAGE_MARK}',
        'queries = model.encode_query(["your question"])        # applies the saved query prompt',
        'docs = model.encode_document(["a passage of the field"])  # applies the saved document prompt',
        f"small = model.encode_query(['...'], truncate_dim={dims[-1] if dims else 64})  # Matryoshka",
        "```", "",
        f"Prompts saved with the model: {json.dumps(dict(record.prompts))}.", "",
        *_gate_section(GateRecord.read(model_dir)), "## Evaluation", "", DERIVED_EXPLAINED, "",
    ]
    for name, result in evaluations.items():
        lines += _eval_section(name, result)
    if figures:
        lines += ["### Figures", "", figures, ""]
    lines += [
        "## The concept graph", "",
        f"{len(concepts):,} concepts and {len(edges):,} edges "
        f"({', '.join(f'{t}: {n:,}' for t, n in sorted(edge_types.items()))}), "
        + (f"read from the corpus by an LLM ({graph.config['llm']['model']}: names found in the chunk text, "
           "scored by corpus statistics, variants merged). Top concepts:"
           if graph.config.get("extractor") == "llm" and graph.config.get("llm") else
           "extracted offline from the corpus (candidate terms scored by corpus statistics, variants merged, "
           "descriptions taken from the corpus). Top concepts:"), "",
        *markdown_table(["Concept", "Documents", "Aliases", "Description"], [
            [c.name, str(len(c.doc_ids)), str(len(c.aliases)), (c.description or "")[:110].replace("|", "\\|")]
            for c in concepts[:20]
        ]), "",
    ]
    examples = [e for e in edges if e.type in (EdgeType.GENERALIZES, EdgeType.EXTENDS)][:5] or edges[:5]
    if examples:
        lines += ["Example edges: " + "; ".join(
            f"{by_id.get(e.source, e.source)} —{e.type.value}→ {by_id.get(e.target, e.target)}" for e in examples
        ) + ".", ""]
    lines += _query_data_section(stats) if _query_side(record) else _pair_data_section(stats, config)
    training_stage = "adapt" if _query_side(record) else "train"
    lines += [
        "## Training configuration", "",
        *markdown_table(["Setting", "Value"],
                        [[k, f"`{v}`"] for k, v in record.to_dict().items()
                         if k not in ("prompts", "history") and v is not None]), "",
        _loss_line(record), "",
        "## Provenance", "",
        f"Library versions: {json.dumps(manifest.get(training_stage, {}).get('versions', {}))}. "
        "Inputs, parameters and content hashes of every stage are in the build's `manifest.json`.", "",
    ]
    return "\n".join(lines)


def write_card(root: Path, *, corpus: str, config: Any, figures: bool = False) -> Path:
    """Write ``root/model/README.md`` atomically; returns its path.

    With ``figures``, the evaluation's plots are written into ``model/figures/`` (which a push uploads with the
    card, so the Hub shows them) and the card links them; the stage that calls this declares that directory.
    """
    path = root / MODEL_CARD
    markdown = card_figures(read_evaluations(root), root / MODEL) if figures else ""
    with atomic_write(path) as handle:
        handle.write(render_card(root, corpus=corpus, config=config, figures=markdown))
    return path
