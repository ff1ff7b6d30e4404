"""What memes adds to the kit's verbs: its settings (meme data, GILL's parts), `data inspect`, `predict`."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from nmm_core.domain import Domain, run_domain_eval, run_domain_predict
from nmm_core.errors import ConfigError
from nmm_core.evaluate import GenerationSettings
from nmm_core.workflows import EvalConfig, ModelSettings, TrainConfig
from nmm_memes.data import MemeDataSettings, MemeSource, SyntheticSettings, synthetic_folder
from nmm_memes.gill import is_gill
from nmm_memes.gill.settings import GillSettings
from nmm_memes.presets import TWIN_RECIPES


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
    """`eval` / `compare` / `compete`: greedy captions scored with ROUGE-L (primary), ROUGE-1/2 and BLEU."""

    data: MemeDataSettings = field(default_factory=MemeDataSettings)
    model: ModelSettings = field(default_factory=_model)
    generation: GenerationSettings = field(default_factory=_generation)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    twin_recipes: ClassVar = TWIN_RECIPES


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

    image: str = field(default="", metadata={"help": "meme image file"})
    question: str = field(default="", metadata={"help": "the post title (GILL does not use it)"})
    model: ModelSettings = field(default_factory=_model)
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder (merged)"})
    max_new_tokens: int = 48
    gill: GillSettings = field(default_factory=GillSettings)
    positional: ClassVar = {"image": ("IMAGE", "meme image file", None),
                            "question": ("TITLE", "the post title, quoted (GILL does not use it)", "?")}


def run_inspect(cfg: InspectConfig) -> dict[str, dict]:
    """Per split: kept/total, skips by kind with the first few named, references per record."""
    from functools import partial

    from nmm_core.files import atomic_write_text

    source = MemeSource(cfg.data, partial(synthetic_folder, cfg.synthetic)).resolve()
    out, problem_lines = {}, []
    for split in cfg.splits:
        report = source.load(split)
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
    """`eval`/`compare`/`compete` score meme meanings (the TinyLLaVA path); GILL has its own commands."""
    if is_gill(model.model):
        raise ConfigError(f"{command} scores meme meanings with a chat VLM (e.g. TinyLLaVA); for GILL use "
                          "predict (caption), generate (image) or retrieve")


def run_meme_eval(memes: Domain, cfg: MemeEvalConfig, *, compare: bool = False) -> Path:
    """The kit's `eval` (or `compare`) on the memes: predictions with per-example ROUGE, ROUGE and BLEU."""
    refuse_gill(cfg.model, "compare" if compare else "eval")
    return run_domain_eval(memes, cfg, compare=compare)


def run_predict(memes: Domain, cfg: PredictConfig) -> str:
    """State what one meme means (adapter merged) and print it; a GILL preset: the image's caption."""
    if is_gill(cfg.model.model):
        from nmm_memes.gill.generate import gill_caption

        caption = gill_caption(cfg.model, cfg.gill, cfg.adapter, cfg.image, max_new_tokens=cfg.max_new_tokens)
        print(caption)
        return caption
    return run_domain_predict(memes, cfg)
