"""Folders built in a temporary sibling and renamed into place; the adapter-folder check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nmm_core.errors import PresetError
from nmm_core.files import build_folder, cache_root, cached_folder


def _fill(text: str):
    def build(tmp: Path) -> None:
        (tmp / "data.txt").write_text(text)
        (tmp / "done").write_text("")

    return build


def test_build_folder_replaces_an_existing_folder_and_leaves_no_sibling(tmp_path):
    final = tmp_path / "out"
    build_folder(final, _fill("one"))
    build_folder(final, _fill("two"))
    assert (final / "data.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_build_keeps_the_old_folder(tmp_path):
    final = tmp_path / "out"
    build_folder(final, _fill("one"))

    def broken(tmp: Path) -> None:
        (tmp / "data.txt").write_text("half")
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        build_folder(final, broken)
    assert (final / "data.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_with_a_marker_a_complete_folder_is_built_once(tmp_path):
    final = tmp_path / "out"
    build_folder(final, _fill("one"), marker="done")
    build_folder(final, _fill("two"), marker="done")
    assert (final / "data.txt").read_text() == "one"


def test_with_a_marker_the_folder_another_process_finished_first_is_kept(tmp_path):
    final = tmp_path / "out"

    def race(tmp: Path) -> None:
        _fill("theirs")(final.mkdir() or final)  # another process renames its folder in first
        _fill("mine")(tmp)

    assert build_folder(final, race, marker="done") == final
    assert (final / "data.txt").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_incomplete_folder_is_not_served_from_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NMM_CACHE", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache"
    half = tmp_path / "cache" / "kind" / "key"
    half.mkdir(parents=True)
    (half / "data.txt").write_text("half")  # a folder made some other way, without the marker
    with pytest.raises(OSError):
        cached_folder("kind", "key", _fill("new"), marker="done")
    assert sorted(p.name for p in (tmp_path / "cache" / "kind").iterdir()) == ["key"]
    assert (half / "data.txt").read_text() == "half"


def test_the_adapter_folder_check(tmp_path):
    from nmm_core.lora import read_adapter_marker

    with pytest.raises(PresetError, match="not a LoRA adapter folder"):
        read_adapter_marker(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    assert read_adapter_marker(tmp_path) == {}
    (tmp_path / "nmm_adapter.json").write_text(json.dumps({"family": "qwen2_vl"}))
    assert read_adapter_marker(tmp_path) == {"family": "qwen2_vl"}


def test_atomic_write_npz_round_trips_compresses_on_request_and_leaves_no_temporary(tmp_path):
    import numpy as np

    from nmm_core.files import atomic_write_npz

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    plain = atomic_write_npz(tmp_path / "x" / "plain.npz", a=a, ids=np.array(["s1", "s2"]))
    with np.load(plain, allow_pickle=False) as z:
        assert z["a"].tolist() == a.tolist() and z["ids"].tolist() == ["s1", "s2"]
    zeros = np.zeros((200, 200))
    packed = atomic_write_npz(tmp_path / "x" / "packed.npz", compressed=True, zeros=zeros)
    loose = atomic_write_npz(tmp_path / "x" / "loose.npz", zeros=zeros)
    assert packed.stat().st_size * 10 < loose.stat().st_size  # savez_compressed, not savez
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["loose.npz", "packed.npz", "plain.npz"]
