"""The ``fieldtune`` command line: a thin layer over the public API.

Heavy libraries are imported inside each command so ``fieldtune --help``
answers at once.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from fieldtune.errors import FieldtuneError, InputError
from fieldtune.version import __version__

app = typer.Typer(
    name="fieldtune",
    help="Tune a retrieval embedding model to a field's documents, prove it with honest numbers, search with it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


#: The environment variable that holds the service's API key (kept out of `ps`, unlike --api-key).
API_KEY_ENV = "FIELDTUNE_API_KEY"


class OnErrorChoice(str, Enum):
    stop = "stop"
    skip = "skip"


class PrecisionChoice(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    int8 = "int8"


PRECISION_HELP = (
    "Encoding precision; auto = bf16 where the CPU/GPU computes it natively, else int8 (OpenVINO, made once "
    "per model and kept where it agrees with fp32) for corpus-sized work, else fp32."
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    logging.getLogger("fieldtune").setLevel(logging.INFO)


def _echo_err(message: str) -> None:
    typer.echo(message, err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fieldtune {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs too.")] = False,
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    _setup_logging(verbose)


def _parse_dims(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        dims = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise typer.BadParameter(
            f"--dims takes comma-separated integers such as 384,256,128,64, got {text!r}"
        ) from None
    if not dims or any(d < 1 for d in dims):
        raise typer.BadParameter("--dims must list positive integers")
    return sorted(set(dims), reverse=True)  # largest first: the tables lead with it


@app.command()
def models() -> None:
    """List the registered base models (they work offline)."""
    from fieldtune.models import DEFAULT_MODEL, REGISTRY

    for name, model in REGISTRY.items():
        default = " (default)" if name == DEFAULT_MODEL else ""
        typer.echo(f"{name}{default}: {model.description} [package {model.package}]")


@app.command()
def ingest(
    corpus: Annotated[Path, typer.Argument(help="BEIR directory, .jsonl, .csv, or a folder of .txt/.md/.tex/.pdf")],
    out: Annotated[Path, typer.Option("--out", help="Work directory for the artifacts.")],
    model: Annotated[str, typer.Option("--model", help="Model whose tokenizer measures chunks.")] = "minilm",
    max_tokens: Annotated[int, typer.Option(help="Chunk length limit in model tokens.")] = 256,
    overlap: Annotated[int, typer.Option(help="Tokens shared by consecutive chunks.")] = 32,
    on_error: Annotated[
        OnErrorChoice, typer.Option("--on-error", help="Stop at the first bad record, or skip it.")
    ] = OnErrorChoice.stop,
) -> None:
    """Read a corpus and cut it into token-aware chunks (documents.jsonl, chunks.jsonl)."""
    from fieldtune.build import run_build
    from fieldtune.chunking import ChunkingConfig
    from fieldtune.config import BuildConfig
    from fieldtune.ingest import OnError

    config = BuildConfig(base=model, chunking=ChunkingConfig(max_tokens, overlap), on_error=OnError(on_error.value),
                         min_documents=1)
    for stage in run_build(corpus, out, config, until="chunk").stages:
        state = "unchanged, skipped" if stage.skipped else f"done in {stage.record['seconds']:.1f}s"
        typer.echo(f"{stage.name}: {state} {stage.record.get('stats', {})}")
    typer.echo(f"artifacts in {out}")


@app.command("eval")
def eval_command(
    model: Annotated[str, typer.Option("--model", help="Model under test: registered name, directory, or hub id.")],
    data: Annotated[Path, typer.Option("--data", help="BEIR directory (corpus.jsonl, queries.jsonl, qrels/).")],
    split: Annotated[str, typer.Option(help="qrels split to score.")] = "test",
    baseline: Annotated[list[str] | None, typer.Option(
        "--baseline", help="'base', 'bm25', or another model; repeat for several.",
    )] = None,
    dims: Annotated[str | None, typer.Option(
        help="Matryoshka dimensions, e.g. 384,256,128,64 (default: full and powers of two down to 64).",
    )] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the full result as JSON.")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write the tables as Markdown (.md), or an HTML page (.html) with plots and query lists.",
    )] = None,
    precision: Annotated[PrecisionChoice, typer.Option(
        help=PRECISION_HELP,
    )] = PrecisionChoice.auto,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not reuse cached corpus embeddings.")] = False,
) -> None:
    """Score a model and baselines: nDCG@10, MRR@10, Recall@10/100, Hit@1/3/5, MAP, per dimension, with CIs."""
    from fieldtune.api import evaluate
    from fieldtune.evaluate.html_report import to_html
    from fieldtune.evaluate.report import terminal_table, to_markdown
    from fieldtune.workdir import atomic_write

    if report is not None and report.suffix.lower() not in {".md", ".html", ".htm"}:
        raise typer.BadParameter("--report must end in .md or .html")
    if report is not None and report.suffix.lower() != ".md":
        from fieldtune.errors import require_extra

        require_extra("matplotlib", "report")  # before the evaluation, not after its minutes
    result = evaluate(model, data, baselines=baseline or [], split=split, dims=_parse_dims(dims),
                      precision=precision.value, seed=seed, resamples=resamples, use_cache=not no_cache)
    typer.echo(terminal_table(result))
    if json_path is not None:
        result.write(json_path)
        typer.echo(f"wrote {json_path}")
    if report is not None:
        text = to_markdown(result) if report.suffix.lower() == ".md" else to_html(result)
        with atomic_write(report) as handle:
            handle.write(text)
        typer.echo(f"wrote {report}")


@app.command("push")
def push_command(
    directory: Annotated[Path, typer.Argument(help="A build's --out directory (its model/ is pushed).")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub repository to create or update, e.g. you/name.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
) -> None:
    """Upload a build's model with its card to the Hugging Face Hub (token from $HF_TOKEN)."""
    from fieldtune.hub import push_model

    result = push_model(directory, repo_id, private=private)
    typer.echo(f"pushed {result.files} files to {result.url}{' (private)' if result.private else ''}")


@app.command("export")
def export_command(
    model: Annotated[str, typer.Option(
        "--model", help="Model to export: registered name or directory (e.g. a build's model/).",
    )],
    out: Annotated[Path, typer.Option("--out", help="Directory to write (empty, or an earlier export to replace).")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Export to ONNX (the only format so far).")] = False,
    int8: Annotated[bool, typer.Option(
        "--int8", help="Quantise weights to int8 per output channel (smaller, faster on CPU).",
    )] = False,
) -> None:
    """Export a model for serving: ONNX (fp32 or int8) that eval, index and search accept as --model."""
    from fieldtune.export import export_onnx

    if not onnx:
        raise typer.BadParameter("choose a format: --onnx (the only one so far)")
    path = export_onnx(model, out, int8=int8)
    typer.echo(f"exported {model} to {path} (ONNX, {'int8 per-channel' if int8 else 'fp32'}); use it as --model {path}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Work directory for the demo.")] = Path("out/demo"),
    limit: Annotated[int, typer.Option(help="Use a seeded sample of this many docstrings (0 = all ~4,300).")] = 600,
    budget_minutes: Annotated[float, typer.Option(help="Training budget of each of the two builds, in minutes.")] = 1.5,
    no_train: Annotated[bool, typer.Option(
        "--no-train", help="Only ingest and compare the base model with BM25.",
    )] = False,
) -> None:
    """Build from SymPy's docstrings (offline), from the corpus alone and with half the summaries as queries."""
    from fieldtune.demo.run import run_demo

    typer.echo(run_demo(out, limit=limit or None, budget_minutes=budget_minutes, train=not no_train))


@app.command("index")
def index_command(
    corpus: Annotated[Path, typer.Option(
        "--corpus", help="BEIR directory, .jsonl, .csv, or a folder of .txt/.md/.tex/.pdf",
    )],
    out: Annotated[Path, typer.Option("--out", help="Index directory to create (must not exist or be empty).")],
    model: Annotated[str, typer.Option("--model", help="Model: registered name, directory, or hub id.")] = "minilm",
    max_tokens: Annotated[int, typer.Option(help="Chunk length limit in model tokens.")] = 256,
    overlap: Annotated[int, typer.Option(help="Tokens shared by consecutive chunks.")] = 32,
    storage: Annotated[str, typer.Option(help="Embedding storage on disk: int8 or float16.")] = "int8",
    dim: Annotated[int | None, typer.Option(
        help="Store only the first N dimensions (Matryoshka); default: all.",
    )] = None,
    ann_threshold: Annotated[int, typer.Option(
        help="Use an HNSW graph above this many chunks; exact search below.",
    )] = 20_000,
    precision: Annotated[PrecisionChoice, typer.Option(
        help=PRECISION_HELP,
    )] = PrecisionChoice.auto,
    store: Annotated[str, typer.Option(
        help="Where vectors are searched: local (the index directory) or pgvector (PostgreSQL, needs --dsn).",
    )] = "local",
    dsn: Annotated[str | None, typer.Option(
        "--dsn", help="PostgreSQL connection string for --store pgvector (default: $FIELDTUNE_PG_DSN). Its "
        "password is never recorded: searches take it from PGPASSWORD, ~/.pgpass or $FIELDTUNE_PG_DSN.",
    )] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="local|ADDRESS", help="Encode the corpus on Ray Data (extra: ray): "
        "'local' starts Ray here, else a cluster's address (ray://head:10001); one GPU per actor where it has GPUs.",
    )] = None,
    ray_workers: Annotated[int | None, typer.Option(
        help="Ray actors (default: one per GPU, else one per CPU Ray offers; local Ray gets this many CPUs).",
    )] = None,
    ray_shards: Annotated[Path | None, typer.Option(
        help="With --ray: also write the vectors as Parquet shards keyed by chunk id to this directory.",
    )] = None,
) -> None:
    """Build a search index: chunk, encode once, store int8 vectors, BM25, and an HNSW graph if large."""
    from fieldtune.encoders.ray import RaySettings
    from fieldtune.search import Index

    if ray is None and (ray_workers is not None or ray_shards is not None):
        raise typer.BadParameter("--ray-workers and --ray-shards need --ray local|ADDRESS")
    ray_settings = None
    if ray is not None:
        ray_settings = RaySettings(address=None if ray == "local" else ray, workers=ray_workers, shards=ray_shards)
    index = Index.build(
        corpus, out, model=model, max_tokens=max_tokens, overlap=overlap, storage=storage,
        ann_threshold=ann_threshold, dim=dim, precision=precision.value, progress=True, store=store, dsn=dsn,
        ray=ray_settings,
    )
    info = index.info()
    counts = info["counts"]
    backend = info["backend"]
    ann = "HNSW graph" if info["ann_in_use"] else "exact search"
    if backend["name"] == "pgvector":
        ann = f"pgvector table {backend['table']}"
    typer.echo(
        f"indexed {counts['documents']} documents as {counts['chunks']} chunks in {out} "
        f"({info['storage']} storage, {info['dimension']} dimensions, {ann})"
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    index: Annotated[Path, typer.Option("--index", help="Index directory built by `fieldtune index`.")],
    k: Annotated[int, typer.Option("--k", help="Number of results (1-1000).")] = 10,
    mode: Annotated[str, typer.Option(help="dense, bm25 or hybrid.")] = "hybrid",
    dim: Annotated[int | None, typer.Option(help="Shortlist dimension (Matryoshka funnel); default: full.")] = None,
    fusion: Annotated[str | None, typer.Option(help="Hybrid fusion: rrf or score (default: the index's).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as a JSON list.")] = False,
    chunks: Annotated[bool, typer.Option("--chunks", help="Rank chunks instead of documents.")] = False,
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", help="Only documents whose metadata passes FIELD OP VALUE (=, !=, <, <=, >, >=, in), "
        "applied before ranking; repeat for several, e.g. --filter 'year>=2020' --filter 'category=math.CO'.",
    )] = None,
) -> None:
    """Search an index: ranked documents (or chunks) with highlighted snippets."""
    from fieldtune.search import Index, SearchMode
    from fieldtune.search.filters import parse_filters
    from fieldtune.search.options import check_k
    from fieldtune.search.render import to_json, to_text

    if not query.strip():
        raise typer.BadParameter(
            "the query is blank; give the words to search for, e.g. fieldtune search --index I 'heat equation'",
            param_hint="QUERY",
        )
    check_k(k)
    SearchMode(mode)  # reject a bad mode before loading anything
    parsed = parse_filters(filters)  # and a filter that does not parse
    results = Index.open(index).search(
        query, k=k, mode=mode, dim=dim, documents=not chunks, fusion=fusion, filters=parsed
    )
    if json_output:
        typer.echo(to_json(results))
    else:
        typer.echo(to_text(results, color=sys.stdout.isatty(), chunks=chunks))


@app.command()
def serve(
    ctx: typer.Context,
    index: Annotated[Path, typer.Option("--index", help="Index directory built by `fieldtune index`.")],
    host: Annotated[str, typer.Option(help="Address to listen on (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar=API_KEY_ENV, show_envvar=True,
        help="Require this key (header X-API-Key or ?api_key=) on all but the page and a minimal /health. "
        "Prefer the environment variable or --api-key-file: a command line shows in `ps`.",
    )] = None,
    api_key_file: Annotated[Path | None, typer.Option(
        "--api-key-file", help="Read the API key from the first line of this file.",
    )] = None,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Also answer requests whose Host is this name (one clients use to reach the server); "
        "repeat for several, '*' for any. Loopback names and --host are always answered.",
    )] = None,
    max_query_chars: Annotated[int, typer.Option(help="Longest query accepted, in characters.", min=1)] = 1000,
    log_queries: Annotated[Path | None, typer.Option(
        "--log-queries", help="Append every query searched to this JSONL file (time, query, mode; never the key), "
        "for `fieldtune adapt --queries FILE`.",
    )] = None,
) -> None:
    """Serve search over HTTP: a web page at /, JSON at /search, /documents/{id}, /concepts, /health.

    With an API key, POST /documents and DELETE /documents/{id} add and delete documents.
    """
    try:
        import uvicorn

        from fieldtune.search.guards import LOOPBACK_HOSTS, allowed_hosts
        from fieldtune.search.query_log import QueryLog
        from fieldtune.search.service import create_app, server_options
    except ImportError as error:
        raise FieldtuneError(f"{error} (pip install 'fieldtune[serve]')") from error
    from fieldtune.search import Index

    on_command_line = ctx.get_parameter_source("api_key").name == "COMMANDLINE"
    key = _api_key(api_key, api_key_file, on_command_line=on_command_line)
    for name in allow_host or []:
        if not name.strip() or "/" in name or " " in name.strip():
            raise typer.BadParameter(f"takes a host name such as search.example.org, not {name!r}",
                                     param_hint="--allow-host")
    hosts = allowed_hosts(host, allow_host or [])
    search_index = Index.open(index)
    search_index.warm_up()  # model, BM25, vectors and records loaded: the first request is as fast as the next
    if host not in LOOPBACK_HOSTS and not key:
        _echo_err(f"warning: serving on {host} without an API key; anyone who can reach it can search")
    if host in {"0.0.0.0", "::"} and not allow_host:
        _echo_err(f"note: only requests for {', '.join(hosts)} are answered; add --allow-host NAME for each "
                  "name or address clients use to reach this machine")
    query_log = QueryLog(log_queries) if log_queries is not None else None
    typer.echo(f"serving {index} on http://{host}:{port}/ (Ctrl+C stops)")
    if query_log is not None:
        typer.echo(f"logging queries to {query_log.path}")
    app_ = create_app(search_index, api_key=key, max_query_chars=max_query_chars, allowed_hosts=hosts,
                      query_log=query_log)
    try:
        uvicorn.run(app_, host=host, port=port, log_level="warning", **server_options(app_))
    finally:
        if query_log is not None:
            query_log.close()


def adapt_index_command(
    index: Annotated[Path, typer.Option("--index", help="Index directory built by `fieldtune index`.")],
    queries: Annotated[Path | None, typer.Option(
        "--queries", help="The queries to adapt to: a `serve --log-queries` log, or .txt/.jsonl/.csv/BEIR queries.",
    )] = None,
    budget_minutes: Annotated[float, typer.Option(help="Training time budget in minutes.", min=0.1)] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the dev split and of training.")] = 0,
    rollback: Annotated[bool, typer.Option(
        "--rollback", help="Put the previous query encoder back instead (atomically).",
    )] = False,
) -> None:
    """Train the index's query encoder on searched queries; swap it in (atomically) only if it does better on dev.

    No document is re-encoded: the teacher and the training read the index's own
    chunks and stored vectors, and a running `serve` picks the new encoder up.
    """
    from fieldtune.adapt import AdaptOptions, adapt_index, rollback_index

    if rollback:
        if queries is not None:
            raise typer.BadParameter("--rollback takes no --queries", param_hint="--rollback")
        manifest = rollback_index(index)
        now = manifest.query_model.path if manifest.query_model else None
        typer.echo(f"rolled back: searches of {index} now use {now or 'the index model ' + manifest.model.spec}")
        return
    if queries is None:
        raise typer.BadParameter("give the queries to adapt to (e.g. a `serve --log-queries` file), "
                                 "or --rollback", param_hint="--queries")
    result = adapt_index(index, queries, AdaptOptions(budget_minutes=budget_minutes, seed=seed))
    typer.echo(f"dev nDCG@10 against the teacher's top 10 ({result.dev_queries} dev queries, "
               f"{result.train_queries} trained on, {result.steps} steps): current {result.current_score:.4f}, "
               f"adapted {result.adapted_score:.4f}")
    typer.echo(f"swapped in {result.model}" if result.swapped else f"not swapped: {result.reason}")


def _api_key(given: str | None, path: Path | None, *, on_command_line: bool) -> str | None:
    """The key from --api-key / $FIELDTUNE_API_KEY or from --api-key-file (one source, not both)."""
    given = given or None  # an empty key (FIELDTUNE_API_KEY= ) means none
    if given is not None and on_command_line:
        _echo_err(f"warning: a key given with --api-key shows in `ps`; set {API_KEY_ENV} or use --api-key-file")
    if path is None:
        return given
    if given is not None:
        raise FieldtuneError(f"both --api-key-file and --api-key (or ${API_KEY_ENV}) give a key; keep one of them")
    try:
        with path.open(encoding="utf-8") as handle:
            key = handle.readline(64 * 1024).strip()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot read the API key ({error})", hint="--api-key-file takes a text file") from error
    if not key:
        raise InputError(path, "is empty", hint="put the API key on its first line")
    return key


from fieldtune.cli_build import register as _register_build_commands  # noqa: E402

_register_build_commands(app)
# After the stage commands on purpose: `fieldtune adapt --index` (the index's query encoder, issue 14 item 9)
# takes the name of the build's `adapt` stage command, which `fieldtune build --queries` still runs.
app.command("adapt")(adapt_index_command)


def _interrupted() -> None:
    _echo_err("interrupted; finished stages are kept and a rerun resumes from them")
    sys.exit(130)


def main() -> None:
    # standalone_mode=False: click would turn Ctrl-C into a bare "Aborted!" (exit 1) before we could say
    # what was kept; usage errors are shown the way click shows them.
    try:
        code = app(standalone_mode=False)
    except FieldtuneError as error:
        _echo_err(f"error: {error}")
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        _interrupted()
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except TyperException as error:  # usage errors (typer's click): shown the way click shows them
        error.show()
        sys.exit(error.exit_code)
    if code == 130:  # typer returns Ctrl-C as a bare exit code 130
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)
