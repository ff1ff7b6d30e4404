"""`vqa train|eval|compare|predict`: core's workflows with the PathVQA task and data.

The default data is the generated PathVQA-like set and the default model core's tiny LLaVA-1.5
twin, so every command runs offline; a GPU user passes `--model llava-1.5-7b` and
`--data-source flaviagiammarino/path-vqa --data-revision <commit>`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from nmm_core.evaluate import GenerationSettings
from nmm_core.records import Example, ImageLimits, ValidationReport, validate, within_limits
from nmm_core.seeds import resolve_seeds
from nmm_core.train import TrainSettings
from nmm_core.workflows import DataSettings, EvalConfig, ModelSettings, TrainConfig, model_image_limits
from nmm_pathology.data import SYNTHETIC, SyntheticSettings, load_pathvqa, synthetic_folder
from nmm_pathology.presets import TWIN_RECIPES
from nmm_pathology.task import pathvqa_task

DEFAULT_MODEL = "tiny-llava-1.5"


def _data() -> DataSettings:
    return DataSettings(source=SYNTHETIC, val_split="validation")


def _model() -> ModelSettings:
    return ModelSettings(model=DEFAULT_MODEL)


@dataclass
class VqaTrainConfig(TrainConfig):
    """`vqa train`: LoRA/QLoRA fine-tuning on PathVQA (default: the generated set, tiny twin)."""

    data: DataSettings = field(default_factory=_data)
    model: ModelSettings = field(default_factory=_model)
    train: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=3.0))  # the study's 3 epochs
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    twin_recipes: ClassVar = TWIN_RECIPES


@dataclass
class VqaEvalConfig(EvalConfig):
    """`vqa eval` / `vqa compare`: scores strict and normalised, plus the clinician review CSV."""

    data: DataSettings = field(default_factory=_data)
    model: ModelSettings = field(default_factory=_model)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    twin_recipes: ClassVar = TWIN_RECIPES


@dataclass
class VqaPredictConfig:
    """`vqa predict`: one image and one question; prints the raw reply and the short answer."""

    image: str = field(default="", metadata={"help": "image file"})
    question: str = field(default="", metadata={"help": "the question, e.g. 'is there necrosis?'"})
    model: ModelSettings = field(default_factory=_model)
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder"})
    generation: GenerationSettings = field(default_factory=lambda: GenerationSettings(max_new_tokens=32))


def resolve_data(data: DataSettings, synthetic: SyntheticSettings) -> DataSettings:
    """`synthetic` becomes the generated set's folder (built once); other sources stay as given."""
    if data.source != SYNTHETIC:
        return data
    return replace(data, source=str(synthetic_folder(synthetic)))


def load_checked(data: DataSettings, split: str,
                 limits: ImageLimits | None = None) -> tuple[list[Example], ValidationReport]:
    """PathVQA records of one split, validated (skip-and-count or stop; images the model's processor
    refuses, by `limits`, too); (kept, report)."""
    from nmm_core.errors import ConfigError

    if not data.source:
        raise ConfigError(f"data.source is empty: give --data-source (a hub id, a local path or '{SYNTHETIC}')")
    examples = load_pathvqa(data.source, split=split, revision=data.revision, columns=data.columns(),
                            image_root=data.image_root, limit=data.limit)
    report = within_limits(validate(examples, policy=data.on_bad_record), limits, data.on_bad_record)
    if not report.kept:
        from nmm_core.errors import DataError

        raise DataError(f"split {split!r} of {data.source}: no usable records ({report.summary()})")
    kinds = sum(ex.meta["kind"] == "closed" for ex in report.kept)
    print(f"[{split}] {report.summary()}; {kinds} closed (yes/no), {len(report.kept) - kinds} open",
          file=sys.stderr)
    return report.kept, report


def _write_problems(run: Path, split: str, report: ValidationReport) -> None:
    if report.problems:
        report.write_problems(run / f"problems-{split}.jsonl")


def vqa_train(cfg: VqaTrainConfig) -> Path:
    """Fine-tune with core's trainer; returns the completed run folder."""
    from nmm_core.workflows import run_train

    resolve_seeds(cfg)  # the synthetic set's seed, when not given, is the run seed
    data = resolve_data(cfg.data, cfg.synthetic)
    examples, report = load_checked(data, data.split, model_image_limits(cfg.model))
    return run_train(replace(cfg, data=data), pathvqa_task(), examples=examples,
                     finish=lambda run: _write_problems(run, data.split, report),
                     load=lambda d, split: load_checked(d, split, model_image_limits(cfg.model))[1])


def _evaluate(cfg: VqaEvalConfig, workflow) -> Path:
    from nmm_core.report import record_counts
    from nmm_pathology.review import write_reviews

    resolve_seeds(cfg)  # the synthetic set's seed, when not given, is the run seed
    data = resolve_data(cfg.data, cfg.synthetic)
    examples, report = load_checked(data, data.eval_split, model_image_limits(cfg.model))
    task = pathvqa_task()

    def finish(run: Path) -> None:
        # before the run is marked complete: a finished run always has its review files
        _write_problems(run, data.eval_split, report)
        counts = write_reviews(run, examples, task)
        for name, c in counts.items():
            print(f"{name}.csv: {c['disagreements']} of {c['rows']} answers to review "
                  f"({c['rescued_by_normalisation']} right only after normalisation)", file=sys.stderr)

    listed = f"problems-{data.eval_split}.jsonl" if report.problems else None
    return workflow(replace(cfg, data=data), task, examples=examples, finish=finish,
                    records=record_counts(report, listed))


def vqa_eval(cfg: VqaEvalConfig) -> Path:
    """Evaluate one model (optionally with an adapter); report + predictions + review CSV."""
    from nmm_core.workflows import run_eval

    return _evaluate(cfg, run_eval)


def vqa_compare(cfg: VqaEvalConfig) -> Path:
    """Base vs base + adapter on the same questions; report, pairs and one review CSV per model."""
    from nmm_core.workflows import run_compare

    return _evaluate(cfg, run_compare)


def vqa_predict(cfg: VqaPredictConfig) -> dict[str, str]:
    """Answer one question about one image; prints and returns {question, raw, answer}."""
    from nmm_core.errors import ConfigError
    from nmm_core.workflows import predict_one

    if not cfg.image or not cfg.question.strip():
        raise ConfigError("vqa predict needs IMAGE and QUESTION (or --image FILE and --question TEXT)")
    task = pathvqa_task()
    raw, _ = predict_one(cfg.model, cfg.adapter, cfg.image, cfg.question, task=task,
                         max_new_tokens=cfg.generation.max_new_tokens)
    out = {"question": cfg.question.strip(), "raw": raw, "answer": task.short_answer(raw)}
    print(json.dumps(out, ensure_ascii=False))
    return out
