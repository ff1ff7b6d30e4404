"""Chart presets, announced to nmm-core through the `nmm.presets` entry point.

Revisions are commits confirmed to exist on the hub (seen as snapshot folders and pinned
revisions in several independent public projects), or, for moondream2, a dated release tag
its authors publish and pin in their own README. `smolvlm` (SmolVLM-Base) rests on one source:
a mirror of the hub's file page of its `README.md` at commit 37a98d4 ("add model card",
hf.xwall.us.kg./HuggingFaceTB/SmolVLM-Base/blob/37a98d4d50e3cdb1f43c5f8e93fd0cdfcc9d0b95/README.md);
that commit's file list (weights, chat template) was not seen.
"""

from nmm_core.presets import ModelPreset

# Charts carry small text: keep at least 256 and at most 1024 visual tokens (28x28 px each after
# the 2x2 merge); an 800x600 ChartQA chart stays at full resolution (~612 tokens).
_QWEN_PIXELS = {"min_pixels": 256 * 28 * 28, "max_pixels": 1024 * 28 * 28}

PRESETS = (
    ModelPreset(
        "qwen2-vl-2b", "qwen2_vl", hub_id="Qwen/Qwen2-VL-2B-Instruct",
        revision="895c3a49bc3fa70a340399125c650a463535e71c",
        description="Qwen2-VL-2B-Instruct, 256-1024 visual tokens per chart",
        processor_kwargs=_QWEN_PIXELS, max_new_tokens=16,
    ),
    ModelPreset(
        "smolvlm", "idefics3", hub_id="HuggingFaceTB/SmolVLM-Base",
        revision="37a98d4d50e3cdb1f43c5f8e93fd0cdfcc9d0b95",
        description="SmolVLM-Base (2B), the study's model: 384 px tiles, 81 tokens each",
        processor_kwargs={"size": {"longest_edge": 3 * 384}}, max_new_tokens=16,
    ),
    ModelPreset(
        "moondream2", "moondream", hub_id="vikhyatk/moondream2",
        # the last 2024 release of the SigLIP + MLP + Phi layout our implementation follows
        # (github vikhyat/moondream 211cc2f "release 2024-08-26"); converted to our form on first load
        revision="2024-08-26",
        description="Moondream2 2024-08-26 (1.87B): our implementation, weights converted on load",
        max_new_tokens=16,
    ),
    ModelPreset(
        "smolvlm-instruct", "idefics3", hub_id="HuggingFaceTB/SmolVLM-Instruct",
        revision="81cd9a775a4d644f2faf4e7becff4559b46b14c7",
        description="SmolVLM-Instruct (2B): 3x3 tiles of 384 px + a global view, 81 tokens each",
        # 1152 px on the long side instead of the default 1536: at most 10 tiles (810 tokens),
        # still enough for chart labels, and shorter sequences for LoRA on one GPU.
        processor_kwargs={"size": {"longest_edge": 3 * 384}}, max_new_tokens=16,
    ),
)

# The offline default's recipe per tiny twin, over core's (lr 3e-3, batch 16, projector trained):
# three epochs of the 1,200 synthetic questions lift relaxed accuracy from 0 (see the README).
TWIN_RECIPES = {
    "tiny-qwen2-vl": {"train.epochs": 3.0},
    "tiny-moondream": {"train.epochs": 3.0},
}
