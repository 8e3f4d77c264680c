from __future__ import annotations

import json
from pathlib import Path

import pytest

from fieldtune.errors import InputError
from fieldtune.hashing import path_sha256
from fieldtune.workdir import WorkDir, atomic_write


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


def _stage(workdir: WorkDir, source: Path, calls: list[int], param: int = 1):
    def build():
        calls.append(1)
        (workdir.path("out.txt")).write_text(source.read_text().upper())
        return {"n": len(calls)}

    return workdir.run_stage("upper", inputs={"src": source}, params={"p": param}, outputs=["out.txt"], build=build)


def test_stage_skips_when_unchanged_and_reruns_when_inputs_change(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("hello")
    workdir = WorkDir(tmp_path / "work")
    calls: list[int] = []
    first = _stage(workdir, source, calls)
    assert not first.skipped and calls == [1]
    assert _stage(workdir, source, calls).skipped and calls == [1]
    _stage(workdir, source, calls, param=2)  # parameters changed
    assert len(calls) == 2
    source.write_text("changed")  # inputs changed
    assert not _stage(workdir, source, calls, param=2).skipped
    record = json.loads((workdir.root / "manifest.json").read_text())["stages"]["upper"]
    assert record["params"] == {"p": 2}
    assert record["inputs"]["src"]["sha256"] == path_sha256(source)
    assert record["outputs"]["out.txt"] == path_sha256(workdir.path("out.txt"))
    assert "python" in record["versions"] and record["stats"] == {"n": 3}


def test_tampered_output_is_rebuilt(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("hello")
    workdir = WorkDir(tmp_path / "work")
    calls: list[int] = []
    _stage(workdir, source, calls)
    workdir.path("out.txt").write_text("tampered")
    assert not _stage(workdir, source, calls).skipped
    assert workdir.path("out.txt").read_text() == "HELLO"


def test_interrupted_stage_has_no_record_and_reruns(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("hello")
    workdir = WorkDir(tmp_path / "work")

    def crash():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        workdir.run_stage("upper", inputs={"src": source}, params={}, outputs=["out.txt"], build=crash)
    assert "upper" not in workdir.manifest()["stages"]
    calls: list[int] = []
    assert not _stage(workdir, source, calls).skipped


def test_directory_hash_sees_content_and_names(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x")
    first = path_sha256(tmp_path / "d")
    (tmp_path / "d" / "a.txt").write_text("y")
    second = path_sha256(tmp_path / "d")
    (tmp_path / "d" / "a.txt").rename(tmp_path / "d" / "b.txt")
    assert len({first, second, path_sha256(tmp_path / "d")}) == 3


def test_refuses_a_folder_it_did_not_create_and_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "w" / "model").mkdir(parents=True)
    (tmp_path / "w" / "model" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty and holds no fieldtune manifest"):
        WorkDir(tmp_path / "w")
    assert (tmp_path / "w" / "model" / "keep.txt").read_text() == "x"


@pytest.mark.parametrize("content", ['{"name": "other-app", "version": 3}', '[1, 2, 3]', '{"stages": [1]}'])
def test_refuses_another_applications_manifest(tmp_path: Path, content: str) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "manifest.json").write_text(content)
    with pytest.raises(InputError, match="not a fieldtune work-directory manifest"):
        WorkDir(tmp_path / "w")
    assert (tmp_path / "w" / "manifest.json").read_text() == content


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        WorkDir(tmp_path / "f")


def test_a_failed_first_stage_leaves_no_folder_behind(tmp_path: Path) -> None:
    workdir = WorkDir(tmp_path / "new")

    def fail() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        workdir.run_stage("ingest", inputs={}, params={}, outputs=[], build=fail)
    assert not (tmp_path / "new").exists()


def test_manifest_written_by_v01_is_still_ours(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "manifest.json").write_text('{"stages": {"ingest": {"key": "abc", "outputs": {}}}}')
    assert WorkDir(tmp_path / "w").manifest()["stages"]["ingest"]["key"] == "abc"


def test_a_rerun_that_dies_leaves_no_stale_record(tmp_path: Path) -> None:
    workdir = WorkDir(tmp_path / "work")
    target = workdir.path("out.txt")

    def write(text: str):
        def build() -> None:
            target.write_text(text)
            if text == "second":
                raise KeyboardInterrupt  # killed after rewriting its output, before recording it
        return build

    workdir.run_stage("s", inputs={}, params={"v": 1}, outputs=["out.txt"], build=write("first"))
    with pytest.raises(KeyboardInterrupt):
        workdir.run_stage("s", inputs={}, params={"v": 2}, outputs=["out.txt"], build=write("second"))
    record = workdir.manifest()["stages"]["s"]
    assert record["key"] is None and record["outputs"] == {}  # nothing listed that no longer matches
