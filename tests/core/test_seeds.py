"""One seed fixes a run: the same seed in two processes gives the same adapter and the same
answers and intervals; another seed gives another adapter; every seed used is recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from nmm_core.data import write_jsonl_dataset
from nmm_core.seeds import resolve_seeds, run_seed
from nmm_core.testing.processes import largest_difference, run_all
from nmm_core.testing.shapes import make_shapes_dataset


@dataclass(frozen=True)
class _Synthetic:
    seed: int | None = None


@dataclass
class _Split:
    split_seed: int | None = None
    size: int = 3


@dataclass
class _Train:
    seed: int = 0


@dataclass
class _Config:
    train: _Train = field(default_factory=_Train)
    synthetic: _Synthetic = field(default_factory=_Synthetic)
    split: _Split = field(default_factory=_Split)


def test_unset_part_seeds_take_the_run_seed_and_given_ones_stay():
    cfg = _Config(train=_Train(seed=7), split=_Split(split_seed=3))
    assert run_seed(cfg) == 7
    assert resolve_seeds(cfg) == {"train.seed": 7, "synthetic.seed": 7, "split.split_seed": 3}
    assert cfg.synthetic.seed == 7 and cfg.split.split_seed == 3  # a frozen part is replaced, not mutated
    assert resolve_seeds(_Config()) == {"train.seed": 0, "synthetic.seed": 0, "split.split_seed": 0}


def test_a_parsed_config_records_the_seeds_it_will_use(tmp_path):
    from nmm_core.config import dump_yaml, parse_config
    from nmm_core.workflows import EvalConfig, TrainConfig

    cfg = parse_config(TrainConfig, argv=["--train-seed", "5", "--deterministic"])
    assert cfg.train.seed == 5 and cfg.train.deterministic
    assert parse_config(EvalConfig, argv=["--seed", "4"]).seed == 4
    dump_yaml(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["seed"] == 5


def _train(data: Path, out: Path, seed: int, *extra: str) -> tuple[str, ...]:
    return ("nmm_core.cli", "train", "--data-source", str(data), "--data-prompt-column", "prompt",
            "--data-answers-column", "answers", "--lora-r", "4", "--train-batch-size", "4",
            "--train-max-steps", "2", "--train-warmup", "0", "--train-seed", str(seed), "--output-dir", str(out),
            *extra)


def _adapter(out: Path) -> Path:
    (run,) = out.iterdir()
    return run / "adapter"


@pytest.mark.slow
def test_the_same_seed_gives_bit_identical_adapters_in_two_processes(tmp_path):
    """Tiny Qwen2-VL (LoRA) and tiny LLaVA in 4-bit (QLoRA), on CPU: the adapters' initialisation,
    the data order and the steps all follow the run seed."""
    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(8, seed=5), data, split="train")
    qlora = ("--model", "tiny-llava-1.5", "--model-quantization", "4bit", "--model-device", "cpu",
             "--model-dtype", "bfloat16")
    runs = {name: tmp_path / name for name in ("a", "b", "other", "qa", "qb")}
    run_all([_train(data, runs["a"], 7), _train(data, runs["b"], 7), _train(data, runs["other"], 8),
             _train(data, runs["qa"], 7, *qlora), _train(data, runs["qb"], 7, *qlora)])

    assert largest_difference(_adapter(runs["a"]), _adapter(runs["b"])) == 0.0
    assert largest_difference(_adapter(runs["qa"]), _adapter(runs["qb"])) == 0.0
    assert largest_difference(_adapter(runs["a"]), _adapter(runs["other"])) > 1e-3  # another seed, another run

    run = _adapter(runs["a"]).parent
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 7
    summary = json.loads((run / "status.json").read_text())["summary"]
    assert summary["seeds"] == {"train.seed": 7} and summary["deterministic"] is False


@pytest.mark.slow
def test_eval_and_compare_with_the_same_seed_agree_in_two_processes(tmp_path):
    """The same answers and the same paired-bootstrap interval, run by run."""
    from nmm_core.lora import LoraSettings, apply_lora, save_adapter
    from nmm_core.models import load_model
    from nmm_core.task import short_answer_task
    from nmm_core.train import TrainSettings, train

    data = tmp_path / "data"
    write_jsonl_dataset(make_shapes_dataset(12, seed=6), data, split="test")
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings(r=4, alpha=8))
    train(model, loaded.processor, loaded.family, make_shapes_dataset(8, seed=7), task=short_answer_task(),
          settings=TrainSettings(max_steps=4, batch_size=4, lr=1e-2, warmup=0), run_dir=tmp_path / "t",
          use_cpu=True)
    save_adapter(model, tmp_path / "adapter", base_name="tiny-qwen2-vl", family="qwen2_vl")

    common = ("--data-source", str(data), "--data-prompt-column", "prompt", "--data-answers-column", "answers",
              "--adapter", str(tmp_path / "adapter"), "--seed", "3")
    outs = {name: tmp_path / name for name in ("ca", "cb", "e")}
    run_all([("nmm_core.cli", "compare", *common, "--output-dir", str(outs["ca"])),
             ("nmm_core.cli", "compare", *common, "--output-dir", str(outs["cb"])),
             ("nmm_core.cli", "eval", *common, "--output-dir", str(outs["e"]))], at_once=3)
    (ca,), (cb,), (e,) = (list(out.iterdir()) for out in outs.values())

    def answers(path: Path) -> list:
        return [(row["id"], row["prediction"]) for row in map(json.loads, path.read_text().splitlines())]

    for name in ("predictions-base.jsonl", "predictions-fine-tuned.jsonl"):
        assert answers(ca / name) == answers(cb / name), name
    assert answers(e / "predictions.jsonl") == answers(ca / "predictions-fine-tuned.jsonl")  # a third process
    sides = [[{k: v for k, v in row.items() if k != "image"} for row in map(json.loads, (run / "pairs.jsonl")
              .read_text().splitlines())] for run in (ca, cb)]
    assert sides[0] == sides[1]
    reports = [json.loads((run / "report.json").read_text()) for run in (ca, cb)]
    assert reports[0]["bootstrap_seed"] == 3 and "fine-tuned" in reports[0]["delta_ci95_vs_first"]
    assert reports[0]["delta_ci95_vs_first"] == reports[1]["delta_ci95_vs_first"]
    assert json.loads((ca / "status.json").read_text())["summary"]["seeds"] == {"seed": 3}


def test_a_length_grouped_epoch_order_depends_on_the_seed_and_the_epoch_only():
    """A resumed process starts a fresh sampler at a later epoch: it must draw that epoch's order."""
    from nmm_core.train import _epoch_seeded_length_sampler

    def order(epoch: int, seed: int = 3) -> list[int]:
        sampler = _epoch_seeded_length_sampler()(4, lengths=[i % 7 for i in range(64)], seed=seed)
        for e in range(epoch + 1):  # an uninterrupted run reaches `epoch` through the earlier ones
            sampler.set_epoch(e)
            drawn = list(sampler)
        return drawn

    fresh = _epoch_seeded_length_sampler()(4, lengths=[i % 7 for i in range(64)], seed=3)
    fresh.set_epoch(2)
    assert list(fresh) == order(2)
    assert order(1) != order(2) and order(2, seed=4) != order(2)
