"""Hostile input to ``fieldtune search`` (issue 13, item 6): a blank query is refused, not answered.

On commit 59c04d1 ``fieldtune search --index I ""`` printed ten arbitrary results and exited 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldtune.types import Document
from tests.conftest import build_tiny_index, run_cli

DOCUMENTS = [
    Document(id="heat", title="Heat equation", text="The heat equation describes the diffusion of heat."),
    Document(id="tides", title="Ocean tides", text="Tides are the rise and fall of the sea caused by the moon."),
    Document(id="bees", title="Honey bees", text="Honey bees dance to tell hive mates where flowers are."),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_index(tmp_path_factory, DOCUMENTS, "hostile").root


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_blank_query_exits_2_with_a_message(index: Path, query: str, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["search", "--index", str(index), query], capsys, monkeypatch)
    assert code == 2, (out, err)
    assert out == ""  # no results
    assert "query is blank" in err and "heat equation" in err
    assert "Traceback" not in err


def test_a_real_query_still_answers(index: Path, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["search", "--index", str(index), "--json", "diffusion of heat"], capsys, monkeypatch)
    assert code == 0, err
    assert '"heat"' in out
