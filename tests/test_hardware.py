"""The hardware module: CPU features from /proc/cpuinfo (or torch), one bf16 rule, describe()'s shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fieldtune import hardware

SAPPHIRE_RAPIDS_FLAGS = "fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
ICE_LAKE_FLAGS = "fpu sse2 avx2 avx512f avx512_vnni"


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake /proc/cpuinfo; the per-process caches are cleared before and after."""
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(hardware, "CPUINFO", path)
    hardware.cpu_features.cache_clear()
    hardware.cpu_model_name.cache_clear()
    yield path
    hardware.cpu_features.cache_clear()
    hardware.cpu_model_name.cache_clear()


def _write(path: Path, flags: str, model: str = "Test CPU") -> None:
    path.write_text(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\nprocessor\t: 1\n")


def test_features_are_read_from_cpuinfo_flags(cpuinfo: Path) -> None:
    _write(cpuinfo, SAPPHIRE_RAPIDS_FLAGS, model="Xeon Platinum 8480")
    features = hardware.cpu_features()
    assert features == hardware.CpuFeatures(avx2=True, avx512f=True, avx512_vnni=True, avx512_bf16=True, amx=True)
    assert features.native_bf16 and hardware.supports_bf16("cpu")
    assert hardware.cpu_model_name() == "Xeon Platinum 8480"


def test_no_native_bf16_without_avx512_bf16_or_amx(cpuinfo: Path) -> None:
    _write(cpuinfo, ICE_LAKE_FLAGS)
    features = hardware.cpu_features()
    assert features.avx512_vnni and not features.avx512_bf16 and not features.amx
    assert not hardware.supports_bf16("cpu")


def test_amx_alone_counts_as_native_bf16() -> None:
    features = hardware.CpuFeatures(avx2=True, avx512f=True, avx512_vnni=True, avx512_bf16=False, amx=True)
    assert features.native_bf16


def test_without_cpuinfo_torch_is_asked(cpuinfo: Path) -> None:
    torch = pytest.importorskip("torch")
    features = hardware.cpu_features()  # the fixture's file was never written
    assert features.avx2 == torch.cpu._is_avx2_supported()
    assert features.avx512_bf16 == torch.cpu._is_avx512_bf16_supported()


def test_describe_is_small_and_json_ready() -> None:
    info = hardware.describe()
    assert set(info) == {"cpu", "cores", "cpu_features", "cuda", "gpu", "bf16"}
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert isinstance(info["cores"], int) and info["cores"] >= 1
    assert set(info["cpu_features"]) == {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx", "avx_vnni"}
    assert all(isinstance(value, bool) for value in info["cpu_features"].values())
    assert isinstance(info["cuda"], bool) and isinstance(info["bf16"], bool)
    assert (info["gpu"] is None) == (not info["cuda"])
    assert json.loads(json.dumps(info)) == info


def test_best_device_follows_cuda() -> None:
    assert hardware.best_device() == ("cuda" if hardware.cuda_available() else "cpu")


def test_torch_threads_restores_the_setting() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with hardware.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with hardware.torch_threads(None):
        assert torch.get_num_threads() == before
