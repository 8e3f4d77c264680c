"""Errors that tell the user what went wrong, where, and how to fix it."""

from __future__ import annotations

import importlib
from types import ModuleType


class FieldtuneError(Exception):
    """Base class: the CLI prints these without a traceback."""


class InputError(FieldtuneError):
    """Bad user input, located in a file and, where known, a record.

    The message always starts with the location so it can be found quickly:
    ``corpus.jsonl, line 7: malformed JSON (Expecting ',' delimiter)``.
    """

    def __init__(self, path: object, problem: str, *, record: str | None = None, hint: str = "") -> None:
        self.path = str(path)
        self.record = record
        self.problem = problem
        self.hint = hint
        where = self.path if record is None else f"{self.path}, {record}"
        message = f"{where}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class MissingExtraError(FieldtuneError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require_extra(module: str, extra: str) -> ModuleType:
    """Import ``module``, or fail with the ``pip install 'fieldtune[extra]'`` line that fixes it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(f"{module} is not installed: pip install 'fieldtune[{extra}]'") from error


class ModelNotFoundError(FieldtuneError):
    """A model name that is neither registered, a local directory, nor an allowed hub id."""
