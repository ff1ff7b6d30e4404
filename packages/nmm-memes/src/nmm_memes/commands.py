"""The meme commands as functions of one settings dataclass each, built on `nmm_core.workflows`."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from nmm_core.errors import ConfigError
from nmm_core.evaluate import GenerationSettings
from nmm_core.seeds import resolve_seeds
from nmm_core.workflows import EvalConfig, ModelSettings, TrainConfig, check_model_source, predict_one
from nmm_memes.data import (
    MemeDataSettings,
    SyntheticSettings,
    load_memes,
    load_usable,
    resolve_data,
    synthesize,
    synthetic_folder,
)
from nmm_memes.gill import is_gill
from nmm_memes.gill.settings import GillSettings
from nmm_memes.presets import TWIN_RECIPES
from nmm_memes.task import meme_task


def _model() -> ModelSettings:
    return ModelSettings(model="tiny-tinyllava")


def _generation() -> GenerationSettings:
    return GenerationSettings(max_new_tokens=48)  # a meme caption is one sentence


@dataclass
class MemeTrainConfig(TrainConfig):
    """`train`: LoRA fine-tuning for meme meaning (TinyLLaVA) or captions + images (--model gill|tiny-gill)."""

    data: MemeDataSettings = field(default_factory=MemeDataSettings)
    model: ModelSettings = field(default_factory=_model)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    gill: GillSettings = field(default_factory=GillSettings)
    twin_recipes: ClassVar = TWIN_RECIPES


@dataclass
class MemeEvalConfig(EvalConfig):
    """`eval` / `compete`: greedy captions scored with ROUGE-L (primary), ROUGE-1/2 and BLEU."""

    data: MemeDataSettings = field(default_factory=MemeDataSettings)
    model: ModelSettings = field(default_factory=_model)
    generation: GenerationSettings = field(default_factory=_generation)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    twin_recipes: ClassVar = TWIN_RECIPES


@dataclass
class SynthesizeConfig:
    """`data synthesize`: write the synthetic meme set in MemeCap's shape."""

    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    out: str = field(default="", metadata={"help": "folder to write (empty: the shared cache)"})
    progress: bool = True


@dataclass
class InspectConfig:
    """`data inspect`: counts per split, every skipped record named, a sample line per split."""

    data: MemeDataSettings = field(default_factory=MemeDataSettings)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    splits: tuple[str, ...] = field(default=("train", "validation", "test"), metadata={"help": "splits to count"})
    problems: str | None = field(default=None, metadata={"help": "write every skipped record to this JSONL"})
    listed: int = field(default=10, metadata={"help": "skipped records printed per split"})


@dataclass
class PredictConfig:
    """`predict`: what one meme means, from its image and post title (GILL: the image's caption)."""

    model: ModelSettings = field(default_factory=_model)
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder (merged)"})
    max_new_tokens: int = 48
    gill: GillSettings = field(default_factory=GillSettings)


def run_synthesize(cfg: SynthesizeConfig) -> Path:
    """Generate the set; print where it is and what it holds."""
    from nmm_core.files import synthesized

    folder = synthesized(cfg.out, lambda tmp: synthesize(cfg.synthetic, tmp, progress=cfg.progress),
                         lambda: synthetic_folder(cfg.synthetic, progress=cfg.progress), marker="synthetic.json")
    print(f"synthetic meme set (MemeCap shape): {folder}")
    print(f"  memes-trainval.json: {cfg.synthetic.trainval_size} records; memes-test.json: "
          f"{cfg.synthetic.test_size} records; images/: {cfg.synthetic.trainval_size + cfg.synthetic.test_size} PNGs")
    print(f"  use it as: --data-source {folder} --data-images {folder / 'images'}")
    return folder


def run_inspect(cfg: InspectConfig) -> dict[str, dict]:
    """Per split: kept/total, skips by kind with the first few named, references per record."""
    from nmm_core.runs import atomic_write_text

    data = resolve_data(cfg.data, cfg.synthetic)
    out, problem_lines = {}, []
    for split in cfg.splits:
        report = load_memes(data, split)
        kinds = Counter(p.kind or p.field for p in report.problems)
        refs = Counter(len(ex.answers) for ex in report.kept)
        out[split] = {"total": report.total, "kept": len(report.kept), "skipped": dict(kinds)}
        print(f"[{split}] {report.summary()}")
        for problem in report.problems[: cfg.listed]:
            print(f"  skipped {problem}")
        if report.skipped > cfg.listed:
            print(f"  ... and {report.skipped - cfg.listed} more (--problems FILE lists all)")
        if refs:
            print("  references per record: " + ", ".join(f"{k}: {v}" for k, v in sorted(refs.items())))
        if report.kept:
            ex = report.kept[0]
            print(f"  e.g. {ex.id}: title {ex.prompt!r} -> {ex.answers[0]!r}")
        problem_lines += [json.dumps({"split": split, "id": p.id, "field": p.field, "why": p.why},
                                     ensure_ascii=False) + "\n" for p in report.problems]
    if cfg.problems:
        atomic_write_text(cfg.problems, "".join(problem_lines))
    return out


def refuse_gill(model: ModelSettings, command: str) -> None:
    """`eval`/`compete` score meme meanings (the TinyLLaVA path); GILL has its own commands."""
    if is_gill(model.model):
        raise ConfigError(f"{command} scores meme meanings with a chat VLM (e.g. TinyLLaVA); for GILL use "
                          "predict (caption), generate (image) or retrieve")


def run_meme_train(cfg: MemeTrainConfig) -> Path:
    """Core's `run_train` with the meme task on MemeCap/MemeCraft/synthetic examples (GILL: its own model)."""
    from dataclasses import replace

    from nmm_core.workflows import run_train

    resolve_seeds(cfg)  # the synthetic set's seed, when not given, is the run seed
    if is_gill(cfg.model.model):
        from nmm_memes.gill.train import run_gill_train

        return run_gill_train(replace(cfg, data=resolve_data(cfg.data, cfg.synthetic)))
    check_model_source(cfg.model)
    cfg = replace(cfg, data=resolve_data(cfg.data, cfg.synthetic))
    return run_train(cfg, meme_task(), load=load_usable)


def run_meme_eval(cfg: MemeEvalConfig) -> Path:
    """Core's `run_eval`: predictions.jsonl with per-example ROUGE, report with ROUGE and BLEU."""
    from dataclasses import replace

    from nmm_core.workflows import run_eval

    refuse_gill(cfg.model, "eval")
    check_model_source(cfg.model)
    resolve_seeds(cfg)  # the synthetic set's seed, when not given, is the run seed
    cfg = replace(cfg, data=resolve_data(cfg.data, cfg.synthetic))
    return run_eval(cfg, meme_task(), load=load_usable)


def run_predict(cfg: PredictConfig, image: str, title: str) -> str:
    """Load the model (adapter merged), state what one meme means, print it (GILL: the caption)."""
    if is_gill(cfg.model.model):
        from nmm_memes.gill.generate import gill_caption

        caption = gill_caption(cfg.model, cfg.gill, cfg.adapter, image, max_new_tokens=cfg.max_new_tokens)
        print(caption)
        return caption
    raw, seconds = predict_one(cfg.model, cfg.adapter, image, title, task=meme_task(),
                               max_new_tokens=cfg.max_new_tokens)
    answer = meme_task().normalise(raw)
    print(answer)
    print(f"({seconds:.3f} s to generate)", file=sys.stderr)
    return answer
