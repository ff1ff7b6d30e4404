"""`nmm-memes`: meme understanding declared as a domain; core's kit makes the command line.

Its own verbs: `convert` (TinyLLaVA_Factory checkpoints), `compete`, GILL's `generate` and
`retrieve`; `train`, `eval`, `compare`, `predict` and `data inspect` take memes' settings.
"""

from __future__ import annotations

import sys

from nmm_core.domain import Domain, SyntheticSet, domain_main, run_domain_train
from nmm_memes.commands import (
    InspectConfig,
    MemeEvalConfig,
    MemeTrainConfig,
    PredictConfig,
    run_inspect,
    run_meme_eval,
    run_predict,
)
from nmm_memes.compete import CompeteConfig, run_compete
from nmm_memes.convert import ConvertConfig, run_convert
from nmm_memes.data import MemeSource, SyntheticSettings, synthesize, synthetic_folder
from nmm_memes.gill.generate import GenerateConfig, RetrieveConfig, run_generate, run_retrieve
from nmm_memes.presets import PRESETS, TWIN_RECIPES
from nmm_memes.task import meme_task

MEMES = Domain(
    name="nmm-memes",
    description="Meme understanding (MemeCap, MemeCraft) with TinyLLaVA and GILL, and a base-vs-fine-tuned "
                "competition.",
    task=meme_task(),
    model="tiny-tinyllava",
    presets=PRESETS,
    twin_recipes=TWIN_RECIPES,
    synthetic=SyntheticSet(SyntheticSettings, write=synthesize, cached=synthetic_folder),
    source=MemeSource,
    verbs={
        "data inspect": (InspectConfig, run_inspect,
                         "counts per split and every skipped record (missing image, filtered caption, bad field)"),
        "convert": (ConvertConfig, lambda cfg: run_convert(cfg, cfg.src, cfg.out),
                    "TinyLLaVA_Factory checkpoint -> Llava folder usable as --model OUT"),
        "train": (MemeTrainConfig, lambda cfg: print(run_domain_train(MEMES, cfg)),
                  "LoRA fine-tuning: image + title -> meaning (TinyLLaVA); --model gill|tiny-gill: GILL"),
        "eval": (MemeEvalConfig, lambda cfg: print(run_meme_eval(MEMES, cfg)),
                 "captions + ROUGE-1/2/L and BLEU against all references"),
        "compare": (MemeEvalConfig, lambda cfg: print(run_meme_eval(MEMES, cfg, compare=True)),
                    "base vs merged fine-tuned adapter on the same memes (report, pairs.jsonl)"),
        "compete": (CompeteConfig, lambda cfg: print(run_compete(MEMES, cfg)),
                    "base vs fine-tuned on the same memes: blind pairs.jsonl, win rate with CI, ratings"),
        "predict": (PredictConfig, lambda cfg: run_predict(MEMES, cfg),
                    "what one meme means, from its image and title"),
        "generate": (GenerateConfig, lambda cfg: run_generate(cfg, cfg.caption),
                     "GILL: an image for a caption, saved as PNG"),
        "retrieve": (RetrieveConfig, lambda cfg: run_retrieve(cfg, cfg.caption, list(cfg.images)),
                     "GILL: rank candidate images for a caption"),
    },
)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    return domain_main(MEMES, argv)


if __name__ == "__main__":
    sys.exit(main())
