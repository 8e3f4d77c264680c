"""The Python API: build a tuned model, evaluate a model, search an index, from code instead of the shell.

``fieldtune.build(corpus, out=..., **options)`` runs the same stages as
``fieldtune build``; ``fieldtune.evaluate(model, data, baselines=...)`` the
same evaluation as ``fieldtune eval``; ``fieldtune.Index`` is the search index
of ``fieldtune index`` / ``search`` / ``serve``. Each returns a typed record:
:class:`~fieldtune.build.BuildResult`, :class:`~fieldtune.evaluate.result.EvaluationResult`
(the very object ``eval --json`` writes), :class:`~fieldtune.search.Index`.

A build's options are the fields of :class:`~fieldtune.config.BuildConfig`
(``base``, ``budget_minutes``, ``seed``, ``eval_data``, ``queries``, ...), which
validates them before any stage runs. The fields of its nested configurations
may be given flat where the name is unambiguous (``max_tokens=128`` sets
``chunking``, ``min_df=3`` sets ``concepts``); an unknown option fails with the
closest names. Paths may be given as ``str`` or :class:`~pathlib.Path`. An LLM
(``llm=LLMEndpoint(url, model)`` or ``llm={"url": ..., "model": ...}``) is checked
for reachability before anything runs; ``extractor="llm"`` and
``pseudo_queries="llm"`` then use it.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from fieldtune.build import BuildResult, run_build
from fieldtune.config import BuildConfig, BuildConfigError
from fieldtune.encoding import Precision
from fieldtune.errors import InputError
from fieldtune.evaluate.harness import EvalOptions, run_evaluation
from fieldtune.evaluate.result import EvaluationResult
from fieldtune.ingest import OnError
from fieldtune.llm.client import LLMEndpoint, check_endpoint

__all__ = ["BuildResult", "EvaluationResult", "build", "build_config", "evaluate"]

#: the baselines a build evaluates against, and so the default of :func:`evaluate`
DEFAULT_BASELINES = ("base", "bm25")
#: options that name files or directories: accepted as str or Path, stored as str
_PATH_OPTIONS = ("queries", "train_data")


def _fields(config_type: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(config_type)}


def _nested_options() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Flat option name -> the nested BuildConfig field it belongs to; and the names several nested configs share."""
    owners: dict[str, list[str]] = {}
    top = _fields(BuildConfig)
    for name, field in top.items():
        if dataclasses.is_dataclass(field.default):
            for inner in _fields(type(field.default)):
                if inner not in top:  # a top-level field of the same name wins (seed, dev_fraction)
                    owners.setdefault(inner, []).append(name)
    unique = {name: found[0] for name, found in owners.items() if len(found) == 1}
    return unique, {name: found for name, found in owners.items() if len(found) > 1}


def _unknown_option(name: str, known: Iterable[str]) -> BuildConfigError:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return BuildConfigError(f"unknown build option {name!r}{hint} (options are BuildConfig's fields, "
                            "or a field of its nested configurations such as max_tokens or min_df)")


def _coerce(name: str, value: Any) -> Any:
    """The CLI's conversions, for callers who pass a Path, a list or a plain string."""
    if name in _PATH_OPTIONS and value is not None:
        path = Path(value)
        if not path.exists():
            raise InputError(path, "does not exist", hint=f"the {name} option names a file or directory")
        return str(path)
    if name == "eval_data":
        paths = [value] if isinstance(value, (str, Path)) else list(value or ())
        for path in map(Path, paths):
            if not (path / "qrels").is_dir():
                raise InputError(path, "is not a BEIR directory with qrels/",
                                 hint="eval_data expects corpus.jsonl, queries.jsonl and qrels/")
        return tuple(str(p) for p in paths)
    if name == "llm" and isinstance(value, dict):
        try:
            return LLMEndpoint(**value)
        except (TypeError, ValueError) as error:
            raise BuildConfigError(f"llm: {error} (give url and model, optionally api, connect_timeout, ...)") from None
    if name == "llm" and value is not None and not isinstance(value, LLMEndpoint):
        raise BuildConfigError(f"llm must be an LLMEndpoint or a dict with url and model; got {value!r}")
    if name == "pseudo_queries" and isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if name == "on_error" and not isinstance(value, OnError):
        return _enum(OnError, value, name)
    if name == "precision" and value is not None and not isinstance(value, Precision):
        precision = _enum(Precision, value, name)
        return None if precision is Precision.AUTO else precision
    return value


def _enum(enum: type[Enum], value: Any, name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(str(member.value) for member in enum)
        raise BuildConfigError(f"{name} must be one of {choices}; got {value!r}") from None


def build_config(**options: Any) -> BuildConfig:
    """A validated :class:`BuildConfig` from keyword options (see the module docstring); errors name the option."""
    top = _fields(BuildConfig)
    nested, ambiguous = _nested_options()
    direct: dict[str, Any] = {}
    flat: dict[str, dict[str, Any]] = {}
    for name, value in options.items():
        if name in top:
            direct[name] = _coerce(name, value)
        elif name in nested:
            flat.setdefault(nested[name], {})[name] = value
        elif name in ambiguous:
            where = " or ".join(f"{owner}={type(top[owner].default).__name__}({name}=...)" for owner in ambiguous[name])
            raise BuildConfigError(f"option {name!r} belongs to several configurations; pass {where}")
        else:
            raise _unknown_option(name, [*top, *nested])
    for owner, values in flat.items():
        base = direct.get(owner, top[owner].default)
        try:
            direct[owner] = dataclasses.replace(base, **values)
        except (TypeError, ValueError) as error:
            raise BuildConfigError(f"{', '.join(values)}: {error}") from None
    return BuildConfig(**direct)


def build(corpus: str | Path, *, out: str | Path, until: str = "card", **options: Any) -> BuildResult:
    """Build a tuned model from ``corpus`` into the work directory ``out``; what ``fieldtune build`` does.

    ``options`` are :class:`BuildConfig` fields (or flat fields of its nested
    configurations), checked before anything runs. Stages already built with the
    same inputs and options are reused, an interrupted build resumes. ``until``
    stops after that stage (``"concepts"``, ``"train"``, ...). The result holds the
    stages run, the evaluations (``result.evaluations["derived"]`` and one per
    ``eval_data`` set) and ``result.model_dir``, whose ``README.md`` is the card.
    """
    config = build_config(**options)
    check_endpoint(config.llm)  # an unreachable LLM fails now, not after ingest and chunking
    return run_build(corpus, out, config, until=until)


def evaluate(model: str | Path, data: str | Path, *, baselines: Sequence[str] = DEFAULT_BASELINES,
             split: str = "test", dims: Sequence[int] | None = None, precision: str | Precision = Precision.AUTO,
             seed: int = 0, resamples: int = 10_000, use_cache: bool = True) -> EvaluationResult:
    """Score ``model`` and its ``baselines`` on the BEIR set ``data``; what ``fieldtune eval`` does.

    ``model`` is a registered name, a model directory (a build's ``model_dir``) or
    a hub id; ``baselines`` takes ``"base"`` (the model's base), ``"bm25"`` or
    other models. Every metric is computed at every Matryoshka dimension in
    ``dims`` (default: full and powers of two down to 64), with paired-bootstrap
    CIs of the differences. ``result.write(path)`` writes the ``eval --json`` file.
    """
    if dims is not None:
        if not dims or any(int(d) < 1 for d in dims):
            raise BuildConfigError(f"dims must list positive integers; got {list(dims)!r}")
        dims = sorted({int(d) for d in dims}, reverse=True)  # largest first, as the CLI orders them
    options = EvalOptions(split=split, dims=dims, precision=_enum(Precision, precision, "precision"), seed=seed,
                          n_resamples=resamples, use_cache=use_cache)
    return run_evaluation(str(model), Path(data), list(baselines), options)

