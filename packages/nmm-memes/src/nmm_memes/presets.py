"""Meme presets, announced to nmm-core through the `nmm.presets` entry point: none yet, on purpose.

TinyLLaVA-Phi-2-SigLIP-3.1B is published in TinyLLaVA_Factory's own format (remote code, its
weight names), not as a Llava folder, so a hub preset could not load it; and no commit of
`tinyllava/TinyLLaVA-Phi-2-SigLIP-3.1B` could be confirmed from here to pin one. The flow is:
download the repo, `nmm-memes convert SRC OUT`, then `--model OUT` (a local folder whose
`nmm.json` names the `tinyllava` family). Tests use core's `tiny-tinyllava` twin.

GILL's presets name its family, whose trainee `train` runs: `gill` (its parts are the `--gill-*`
settings: OPT-6.7B, CLIP ViT-L/14, pinned SD1.5) and `tiny-gill` (core's tiny OPT + CLIP twin
and a tiny SD twin).
"""

from nmm_core.families import register_family
from nmm_core.presets import ModelPreset
from nmm_memes.gill import GILL_FAMILY

register_family(GILL_FAMILY)  # before its presets name it

PRESETS: tuple[ModelPreset, ...] = (
    ModelPreset("gill", GILL_FAMILY.name, description="GILL: OPT-6.7B + CLIP ViT-L/14 + SD1.5 (--gill-* "
                "settings name and pin the parts)", max_new_tokens=48),
    ModelPreset("tiny-gill", GILL_FAMILY.name, tiny=True, description="GILL's tiny twin (tiny OPT, CLIP, SD)",
                recipe={"train.epochs": 3.0, "train.lr": 3e-3, "train.batch_size": 16}),
)

# The offline default's recipe over core's for `tiny-tinyllava` (lr 3e-3, batch 16, projector trained).
TWIN_RECIPES = {"tiny-tinyllava": {"train.epochs": 3.0}}
