"""fieldtune: domain-tuned retrieval embeddings from a folder of documents.

The public API, each imported on first access so that ``import fieldtune``
stays cheap (heavy dependencies such as torch load only when used):

- ``fieldtune.build(corpus, out=..., **options)`` -> :class:`fieldtune.build.BuildResult`
- ``fieldtune.evaluate(model, data, baselines=...)`` -> :class:`fieldtune.evaluate.result.EvaluationResult`
- ``fieldtune.Index`` (build, open, search an index)

The functions live in :mod:`fieldtune.api` (with their docstrings and types).
``fieldtune.build`` and ``fieldtune.evaluate`` are also the names of modules of
this package (the build pipeline, the evaluation package); those two modules
are made callable, so ``fieldtune.build(...)`` calls :func:`fieldtune.api.build`
whether or not the module was imported first, and ``from fieldtune.build import
run_build`` keeps working.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from fieldtune.version import __version__

__all__ = ["BuildConfig", "BuildResult", "EvaluationResult", "Index", "__version__", "build", "evaluate"]

#: submodules that are also API functions of the same name in fieldtune.api
_CALLABLE_MODULES = ("build", "evaluate")


class _CallableModule(ModuleType):
    """A submodule that, called, runs the API function of its name (``fieldtune.build(...)``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Imported here, not at the top: fieldtune.api loads torch and the pipeline; `import fieldtune` must not.
        from fieldtune import api

        return getattr(api, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


class _Package(ModuleType):
    """This package: when Python binds the submodule ``build`` or ``evaluate`` here, it is made callable."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_MODULES and type(value) is ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    if name in _CALLABLE_MODULES:
        return importlib.import_module(f"{__name__}.{name}")  # bound here, and made callable, by _Package
    if name == "Index":
        from fieldtune.search import Index

        return Index
    if name == "BuildConfig":
        from fieldtune.config import BuildConfig

        return BuildConfig
    if name == "BuildResult":
        from fieldtune.build import BuildResult

        return BuildResult
    if name == "EvaluationResult":
        from fieldtune.evaluate.result import EvaluationResult

        return EvaluationResult
    raise AttributeError(f"module 'fieldtune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


sys.modules[__name__].__class__ = _Package
