"""``fieldtune build`` and its stage commands (concepts, pairs, mine, train), registered on the main app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

CorpusArg = Annotated[Path, typer.Argument(help="BEIR directory (only corpus.jsonl is read), .jsonl, .csv, or a folder of .txt/.md/.tex/.pdf")]
OutOpt = Annotated[Path, typer.Option("--out", help="Work directory: every artifact, the manifest, and DIR/model.")]
BaseOpt = Annotated[str, typer.Option("--base", help="Base model: registered name, directory or hub id.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for the split, mining and training.")]


def _config(base: str, budget_minutes: float | None, seed: int, eval_data: list[Path] | None, max_tokens: int):
    from fieldtune.build import BuildConfig
    from fieldtune.chunking import ChunkingConfig

    for path in eval_data or []:
        if not (path / "qrels").is_dir():
            from fieldtune.errors import InputError

            raise InputError(path, "is not a BEIR directory with qrels/", hint="--eval-data expects corpus.jsonl, queries.jsonl and qrels/")
    return BuildConfig(base=base, budget_minutes=budget_minutes, seed=seed, eval_data=tuple(str(p) for p in eval_data or []),
                       chunking=ChunkingConfig(max_tokens=max_tokens))


def _report(result, until: str) -> None:
    for stage in result.stages:
        state = "unchanged, skipped" if stage.skipped else f"done in {stage.record['seconds']:.1f}s"
        typer.echo(f"{stage.name:>9}: {state}")
    if until in ("eval", "card"):
        from fieldtune.evaluate.report import to_markdown

        for name, evaluation in result.evaluations.items():
            title = "Derived test set (held-out concepts)" if name == "derived" else name
            typer.echo("\n" + to_markdown(evaluation, title=f"{title}: tuned vs base vs BM25"))
        typer.echo(f"model: {result.model_dir} (card: {result.model_dir / 'README.md'}); {result.seconds:.0f}s")


def _run(corpus: Path, out: Path, until: str, *, base: str = "minilm", budget_minutes: float | None = 15.0, seed: int = 0,
         eval_data: list[Path] | None = None, max_tokens: int = 256) -> None:
    from fieldtune.build import run_build

    result = run_build(corpus, out, _config(base, budget_minutes, seed, eval_data, max_tokens), until=until)
    _report(result, until)


def build(
    corpus: CorpusArg, out: OutOpt, base: BaseOpt = "minilm",
    budget_minutes: Annotated[float, typer.Option(help="Training time budget in minutes (stops cleanly, keeps the best checkpoint).")] = 15.0,
    seed: SeedOpt = 0,
    eval_data: Annotated[Optional[list[Path]], typer.Option("--eval-data", help="External BEIR set(s) to evaluate on as well.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Chunk length in model tokens.")] = 256,
) -> None:
    """Corpus -> concept graph -> pairs -> hard negatives -> tuned model with its card, then the evaluation table."""
    _run(corpus, out, "card", base=base, budget_minutes=budget_minutes, seed=seed, eval_data=eval_data, max_tokens=max_tokens)


def concepts(corpus: CorpusArg, out: OutOpt, base: BaseOpt = "minilm") -> None:
    """Ingest, chunk and extract the concept graph (graph.json, graph.graphml)."""
    _run(corpus, out, "concepts", base=base)


def pairs(corpus: CorpusArg, out: OutOpt, base: BaseOpt = "minilm", seed: SeedOpt = 0) -> None:
    """... then training pairs split by concept, the leakage check, and the derived test set."""
    _run(corpus, out, "pairs", base=base, seed=seed)


def mine(corpus: CorpusArg, out: OutOpt, base: BaseOpt = "minilm", seed: SeedOpt = 0) -> None:
    """... then hard negatives with false-negative control."""
    _run(corpus, out, "mine", base=base, seed=seed)


def train(
    corpus: CorpusArg, out: OutOpt, base: BaseOpt = "minilm",
    budget_minutes: Annotated[float, typer.Option(help="Training time budget in minutes.")] = 15.0, seed: SeedOpt = 0,
) -> None:
    """... then fine-tune (MNRL inside MatryoshkaLoss) into DIR/model."""
    _run(corpus, out, "train", base=base, budget_minutes=budget_minutes, seed=seed)


def register(app: typer.Typer) -> None:
    app.command()(build)
    app.command()(concepts)
    app.command()(pairs)
    app.command()(mine)
    app.command()(train)
