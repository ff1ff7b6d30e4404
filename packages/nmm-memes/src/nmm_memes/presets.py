"""Meme presets, announced to nmm-core through the `nmm.presets` entry point: none yet, on purpose.

TinyLLaVA-Phi-2-SigLIP-3.1B is published in TinyLLaVA_Factory's own format (remote code, its
weight names), not as a Llava folder, so a hub preset could not load it; and no commit of
`tinyllava/TinyLLaVA-Phi-2-SigLIP-3.1B` could be confirmed from here to pin one. The flow is:
download the repo, `nmm-memes convert SRC OUT`, then `--model OUT` (a local folder whose
`nmm.json` names the `tinyllava` family). Tests use core's `tiny-tinyllava` twin.
"""

from nmm_core.presets import ModelPreset

PRESETS: tuple[ModelPreset, ...] = ()

# The offline default's recipe per twin: over core's for `tiny-tinyllava` (lr 3e-3, batch 16, projector
# trained); `tiny-gill` is memes' own twin (tiny OPT + CLIP + SD), so its recipe is all here.
TWIN_RECIPES = {
    "tiny-tinyllava": {"train.epochs": 3.0},
    "tiny-gill": {"train.epochs": 3.0, "train.lr": 3e-3, "train.batch_size": 16},
}
