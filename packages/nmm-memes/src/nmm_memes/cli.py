"""`nmm-memes`: meme understanding declared as a domain; core's kit makes the command line.

Its own verbs: `convert` (TinyLLaVA_Factory checkpoints), GILL's `generate` and `retrieve`; the
kit's `compete` judges by ROUGE-L (the task's primary metric); the kit's `train` and `predict` also
take GILL's `--gill-*` settings, `predict` with a GILL preset gives the image's caption, and
`eval`/`compare`/`compete` refuse GILL.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from nmm_core.domain import Domain, SyntheticSet, domain_main, run_domain_compete, run_domain_eval, run_domain_predict
from nmm_core.families.tinyllava_convert import CONVERT_HELP, ConvertConfig, run_convert
from nmm_memes.data import MemeDataSettings, MemeSource, SyntheticSettings, synthesize
from nmm_memes.gill import is_gill, refuse_gill
from nmm_memes.gill.generate import GenerateConfig, RetrieveConfig, run_caption, run_generate, run_retrieve
from nmm_memes.gill.settings import GillSettings
from nmm_memes.presets import TWIN_RECIPES
from nmm_memes.task import meme_task

_DECLARED = Domain(
    name="nmm-memes",
    description="Meme understanding (MemeCap, MemeCraft) with TinyLLaVA and GILL, and a base-vs-fine-tuned "
                "competition.",
    task=meme_task(),
    model="tiny-tinyllava",
    families=("tinyllava", "gill"),  # TinyLLaVA (converted folders, its twin), GILL and its twin
    twin_recipes=TWIN_RECIPES,
    data_settings=MemeDataSettings,
    generation={"max_new_tokens": 48},  # a meme caption is one sentence
    extra_settings={"train": {"gill": GillSettings}, "predict": {"gill": GillSettings}},
    splits=("train", "validation", "test"),
    predict_inputs={"image": ("IMAGE", "meme image file", None),
                    "question": ("TITLE", "the post title, quoted (GILL does not use it)", "?")},
    synthetic=SyntheticSet(SyntheticSettings, write=synthesize),  # cached by its settings' key()
    source=MemeSource,
)


def _predict(cfg) -> str:
    """What one meme means (the kit's predict); a GILL preset: the image's caption."""
    return run_caption(cfg) if is_gill(cfg.model.model) else run_domain_predict(MEMES, cfg)


MEMES = replace(_DECLARED, verbs={
    "data inspect": (None, None, "counts per split and every skipped record (missing image, filtered caption, "
                                 "bad field)"),
    "convert": (ConvertConfig, lambda cfg: run_convert(cfg, cli="nmm-memes"), CONVERT_HELP),  # core's converter
    "train": (None, None, "LoRA fine-tuning: image + title -> meaning (TinyLLaVA); --model gill|tiny-gill: GILL"),
    "eval": (None, lambda cfg: print(run_domain_eval(MEMES, refuse_gill(cfg, "eval"))),
             "captions + ROUGE-1/2/L and BLEU against all references"),
    "compare": (None, lambda cfg: print(run_domain_eval(MEMES, refuse_gill(cfg, "compare"), compare=True)),
                "base vs merged fine-tuned adapter on the same memes (report, pairs.jsonl)"),
    "compete": (None, lambda cfg: print(run_domain_compete(MEMES, refuse_gill(cfg, "compete"))),
                "base vs fine-tuned on the same memes: blind pairs.jsonl, win rate with CI, ratings"),
    "predict": (None, _predict, "what one meme means, from its image and title"),
    "generate": (GenerateConfig, lambda cfg: run_generate(cfg, cfg.caption),
                 "GILL: an image for a caption, saved as PNG"),
    "retrieve": (RetrieveConfig, lambda cfg: run_retrieve(cfg, cfg.caption, list(cfg.images)),
                 "GILL: rank candidate images for a caption"),
})


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    return domain_main(MEMES, argv)


if __name__ == "__main__":
    sys.exit(main())
