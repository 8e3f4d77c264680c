"""Named registries for fieldtune's seams: one explicit table per kind of plug-in.

Every extension point (base models, pair generators, losses, encoder and index
backends, stages) keeps its implementations in a :class:`Registry`: an ordered
name -> item table that rejects a second item under the same name and, for an
unknown name, says which names exist and which are close to the one asked for.

Adding an implementation is one new module that calls ``REGISTRY.register(...)``
and one import line in the module that owns the registry (so the table is
complete without import-time scanning).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from fieldtune.errors import FieldtuneError

T = TypeVar("T")


class UnknownNameError(FieldtuneError, KeyError):
    """A name that no registered item has."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """An explicit, ordered name -> item table (see the module docstring)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name``; a name is taken once. Returns ``item`` (usable as a decorator helper)."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def suggest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)

    def unknown_message(self, name: str) -> str:
        close = self.suggest(name)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self._items) or 'none'})"
