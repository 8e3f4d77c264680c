"""A damaged index directory (issue 13, item 9): ``search`` and ``serve`` name the file and say to rebuild.

On commit 59c04d1 a truncated ``vectors.npy`` or a missing segment file ended
``fieldtune search`` and ``fieldtune serve`` with a Python traceback (exit 1).
Now each exits 2 with one line naming the file and ``fieldtune index``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fieldtune.search import Index
from fieldtune.search.store import DamagedIndexError, MissingIndexFileError
from fieldtune.types import Document
from tests.conftest import build_tiny_index, run_cli

DOCUMENTS = [
    Document(id="heat", title="Heat equation", text="The heat equation describes the diffusion of heat."),
    Document(id="tides", title="Ocean tides", text="Tides are the rise and fall of the sea caused by the moon."),
    Document(id="bees", title="Honey bees", text="Honey bees dance to tell hive mates where flowers are."),
]

#: (file under the index, how it is damaged)
DAMAGE = [
    ("segments/000001/vectors.npy", "truncated"),
    ("segments/000001/vectors.npy", "missing"),
    ("segments/000001/norms.npy", "truncated"),
    ("segments/000001/chunks.jsonl", "truncated"),
    ("segments/000001/doc_ids.json", "truncated"),
    ("generations/000001/deleted_rows.npy", "missing"),
    ("generations/000001/bm25_rows.npy", "truncated"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_index(tmp_path_factory, DOCUMENTS, "whole").root


@pytest.fixture(scope="module")
def built_with_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same documents above a tiny ANN threshold: the dense backend keeps a usearch graph on disk."""
    pytest.importorskip("usearch")
    return build_tiny_index(tmp_path_factory, DOCUMENTS, "graph", ann_threshold=2).root


def damaged_copy(built: Path, tmp_path: Path, relative: str, how: str) -> tuple[Path, Path]:
    """A copy of the index with ``relative`` removed or cut to half its size; (index, damaged file)."""
    root = tmp_path / "damaged"
    shutil.copytree(built, root)
    target = root / relative
    assert target.is_file(), f"fixture index lacks {relative}"
    if how == "missing":
        target.unlink()
    else:
        os.truncate(target, target.stat().st_size // 2)
    return root, target


@pytest.mark.parametrize(("relative", "how"), DAMAGE)
def test_search_names_the_damaged_file(built: Path, tmp_path: Path, relative: str, how: str, capsys, monkeypatch):
    root, target = damaged_copy(built, tmp_path, relative, how)
    code, out, err = run_cli(["search", "--index", str(root), "--mode", "bm25", "heat"], capsys, monkeypatch)
    assert code == 2, (out, err)
    assert str(target) in err and "fieldtune index" in err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(("relative", "how"), DAMAGE[:2])
def test_serve_refuses_a_damaged_index_at_start_up(built: Path, tmp_path: Path, relative: str, how: str, capsys,
                                                   monkeypatch):
    pytest.importorskip("uvicorn")
    root, target = damaged_copy(built, tmp_path, relative, how)
    code, out, err = run_cli(["serve", "--index", str(root), "--port", "1"], capsys, monkeypatch)
    assert code == 2, (out, err)
    assert str(target) in err and "fieldtune index" in err
    assert "Traceback" not in err and "serving" not in out


@pytest.mark.parametrize("how", ["truncated", "missing"])
def test_a_damaged_graph_is_named(built_with_graph: Path, tmp_path: Path, how: str, capsys, monkeypatch) -> None:
    shard = next((built_with_graph / "ann").rglob("*.usearch"))
    root, _ = damaged_copy(built_with_graph, tmp_path, shard.relative_to(built_with_graph).as_posix(), how)
    code, out, err = run_cli(["search", "--index", str(root), "--mode", "bm25", "heat"], capsys, monkeypatch)
    assert code == 2, (out, err)
    assert str(root / "ann") in err and "fieldtune index" in err and "Traceback" not in err


def test_the_errors_keep_their_builtin_kinds(built: Path, tmp_path: Path) -> None:
    """A Python caller catching FileNotFoundError / ValueError still catches them."""
    root, _ = damaged_copy(built, tmp_path, "segments/000001/vectors.npy", "missing")
    with pytest.raises(FileNotFoundError):
        Index.open(root)
    assert issubclass(MissingIndexFileError, FileNotFoundError)
    assert issubclass(DamagedIndexError, ValueError)


def test_an_undamaged_copy_still_opens(built: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(built, root)
    assert [hit.doc_id for hit in Index.open(root).search("diffusion of heat", mode="bm25", k=1)] == ["heat"]
