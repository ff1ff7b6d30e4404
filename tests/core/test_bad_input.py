"""Bad input: one clear line naming what and where, a non-zero exit, nothing that looks complete."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nmm_core import cli
from nmm_core.data import write_jsonl_dataset
from nmm_core.errors import DeviceError, PresetError
from nmm_core.models import load_model
from nmm_core.testing.shapes import make_shapes_dataset


def _run(argv, capsys) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith("error:")]


def _common(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data-source", str(data), "--data-prompt-column", "prompt",
            "--data-answers-column", "answers", "--output-dir", str(out),
            "--train-max-steps", "1", *extra]


@pytest.fixture()
def dataset(tmp_path) -> Path:
    folder = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(6, seed=3), folder, split="train")
    return folder


def _nothing_complete(out: Path) -> None:
    for run in out.iterdir() if out.exists() else []:
        assert run.name.endswith(".incomplete"), f"{run} looks complete"
        assert json.loads((run / "status.json").read_text())["state"] == "failed"


def test_missing_data_file(tmp_path, capsys):
    code, errors = _run(_common(tmp_path / "nope.jsonl", tmp_path / "runs"), capsys)
    assert code != 0 and len(errors) == 1 and "nope.jsonl" in errors[0]
    _nothing_complete(tmp_path / "runs")


def test_missing_column_is_named(dataset, tmp_path, capsys):
    argv = _common(dataset, tmp_path / "runs") + ["--data-prompt-column", "query"]
    code, errors = _run(argv, capsys)
    assert code != 0 and "query" in errors[0] and "prompt" in errors[0]
    _nothing_complete(tmp_path / "runs")


def test_unreadable_image_stop_names_the_record(dataset, tmp_path, capsys):
    rows = (dataset / "train.jsonl").read_text().splitlines()
    first = json.loads(rows[0])
    (dataset / first["image"]).write_bytes(b"not a png")
    argv = _common(dataset, tmp_path / "runs") + ["--data-on-bad-record", "stop"]
    code, errors = _run(argv, capsys)
    assert code != 0 and first["id"] in errors[0] and "image" in errors[0]
    _nothing_complete(tmp_path / "runs")


def test_unreadable_image_skip_counts_and_lists_it(dataset, tmp_path, capsys):
    rows = (dataset / "train.jsonl").read_text().splitlines()
    first = json.loads(rows[0])
    (dataset / first["image"]).write_bytes(b"not a png")
    code = cli.main(_common(dataset, tmp_path / "runs"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "kept 5 of 6" in err
    (run,) = (tmp_path / "runs").iterdir()
    problems = [json.loads(line) for line in (run / "problems-train.jsonl").read_text().splitlines()]
    assert [p["id"] for p in problems] == [first["id"]]


def test_unknown_preset_lists_the_known_ones(dataset, tmp_path, capsys):
    argv = _common(dataset, tmp_path / "runs") + ["--model-model", "qwen-nonexistent"]
    code, errors = _run(argv, capsys)
    assert code != 0 and "qwen-nonexistent" in errors[0] and "tiny-qwen2-vl" in errors[0]


def test_hub_id_while_offline_fails_at_once():
    with pytest.raises(PresetError, match="HF_HUB_OFFLINE"):
        load_model("nmm-test/not-a-real-model", family="qwen2_vl")


def test_four_bit_without_bitsandbytes_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import now fails
    with pytest.raises(DeviceError, match="without --model-quantization"):
        load_model("tiny-qwen2-vl", quantization="4bit")


def test_invalid_setting_names_the_field(dataset, tmp_path, capsys):
    code, errors = _run(_common(dataset, tmp_path / "runs") + ["--train-batch-size", "0"], capsys)
    assert code != 0 and "batch_size" in errors[0]
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  learning_rate: 0.1\n")
    code, errors = _run(_common(dataset, tmp_path / "runs") + ["--config", str(config)], capsys)
    assert code != 0 and "learning_rate" in errors[0]


def test_adapter_for_another_model_stops_eval_before_work(dataset, tmp_path, capsys):
    code = cli.main(_common(dataset, tmp_path / "runs"))
    assert code == 0
    (run,) = (tmp_path / "runs").iterdir()
    argv = ["eval", "--data-source", str(dataset), "--data-prompt-column", "prompt",
            "--data-answers-column", "answers", "--data-eval-split", "train",
            "--model-model", "tiny-smolvlm", "--adapter", str(run / "adapter"),
            "--output-dir", str(tmp_path / "evals")]
    code, errors = _run(argv, capsys)
    assert code != 0 and "trained for base 'tiny-qwen2-vl'" in errors[0]
    _nothing_complete(tmp_path / "evals")


def test_image_beyond_the_processors_aspect_ratio_is_skipped_and_listed(dataset, tmp_path, capsys):
    from PIL import Image

    first = json.loads((dataset / "train.jsonl").read_text().splitlines()[0])
    Image.new("RGB", (3000, 5), "white").save(dataset / first["image"])  # Qwen2-VL refuses a ratio over 200
    code = cli.main(_common(dataset, tmp_path / "runs"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "kept 5 of 6" in err and "1 image shape refused by the model" in err
    (run,) = (tmp_path / "runs").iterdir()
    [problem] = [json.loads(line) for line in (run / "problems-train.jsonl").read_text().splitlines()]
    assert problem["id"] == first["id"] and problem["field"] == "image" and "3000x5" in problem["why"]
    # a family without that limit keeps it
    code = cli.main(_common(dataset, tmp_path / "smol") + ["--model", "tiny-smolvlm"])
    assert code == 0 and "kept 6 of 6" in capsys.readouterr().err


def test_eval_report_says_how_many_records_were_skipped_and_where(dataset, tmp_path, capsys):
    first = json.loads((dataset / "train.jsonl").read_text().splitlines()[0])
    (dataset / first["image"]).write_bytes(b"not a png")
    argv = ["eval", "--data-source", str(dataset), "--data-prompt-column", "prompt",
            "--data-answers-column", "answers", "--data-eval-split", "train",
            "--generation-max-new-tokens", "2", "--output-dir", str(tmp_path / "evals")]
    assert cli.main(argv) == 0, capsys.readouterr().err
    (run,) = (tmp_path / "evals").iterdir()
    report = json.loads((run / "report.json").read_text())
    assert report["records"] == {"used": 5, "total": 6, "skipped": 1, "listed_in": "problems-train.jsonl"}
    assert "- **records**: 5 of 6 used; 1 skipped, listed in problems-train.jsonl" in (run / "report.md").read_text()
    assert (run / "problems-train.jsonl").is_file()
