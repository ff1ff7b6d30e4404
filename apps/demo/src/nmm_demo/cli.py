"""`nmm-demo`: evaluate a tiny Qwen2-VL twin, fine-tune it with LoRA, evaluate again, report.

Everything runs offline on the CPU in about a minute: the data is generated, the model is
built from the real architecture's classes with random weights.
"""

from __future__ import annotations

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
    """The whole demo; returns the completed run folder."""
    from nmm_core.config import dump_yaml
    from nmm_core.data import write_jsonl_dataset
    from nmm_core.evaluate import GenerationSettings, evaluate
    from nmm_core.lora import LoraSettings, apply_lora, load_adapter, save_adapter
    from nmm_core.models import load_model
    from nmm_core.report import breakdown_by, delta_lines, plot_loss, print_table, write_comparison
    from nmm_core.runs import RunDir
    from nmm_core.seeds import seed_run
    from nmm_core.task import short_answer_task
    from nmm_core.testing.shapes import make_shapes_dataset
    from nmm_core.train import TrainSettings, train

    seed_run(cfg.seed)
    task = short_answer_task("shapes-vqa")
    gen = GenerationSettings(batch_size=32, max_new_tokens=4)
    with RunDir.create(cfg.output_dir, "demo", cfg.model) as run:
        dump_yaml(cfg, run.file("config.yaml"))
        examples = make_shapes_dataset(cfg.train_size + cfg.test_size, seed=cfg.seed)
        train_set, test_set = examples[: cfg.train_size], examples[cfg.train_size :]
        for split, rows in (("train", train_set), ("test", test_set)):
            write_jsonl_dataset(rows, run.file("data"), split=split)
        kinds = [ex.meta["kind"] for ex in test_set]

        base = load_model(cfg.model, padding_side="left")
        before = evaluate(base.model, base.processor, base.family, test_set, task=task,
                          settings=gen, name="base", out_file=run.file("predictions-base.jsonl"),
                          progress=cfg.progress)

        tuned = load_model(cfg.model)
        lora = LoraSettings(r=cfg.lora_r, train_projector=True)  # alpha: the common default, 2r
        peft_model = apply_lora(tuned, lora)
        settings = TrainSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                 logging_steps=10, save_steps=10**9, seed=cfg.seed)
        outcome = train(peft_model, tuned.processor, tuned.family, train_set, task=task,
                        settings=settings, run_dir=run.path, use_cpu=True)
        save_adapter(peft_model, run.file("adapter"), base_name=cfg.model, family=tuned.family.name)
        plot_loss(run.file("metrics.jsonl"), run.file("loss.png"))

        # Inference the way a user ships it: a fresh base with the saved adapter merged in.
        fresh = load_model(cfg.model, padding_side="left")
        merged = load_adapter(fresh, run.file("adapter"), merge=True)
        after = evaluate(merged, fresh.processor, fresh.family, test_set, task=task,
                         settings=gen, name="fine-tuned",
                         out_file=run.file("predictions-fine-tuned.jsonl"), progress=cfg.progress)

        results = [before, after]
        breakdown = {r.name: breakdown_by(r, kinds, task.primary) for r in results}
        write_comparison(
            results, run.path, title="Shapes VQA: tiny Qwen2-VL, base vs LoRA fine-tuned",
            primary=task.primary_metric, breakdown=breakdown,
            context={"model": cfg.model, "train_examples": len(train_set),
                     "test_examples": len(test_set), "epochs": cfg.epochs,
                     "optimiser_steps": outcome.global_step, "lora_r": cfg.lora_r,
                     "lora_alpha": lora.alpha},
            seed=cfg.seed,
        )
        print_table(results, title=f"Shapes VQA, {len(test_set)} held-out examples")
        for line in delta_lines(results, task.primary_metric, seed=cfg.seed):
            print(f"{task.primary}: {line}")
        final = run.complete(base=before.metrics[task.primary], fine_tuned=after.metrics[task.primary])
    print(f"report: {final / 'report.md'}")
    return final


def main(argv: list[str] | None = None) -> int:
    """Parse flags (and an optional --config YAML) and run the demo."""
    from nmm_core.config import build_parser, config_from_parsed

    parser = build_parser(DemoConfig, prog="nmm-demo", description=__doc__)
    ns = parser.parse_args(argv)
    return run_cli(lambda: run_demo(config_from_parsed(DemoConfig, ns)))


if __name__ == "__main__":
    sys.exit(main())
