"""``fieldtune build`` and one command per pipeline stage, all derived from :data:`fieldtune.stages.STAGES`.

``fieldtune concepts|pairs|mine|train CORPUS --out DIR`` runs the build up to
that stage (each stage with ``command=True`` gets a command); every command
takes the same options as ``build``, so a stage command followed by ``build``
reuses what it made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from fieldtune.ingest import OnError
from fieldtune.stages.order import ORDER
from fieldtune.training_mode import TrainingMode

CorpusArg = Annotated[Path, typer.Argument(
    help="BEIR directory (only corpus.jsonl is read), .jsonl, .csv, or a folder of .txt/.md/.tex/.pdf")]
OutOpt = Annotated[Path, typer.Option("--out", help="Work directory: every artifact, the manifest, and DIR/model.")]
BaseOpt = Annotated[str, typer.Option("--base", help="Base model: registered name, directory or hub id.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for the split, mining and training (set once for every stage).")]
BudgetOpt = Annotated[float, typer.Option(
    help="Training time budget in minutes (stops cleanly, keeps the best checkpoint).")]
EvalDataOpt = Annotated[list[Path] | None, typer.Option(
    "--eval-data", help="External BEIR set(s) to evaluate on as well.")]
MaxTokensOpt = Annotated[int, typer.Option(help="Chunk length in model tokens.")]
OverlapOpt = Annotated[int, typer.Option(help="Tokens shared by consecutive chunks.")]
OnErrorOpt = Annotated[OnError, typer.Option(
    "--on-error", help="A malformed record: stop the run, or skip it and count it.")]
MinDfOpt = Annotated[int | None, typer.Option(
    "--min-df", help="A concept must occur in at least this many documents (default: 2; 1 with the llm extractor).")]
MaxDfOpt = Annotated[float, typer.Option(
    "--max-df", help="Terms in more than this fraction of documents are too generic to be concepts.")]
QueriesOpt = Annotated[Path | None, typer.Option(
    "--queries", help="Your queries (a search log, questions): .txt one per line, .jsonl, .csv, or a BEIR directory "
    "(only its train/dev queries). The query encoder is adapted to them; a share is held out for the quality gate.")]
TrainDataOpt = Annotated[Path | None, typer.Option(
    "--train-data",
    help="Labelled pairs: a BEIR directory with qrels/train.tsv, or JSONL {query, positive(s), negative(s)}.")]
ModeOpt = Annotated[TrainingMode, typer.Option(
    "--mode", help="auto: adapt the query encoder when queries are given, else train the full model; "
    "full, query or both force one.")]
PseudoQueriesOpt = Annotated[str | None, typer.Option(
    "--pseudo-queries", help="Without your queries: adapt the query encoder to queries made from the corpus, "
    "comma-separated source names, e.g. titles,concepts (a wrong name lists them all); the gate then demands a "
    "significant gain.")]
MaxConceptsOpt = Annotated[int | None, typer.Option(
    "--max-concepts", help="Concepts to keep (default: scales with the corpus, up to 1000).")]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", metavar="local|ADDRESS", help="Encode the corpus on Ray Data (extra: ray): 'local' starts Ray here, "
    "else a cluster's address (ray://head:10001); its actors encode in fp32 (bf16 where native), never int8.")]
RayWorkersOpt = Annotated[int | None, typer.Option(
    help="With --ray: actors (default: one per GPU, else one per CPU Ray offers; local Ray gets this many CPUs).")]
LlmUrlOpt = Annotated[str | None, typer.Option(
    "--llm-url", help="An OpenAI-compatible LLM server (llama.cpp, vLLM, Ollama, a hosted API), e.g. "
    "http://127.0.0.1:8080/v1: it extracts the concepts, and writes queries with --pseudo-queries llm "
    "(API key, if any, from FIELDTUNE_LLM_API_KEY; extra: llm).")]
LlmModelOpt = Annotated[str | None, typer.Option(
    "--llm-model", help="With --llm-url: the model name the server knows.")]
LlmChatOpt = Annotated[bool, typer.Option(
    "--llm-chat", help="With --llm-url: use /v1/chat/completions (chat-only APIs) instead of /v1/completions.")]
ConceptExtractorOpt = Annotated[str | None, typer.Option(
    "--concept-extractor", help="statistical or llm (default: llm with --llm-url, else statistical).")]


def _config(*, base: str, budget_minutes: float, seed: int, eval_data: list[Path] | None, max_tokens: int,
            overlap: int, on_error: OnError, min_df: int | None, max_df: float, max_concepts: int | None,
            queries: Path | None, train_data: Path | None, mode: TrainingMode, pseudo_queries: str | None = None,
            llm_url: str | None = None, llm_model: str | None = None, llm_chat: bool = False,
            concept_extractor: str | None = None):
    from fieldtune.chunking import ChunkingConfig
    from fieldtune.concepts import ConceptConfig
    from fieldtune.config import BuildConfig
    from fieldtune.errors import InputError
    from fieldtune.llm.client import endpoint_from_options

    for path in [p for p in (queries, train_data) if p is not None]:
        if not path.exists():
            raise InputError(path, "does not exist")
    for path in eval_data or []:
        if not (path / "qrels").is_dir():
            raise InputError(
                path,
                "is not a BEIR directory with qrels/",
                hint="--eval-data expects corpus.jsonl, queries.jsonl and qrels/",
            )
    try:
        return BuildConfig(
            base=base, budget_minutes=budget_minutes, seed=seed, eval_data=tuple(str(p) for p in eval_data or []),
            on_error=on_error, chunking=ChunkingConfig(max_tokens=max_tokens, overlap=overlap),
            concepts=ConceptConfig(min_df=min_df, max_df=max_df, max_concepts=max_concepts,
                                   extractor=concept_extractor or ("llm" if llm_url else "statistical")),
            queries=str(queries) if queries else None, train_data=str(train_data) if train_data else None, mode=mode,
            pseudo_queries=tuple(name.strip() for name in (pseudo_queries or "").split(",") if name.strip()),
            llm=endpoint_from_options(llm_url, llm_model, llm_chat),
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _report(result, until: str) -> None:
    from fieldtune.evaluate.report import to_markdown

    for stage in result.stages:
        state = "unchanged, skipped" if stage.skipped else f"done in {stage.record['seconds']:.1f}s"
        typer.echo(f"{stage.name:>9}: {state}")
    for name, evaluation in result.evaluations.items():
        title = "Derived test set (held-out concepts)" if name == "derived" else name
        typer.echo("\n" + to_markdown(evaluation, title=f"{title}: tuned vs base vs BM25"))
    if until == "card":
        typer.echo(f"model: {result.model_dir} (card: {result.model_dir / 'README.md'}); {result.seconds:.0f}s")


def _command(until: str, doc: str) -> Callable[..., None]:
    def command(
        corpus: CorpusArg, out: OutOpt, base: BaseOpt = "minilm", budget_minutes: BudgetOpt = 15.0, seed: SeedOpt = 0,
        eval_data: EvalDataOpt = None, max_tokens: MaxTokensOpt = 256, overlap: OverlapOpt = 32,
        on_error: OnErrorOpt = OnError.STOP, min_df: MinDfOpt = None, max_df: MaxDfOpt = 0.2,
        max_concepts: MaxConceptsOpt = None, queries: QueriesOpt = None, train_data: TrainDataOpt = None,
        mode: ModeOpt = TrainingMode.AUTO, pseudo_queries: PseudoQueriesOpt = None, ray: RayOpt = None,
        ray_workers: RayWorkersOpt = None, llm_url: LlmUrlOpt = None, llm_model: LlmModelOpt = None,
        llm_chat: LlmChatOpt = False, concept_extractor: ConceptExtractorOpt = None,
    ) -> None:
        from contextlib import nullcontext

        from fieldtune.build import run_build
        from fieldtune.encoders.ray import RaySettings, corpus_on_ray
        from fieldtune.llm.client import check_endpoint

        if ray is None and ray_workers is not None:
            raise typer.BadParameter("--ray-workers needs --ray local|ADDRESS")
        settings = None if ray is None else RaySettings(address=None if ray == "local" else ray, workers=ray_workers)
        config = _config(base=base, budget_minutes=budget_minutes, seed=seed, eval_data=eval_data,
                         max_tokens=max_tokens, overlap=overlap, on_error=on_error, min_df=min_df, max_df=max_df,
                         max_concepts=max_concepts, queries=queries, train_data=train_data, mode=mode,
                         pseudo_queries=pseudo_queries, llm_url=llm_url, llm_model=llm_model, llm_chat=llm_chat,
                         concept_extractor=concept_extractor)
        check_endpoint(config.llm)  # an unreachable LLM fails now, not after ingest and chunking
        with nullcontext() if settings is None else corpus_on_ray(settings):
            result = run_build(corpus, out, config, until=until)
        _report(result, until)

    command.__doc__ = doc
    return command


def register(app: typer.Typer) -> None:
    app.command("build")(_command(
        "card",
        "Corpus -> concept graph -> pairs -> hard negatives -> tuned model with its card, then the evaluation table."))
    for entry in ORDER:
        if entry.command:
            app.command(entry.name)(_command(entry.name, entry.summary))
