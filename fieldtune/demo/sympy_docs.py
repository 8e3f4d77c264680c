"""A demo corpus and labelled retrieval task built from SymPy's docstrings.

SymPy ships with torch, so its documentation is on every machine that can run
this project, works offline, and was written by people who had no part in it.
Each public docstring is split into its one-line summary (the query) and the
rest of the text (the document): a query's relevant document is the body that
followed it, so the labels come from the structure of the docs, not from us.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import logging
import pkgutil
import random
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

from fieldtune.evaluate.beir import write_beir  # noqa: F401  (re-exported: the demo writes its set with it)
from fieldtune.types import Document, EvalSet, Qrels

logger = logging.getLogger("fieldtune.demo.sympy_docs")

EVAL_SET_NAME = "sympy-docstrings"
#: Module name components that mark test or benchmark code.
SKIPPED_MODULE_PARTS = ("tests", "conftest", "benchmarks")
#: Summaries that point elsewhere instead of describing (compared lower-cased).
GENERIC_SUMMARY_PREFIXES = (
    "see the docstring",
    "see docstring",
    "alias for",
    "same as",
    "return self",
    "returns self",
    "deprecated",
    "wrapper around",
    "wrapper for",
)
MIN_SUMMARY_WORDS = 3
MAX_SUMMARY_WORDS = 40
MIN_BODY_CHARS = 100

_UNDERLINE = re.compile(r"\s*(={3,}|-{3,})\s*")
_ROLE = re.compile(r":[\w:]+:`~?([^`]+)`")
_NAME = re.compile(r"\.?[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class SympyDoc:
    """One SymPy docstring split into summary (first paragraph) and body."""

    qualname: str
    summary: str
    body: str
    see_also: tuple[str, ...]
    module: str


def _skip_module(name: str) -> bool:
    return any(part.startswith("_") or part in SKIPPED_MODULE_PARTS for part in name.split("."))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence warnings and anything a module prints while it is imported."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        with contextlib.redirect_stderr(sink):
            yield


def _safe_import(name: str) -> ModuleType | None:
    """Import ``name``; ``None`` when it fails in any way (missing extras, SystemExit, ...)."""
    try:
        with _quiet():
            return importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a demo corpus skips what it cannot import
        logger.debug("skipping %s: %s: %s", name, type(exc).__name__, exc)
        return None


def _walk_modules(root: str) -> Iterator[ModuleType]:
    """``root`` and every importable, non-test, public module below it, in name order."""
    module = _safe_import(root)
    if module is None:
        return
    yield module
    path = getattr(module, "__path__", None)
    if path is None:
        return
    # pkgutil.walk_packages would import subpackages itself and let some failures
    # through; iter_modules plus our own guarded import walks the same tree.
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        name = f"{root}.{info.name}"
        if not _skip_module(name):
            yield from _walk_modules(name)


def _class_docs(cls: type, prefix: str) -> Iterator[tuple[str, Any]]:
    """(qualname, raw docstring) for ``cls`` and the public members defined in its body."""
    yield f"{prefix}.{cls.__qualname__}", vars(cls).get("__doc__")
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            yield f"{prefix}.{cls.__qualname__}.{name}", member.__doc__
            continue
        func = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
        defined_here = getattr(func, "__qualname__", None) == f"{cls.__qualname__}.{name}"
        if not defined_here or getattr(func, "__module__", None) != cls.__module__:
            continue  # an alias or an object defined elsewhere
        if inspect.isclass(func):
            yield from _class_docs(func, prefix)
        elif inspect.isfunction(func):
            yield f"{prefix}.{func.__qualname__}", func.__doc__


def _module_docs(module: ModuleType) -> Iterator[tuple[str, Any]]:
    """(qualname, raw docstring) for a module and the public objects defined in it."""
    yield module.__name__, module.__doc__
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if getattr(obj, "__qualname__", None) != name:
            continue  # an alias: the object is visited under its own name
        if inspect.isclass(obj):
            yield from _class_docs(obj, module.__name__)
        elif inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj.__doc__


def _is_header(lines: list[str], i: int) -> bool:
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    return bool(lines[i].strip()) and bool(_UNDERLINE.fullmatch(nxt))


def _split_summary(doc: str) -> tuple[str, str] | None:
    """(first paragraph as one line, rest stripped); ``None`` when the doc opens with a header."""
    lines = doc.splitlines()
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    if _is_header(lines, 0):
        return None
    summary = " ".join(" ".join(lines[:end]).split())
    return summary, "\n".join(lines[end:]).strip()


def _names_in(line: str) -> list[str] | None:
    """The names on one "See Also" entry line; ``None`` when it is not a name list."""
    text = _ROLE.sub(r"\1", line).replace("`", "")
    text = text.split(":", 1)[0]  # "name : description"
    tokens = [t.strip().lstrip("~").removesuffix("()") for t in re.split(r"[,\s]+", text.strip())]
    tokens = [t.rstrip(".") for t in tokens if t]
    if not tokens or not all(_NAME.fullmatch(t) for t in tokens):
        return None
    return tokens


def parse_see_also(doc: str) -> tuple[str, ...]:
    """Names listed in a numpydoc-style "See Also" section (``====`` or ``----`` underline)."""
    lines = doc.splitlines()
    heads = [i for i, line in enumerate(lines) if line.strip().lower() == "see also"]
    start = next((i + 2 for i in heads if _is_header(lines, i)), None)
    if start is None:
        return ()
    names: list[str] = []
    indent: int | None = None
    for i in range(start, len(lines)):
        line = lines[i]
        if not line.strip() or line.strip().startswith(".. seealso::"):
            continue
        if _is_header(lines, i):
            break
        this_indent = len(line) - len(line.lstrip())
        indent = this_indent if indent is None else indent
        if this_indent > indent:
            continue  # a description under the previous entry
        found = _names_in(line)
        if found is None:
            break  # free text: the list is over
        names.extend(found)
    return tuple(dict.fromkeys(names))


def _keep(summary: str, body: str) -> bool:
    """The summary describes (not points elsewhere), has a sane length, and is not repeated."""
    n_words = len(summary.split())
    if not MIN_SUMMARY_WORDS <= n_words <= MAX_SUMMARY_WORDS or len(body) < MIN_BODY_CHARS:
        return False
    if summary.lower().startswith(GENERIC_SUMMARY_PREFIXES) or ">>>" in summary:
        return False
    return summary not in body and summary not in " ".join(body.split())


def _to_doc(qualname: str, module: str, doc: str) -> SympyDoc | None:
    split = _split_summary(doc)
    if split is None or not _keep(*split):
        return None
    summary, body = split
    return SympyDoc(qualname, summary, body, see_also=parse_see_also(doc), module=module)


@lru_cache(maxsize=8)
def _collect(min_chars: int, packages: tuple[str, ...]) -> tuple[SympyDoc, ...]:
    raw: dict[str, tuple[str, str]] = {}
    with _quiet():
        for root in packages:
            for module in _walk_modules(root):
                for qualname, doc in _module_docs(module):
                    if isinstance(doc, str) and doc.strip() and qualname not in raw:
                        raw[qualname] = (module.__name__, inspect.cleandoc(doc).strip())
    # Identical docstrings, or identical bodies under different summaries (which
    # no query could tell apart), keep only the first by qualified name.
    docs: list[SympyDoc] = []
    seen_texts: set[str] = set()
    seen_bodies: set[str] = set()
    for qualname in sorted(raw):
        module, text = raw[qualname]
        if text in seen_texts:
            continue
        seen_texts.add(text)
        doc = _to_doc(qualname, module, text) if len(text) >= min_chars else None
        if doc is not None and doc.body not in seen_bodies:
            seen_bodies.add(doc.body)
            docs.append(doc)
    return tuple(docs)


def collect_sympy_docstrings(
    *, min_chars: int = 200, packages: tuple[str, ...] | None = None
) -> list[SympyDoc]:
    """Public SymPy docstrings of at least ``min_chars`` characters, sorted by qualified name.

    ``packages`` restricts the walk to those (sub)packages, e.g. ``("sympy.ntheory",)``.
    Results are cached per process, since importing all of SymPy takes seconds.
    """
    roots = tuple(sorted(set(packages))) if packages is not None else ("sympy",)
    bad = [root for root in roots if root != "sympy" and not root.startswith("sympy.")]
    if bad:
        raise ValueError(f"packages must be sympy packages, got {bad}")
    return list(_collect(min_chars, roots))


def sympy_version() -> str:
    import sympy

    return str(sympy.__version__)


def _sample(docs: list[SympyDoc], limit: int | None, seed: int) -> list[SympyDoc]:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if limit is None or limit >= len(docs):
        return docs
    return sorted(random.Random(seed).sample(docs, limit), key=lambda d: d.qualname)


def _document(doc: SympyDoc, source: str) -> Document:
    metadata = {"module": doc.module, "see_also": list(doc.see_also), "source": source}
    return Document(id=doc.qualname, text=doc.body, title="", metadata=metadata)


def sympy_corpus(
    *, limit: int | None = None, seed: int = 0, packages: tuple[str, ...] | None = None
) -> list[Document]:
    """One document per docstring: id = qualified name, text = body (never the summary)."""
    docs = _sample(collect_sympy_docstrings(packages=packages), limit, seed)
    source = f"sympy {sympy_version()} docstrings"
    return [_document(doc, source) for doc in docs]


def sympy_eval_set(
    *, limit: int | None = None, seed: int = 0, packages: tuple[str, ...] | None = None
) -> EvalSet:
    """Query = a docstring's summary; its relevant document = that docstring's body.

    Docstrings sharing one summary give a single query (id from the first by
    name) with every one of their bodies relevant.
    """
    docs = _sample(collect_sympy_docstrings(packages=packages), limit, seed)
    source = f"sympy {sympy_version()} docstrings"
    corpus = {doc.qualname: _document(doc, source) for doc in docs}
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    query_of_summary: dict[str, str] = {}
    for doc in docs:
        qid = query_of_summary.setdefault(doc.summary, f"q:{doc.qualname}")
        queries[qid] = doc.summary
        qrels.setdefault(qid, {})[doc.qualname] = 1
    return EvalSet(name=EVAL_SET_NAME, corpus=corpus, queries=queries, qrels=qrels)


