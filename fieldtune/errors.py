"""Errors that tell the user what went wrong, where, and how to fix it."""

from __future__ import annotations


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


class ModelNotFoundError(FieldtuneError):
    """A model name that is neither registered, a local directory, nor an allowed hub id."""


class NotReadyError(FieldtuneError):
    """A stage that is not implemented yet; says so instead of faking a result."""
