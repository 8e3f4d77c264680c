"""Texts to calibrate and check an int8 model with, found offline on every machine fieldtune runs on.

Quantising activations needs their ranges on realistic inputs. Shipping a text
collection would mean licensing one; instead the docstrings of the Python
standard library and of SymPy (installed with torch) give technical English
prose and mathematics, paragraphs and short first sentences (query-like).
The choice is seeded and sorted, so the same installation gives the same texts.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re

#: Modules whose docstrings are read (those not importable are skipped).
SOURCES = (
    "argparse", "collections", "concurrent.futures", "csv", "datetime", "decimal", "email.message",
    "fractions", "functools", "http.client", "itertools", "json", "logging", "pathlib", "random", "re",
    "sqlite3", "statistics", "string", "textwrap", "unittest", "urllib.parse", "zipfile",
    "sympy.combinatorics", "sympy.geometry", "sympy.integrals", "sympy.matrices", "sympy.ntheory",
    "sympy.polys", "sympy.series", "sympy.sets", "sympy.solvers", "sympy.stats", "sympy.tensor",
)

_SPACE = re.compile(r"\s+")


def _docstrings(module_name: str) -> list[str]:
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - any optional module may fail to import; it is then skipped
        return []
    docs = [module.__doc__ or ""]
    for name in sorted(vars(module)):
        if not name.startswith("_"):
            item = getattr(module, name)
            if inspect.isfunction(item) or inspect.isclass(item):
                docs.append(item.__doc__ or "")
    return docs


def _paragraphs(doc: str) -> list[str]:
    """Prose paragraphs of a docstring: no doctest lines, no headings, 12 to 200 words."""
    kept = []
    for block in re.split(r"\n\s*\n", doc):
        lines = [line.strip() for line in block.splitlines()]
        if not lines or any(line.startswith((">>>", "...", "--", "==")) for line in lines):
            continue
        text = _SPACE.sub(" ", " ".join(lines)).strip()
        if 12 <= len(text.split()) <= 200:
            kept.append(text)
    return kept


def calibration_texts(count: int, *, seed: int = 0) -> list[str]:
    """``count`` distinct texts (or all there are), of the lengths models meet.

    One in four is a first sentence (query-like), one in four a paragraph, and
    half are passages of about 150 words joined from consecutive paragraphs
    (abstract-like: activation ranges also depend on sequence length).
    """
    paragraphs = sorted({p for module in SOURCES for doc in _docstrings(module) for p in _paragraphs(doc)})
    random.Random(seed).shuffle(paragraphs)
    texts: list[str] = []
    position = 0
    while position < len(paragraphs) and len(texts) < count:
        kind = len(texts) % 4
        if kind == 0:
            text = paragraphs[position].split(". ")[0].rstrip(".")
            position += 1
        elif kind == 1:
            text = paragraphs[position]
            position += 1
        else:
            joined: list[str] = []
            while position < len(paragraphs) and sum(len(p.split()) for p in joined) < 150:
                joined.append(paragraphs[position])
                position += 1
            text = " ".join(joined)
        if text not in texts:
            texts.append(text)
    return texts
