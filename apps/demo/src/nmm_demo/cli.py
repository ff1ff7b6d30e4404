"""`nmm-demo`: fine-tune a tiny Qwen2-VL twin with LoRA, then compare it with its base, report.

Everything runs offline on the CPU in minutes (README.md: first and warm run): the data is generated, the model is
built from the real architecture's classes with random weights.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nmm_core.cli import run_cli


@dataclass
class DemoConfig:
    """Settings of the demo run."""

    model: str = field(default="tiny-qwen2-vl", metadata={"help": "a tiny preset (offline)"})
    train_size: int = field(default=1200, metadata={"help": "training examples (the studies' 1,200)"})
    test_size: int = field(default=100, metadata={"help": "held-out examples"})
    epochs: float = 5.0
    lr: float = 3e-3
    batch_size: int = 16
    lora_r: int = field(default=16, metadata={"help": "LoRA rank; alpha is 2 x r, as on every VLM path"})
    seed: int = 0
    output_dir: str = field(default="runs", metadata={"help": "where the run folder is made"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.train_size < 1 or self.test_size < 1:
            raise ValueError("train_size and test_size must be at least 1")


def run_demo(cfg: DemoConfig) -> Path:
    """Core's `run_train`, then `run_compare` in the same run folder; returns the completed folder."""
    from nmm_core import (
        DataSettings,
        EvalConfig,
        GenerationSettings,
        LoraSettings,
        ModelSettings,
        TrainConfig,
        TrainSettings,
        make_shapes_dataset,
        run_compare,
        run_train,
        short_answer_task,
        write_jsonl_dataset,
    )

    task = short_answer_task("shapes-vqa")
    examples = make_shapes_dataset(cfg.train_size + cfg.test_size, seed=cfg.seed)
    train_set, test_set = examples[: cfg.train_size], examples[cfg.train_size :]
    model, data = ModelSettings(model=cfg.model), DataSettings(source="data")  # the set the run writes to data/
    train = TrainConfig(data=data, model=model, output_dir=cfg.output_dir,
                        lora=LoraSettings(r=cfg.lora_r, train_projector=True),  # alpha: the common default, 2r
                        train=TrainSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                            logging_steps=10, save_steps=10**9, seed=cfg.seed))

    def compare(run: Path) -> dict:
        """The base and the saved adapter merged into a fresh base (as a user ships it), in the train run."""
        for split, rows in (("train", train_set), ("test", test_set)):
            write_jsonl_dataset(rows, run / "data", split=split)
        evaluate = EvalConfig(data=data, model=model, adapter=str(run / "adapter"), seed=cfg.seed,
                              generation=GenerationSettings(batch_size=32, max_new_tokens=4), progress=cfg.progress)
        run_compare(evaluate, task, examples=test_set, into=run, breakdown="kind")
        results = json.loads((run / "report.json").read_text(encoding="utf-8"))["results"]
        return {r["name"].replace("-", "_"): r[task.primary] for r in results}

    final = run_train(train, task, examples=train_set, finish=compare, kind="demo")
    print(f"report: {final / 'report.md'}")
    return final


def main(argv: list[str] | None = None) -> int:
    """Parse flags (and an optional --config YAML) and run the demo."""
    from nmm_core.config import build_parser, config_from_parsed

    parser = build_parser(DemoConfig, prog="nmm-demo", description=__doc__)
    ns = parser.parse_args(argv)
    return run_cli(lambda: run_demo(config_from_parsed(DemoConfig, ns)), "nmm-demo")


if __name__ == "__main__":
    sys.exit(main())
