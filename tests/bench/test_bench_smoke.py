"""`nmm-bench --size smoke` completes and writes its JSON (timings are never asserted)."""

from __future__ import annotations

import json

import pytest

from nmm_bench.cli import BENCHMARKS, main


@pytest.mark.slow
def test_smoke_benchmarks_write_their_results(tmp_path, capsys):
    assert main(["--size", "smoke", "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("*.json"))
    assert {f.name.split("-smoke-")[0] for f in files} == set(BENCHMARKS)
    for f in files:
        data = json.loads(f.read_text())
        assert data["size"] == "smoke" and data["device"] and data["versions"]["torch"]
        assert data["provenance"]["commit"] and data["provenance"]["nmm_version"]
        assert all(row["raw_seconds"] and row["ratio"] is not None for row in data["rows"])
    generation = json.loads(next(tmp_path.glob("generation-*.json")).read_text())
    assert generation["checks"]["nmm evaluate (b=16, length-sorted): answers equal one-at-a-time (first 32)"] == "32/32"
    assert set(generation["summary"]) >= {"equal_batch_ratio", "best_ratio"}
    step = json.loads(next(tmp_path.glob("train-step-*.json")).read_text())
    assert step["summary"]["first_epoch_ratio"] and step["summary"]["steady_ratio"]
    qlora = json.loads(next(tmp_path.glob("qlora-*.json")).read_text())
    assert qlora["summary"]["recipe_minutes"] > 0
    bridge = json.loads(next(tmp_path.glob("bridge-matching-*.json")).read_text())
    assert [row["label"] for row in bridge["rows"]][:3] == ["ours (Brownian bridge)", "torchcfm SB-CFM",
                                                           "torchcfm CFM"]
    for row in bridge["rows"]:
        assert -1 <= row["value"] <= 1 and 0 <= row["extra"]["identification"] <= 1
        assert len(row["raw_seconds"]) == 2  # training, sampling
    assert bridge["versions"]["torchcfm"] != "absent"
    pipeline = json.loads(next(tmp_path.glob("data-pipeline-*.json")).read_text())
    assert [row["extra"]["kept"] for row in pipeline["rows"]] == pipeline["settings"]["sizes"]
    assert all(row["extra"]["normalised_on_cpu_equals_processor"] for row in pipeline["rows"])
    assert pipeline["checks"]["uint8 pixels normalised on the device equal the processor's float32 ones"]
    merged = json.loads(next(tmp_path.glob("merged-inference-*.json")).read_text())
    low, high = merged["checks"]["merged_vs_base_range"]
    assert low <= merged["checks"]["merged_vs_base_median"] <= high
    assert merged["checks"]["target_met"] == (merged["checks"]["merged_vs_base_median"] <= 1.02)
    assert isinstance(merged["checks"]["conclusive"], bool)
    assert all(len(row["raw_seconds"]) == merged["settings"]["rounds"] for row in merged["rows"])
    assert merged["checks"]["merged answers equal unmerged answers"] == "32/32"  # fp32 on CPU
    out = capsys.readouterr().out
    assert "ratio vs" in out and "check merged_vs_base_median" in out


def test_full_size_without_cuda_says_what_to_do(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["generation", "--size", "full", "--allow-dirty", "--out", str(tmp_path)]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_unknown_benchmark_is_refused():
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 2



def test_the_ratio_table_keeps_its_columns_under_long_labels_and_units():
    from nmm_bench.harness import Result, Row

    rows = [Row("one at a time", 1.169, "answers/s"),
            Row("plain batched generate (b=32, input order), a long label", 14.9, "answers/s"),
            Row("short", 123456.5, "examples per second, long unit")]
    lines = Result("x", "smoke", "one at a time", {}, rows, device="cpu", versions={}).table().splitlines()[1:]
    values, units = ("1.169", "14.900", "123456.500"), ("answers/s", "answers/s", "examples")
    # every row's value ends, unit starts and ratio ends in the same column
    assert len({line.index(v) + len(v) for line, v in zip(lines, values, strict=True)}) == 1
    assert len({line.index(u) for line, u in zip(lines, units, strict=True)}) == 1
    assert len({len(line) for line in lines}) == 1
    assert [line.split()[-1] for line in lines] == ["1.00x", "12.75x", "105608.64x"]  # 123456.5 / 1.169
