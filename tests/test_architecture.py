"""Architecture rules checked on the source text: no import cycles, and local imports kept visible.

Why on the source and not at run time: a cycle hidden inside a function (an import moved there to
dodge the cycle) still ties the two modules together, and only the syntax tree sees it without
running anything. Imports under ``if TYPE_CHECKING:`` are left out: they never run.

An import of ``a.b`` is an edge to ``a.b`` only, not to its parent package ``a`` (which Python also
runs): otherwise every package whose ``__init__`` re-exports its submodules would be a cycle.
``from a import b`` is an edge to the submodule ``a.b`` when ``b`` is a module, else to ``a``.
"""

from __future__ import annotations

import ast
import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

PACKAGE = "fieldtune"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

#: Third-party libraries heavy enough (or optional enough) to import inside the function that needs them,
#: so that ``fieldtune --help`` stays fast and a missing extra fails only the command that needs it.
HEAVY = frozenset(
    {
        "torch",
        "sentence_transformers",
        "transformers",
        "onnxruntime",
        "onnx",
        "onnxscript",
        "usearch",
        "fastapi",
        "uvicorn",
        "selenium",
        "matplotlib",
        "datasets",
        "pypdf",
        "bm25s",
        "ir_measures",
        "scipy",
        "networkx",
        "psutil",
        "huggingface_hub",
        "Stemmer",
        "ray",
        "psycopg",
        "sympy",  # the demo's corpus: seconds to import, and only the demo needs it
    }
)

#: At most this many cycles are listed in a failure (a big tangle has exponentially many).
MAX_LISTED_CYCLES = 50


@dataclass(frozen=True)
class Import:
    """One import statement's target as written in one module."""

    module: str  # the importing module
    target: str  # the module imported, resolved to a submodule where possible
    line: int
    in_function: bool
    type_checking: bool


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not ``.__init__``)."""
    names: dict[str, Path] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _base_of_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module that ``from .{level} name import ...`` refers to inside ``module``."""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*parts, name] if name else parts)


def _walk(node: ast.AST, in_function: bool, type_checking: bool) -> Iterator[tuple[ast.AST, bool, bool]]:
    """Every import node under ``node`` with whether it sits in a function / a TYPE_CHECKING block."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function, type_checking
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_stmt(stmt, in_function, True)
            for stmt in child.orelse:
                yield from _walk_stmt(stmt, in_function, type_checking)
        else:
            is_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from _walk(child, in_function or is_function, type_checking)


def _walk_stmt(stmt: ast.stmt, in_function: bool, type_checking: bool) -> Iterator[tuple[ast.AST, bool, bool]]:
    """:func:`_walk` over one statement, the statement itself included."""
    wrapper = ast.Module(body=[stmt], type_ignores=[])
    yield from _walk(wrapper, in_function, type_checking)


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """Every import written in ``module`` (any module, not only ours), resolved against ``known``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node, in_function, type_checking in _walk(tree, False, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                _base_of_relative(module, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        for target in dict.fromkeys(targets):
            # `import a.b.c` where c is not a module: the longest prefix that is one.
            while target not in known and "." in target and target.split(".")[0] == PACKAGE:
                target = target.rsplit(".", 1)[0]
            found.append(Import(module, target, node.lineno, in_function, type_checking))
    return found


def all_imports() -> list[Import]:
    names = module_names()
    known = set(names)
    return [imp for module, path in names.items() for imp in imports_of(module, path, known)]


def import_graph() -> nx.DiGraph:
    """Our modules and the imports between them that run (TYPE_CHECKING ones left out)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(module_names())
    for imp in all_imports():
        if imp.type_checking or imp.target not in graph or imp.target == imp.module:
            continue
        graph.add_edge(imp.module, imp.target)
        graph.edges[imp.module, imp.target].setdefault("lines", []).append(imp.line)
    return graph


def describe_cycle(graph: nx.DiGraph, cycle: list[str]) -> str:
    """``a:12 -> b:40 -> a`` (each module with the line of its import of the next)."""
    steps = [
        f"{source}:{graph.edges[source, target]['lines'][0]}"
        for source, target in zip(cycle, [*cycle[1:], cycle[0]], strict=True)
    ]
    return " -> ".join([*steps, cycle[0]])


def local_imports() -> list[Import]:
    """Imports inside functions of anything but a heavy third-party library (see :data:`HEAVY`)."""
    return [
        imp
        for imp in all_imports()
        if imp.in_function and not imp.type_checking and imp.target.split(".")[0] not in HEAVY
    ]


def test_the_package_is_found() -> None:
    """Guards the other tests against passing vacuously on an empty module list."""
    names = module_names()
    assert {"fieldtune", "fieldtune.cli", "fieldtune.concepts.extractors"} <= set(names)


def test_resolution_of_imports(tmp_path: Path) -> None:
    """Relative, submodule and TYPE_CHECKING imports resolve as the module docstring says."""
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from fieldtune.concepts import extractors, ConceptConfig\n"
        "from . import graph\n"
        "import fieldtune.concepts.graph.ConceptGraph\n"
        "if TYPE_CHECKING:\n"
        "    from fieldtune import cli\n"
        "def f():\n"
        "    import torch\n"
        "    from .config import ConceptConfig\n",
        encoding="utf-8",
    )
    known = set(module_names())
    found = imports_of("fieldtune.concepts.statistical", source, known)
    by_target = {(imp.target, imp.in_function, imp.type_checking) for imp in found}
    assert ("fieldtune.concepts.extractors", False, False) in by_target
    assert ("fieldtune.concepts", False, False) in by_target  # ConceptConfig is not a module
    assert ("fieldtune.concepts.graph", False, False) in by_target
    assert ("fieldtune.cli", False, True) in by_target
    assert ("torch", True, False) in by_target
    assert ("fieldtune.concepts.config", True, False) in by_target


def test_no_import_cycles() -> None:
    """No module imports, directly or through others, a module that imports it back.

    Imports inside functions count: moving an import into a function hides a cycle from Python
    at import time, but the two modules still cannot be understood or changed one without the other.
    """
    graph = import_graph()
    cycles = sorted(
        (sorted_cycle(cycle) for cycle in itertools.islice(nx.simple_cycles(graph), MAX_LISTED_CYCLES)),
        key=lambda cycle: (len(cycle), cycle),
    )
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(
        describe_cycle(graph, cycle) for cycle in cycles
    )


def sorted_cycle(cycle: list[str]) -> list[str]:
    """The cycle rotated to start at its smallest name, so failures read the same on every run."""
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]


#: Constants every module of one kind defines by design (each stage module's registry entry).
PER_MODULE_CONSTANTS = frozenset({"STAGE"})


def module_constants() -> dict[str, list[str]]:
    """Public UPPER_CASE names assigned at module level -> the modules that assign them."""
    found: dict[str, list[str]] = {}
    for module, path in module_names().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                name = target.id if isinstance(target, ast.Name) else ""
                if len(name) > 1 and name.isupper() and not name.startswith("_"):
                    found.setdefault(name, []).append(module)
    return found


def test_module_constants_have_unique_names() -> None:
    """Two modules never give one constant name two meanings (``FORMAT`` and ``MODEL_DIR`` once each
    meant two things); a module that needs another's constant imports it."""
    clashes = {
        name: modules
        for name, modules in module_constants().items()
        if len(set(modules)) > 1 and name not in PER_MODULE_CONSTANTS
    }
    assert not clashes, "constants defined in more than one module:\n" + "\n".join(
        f"  {name}: {', '.join(sorted(set(modules)))}" for name, modules in sorted(clashes.items())
    )


def test_report_local_imports() -> None:
    """Lists imports inside functions of light or internal modules; a warning, not a failure (yet).

    Our habit (STYLE.md) is module-level imports except for heavy libraries on the CLI start-up path.
    The list is shown in pytest's warnings summary so it can be ratcheted down.
    """
    found = local_imports()
    if found:
        listing = "\n".join(f"  {imp.module}:{imp.line} imports {imp.target}" for imp in found)
        warnings.warn(f"{len(found)} import(s) inside functions:\n{listing}", UserWarning, stacklevel=1)
