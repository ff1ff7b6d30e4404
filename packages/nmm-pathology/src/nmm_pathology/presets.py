"""LLaVA-1.5 presets for PathVQA (the study's 7B, and 13B as an option), QLoRA by default.

Revisions are llava-hf commits read from the hub's commit history: 7B at a commit after
"update processor kwargs" (chat_template.json present), 13B at "Update chat_template.json to
incorporate `generation` tag". Earlier commits of both repos have no chat template, which
`apply_chat_template` needs. Tests use core's `tiny-llava-1.5` twin of the same family.
"""

from __future__ import annotations

from nmm_core.presets import ModelPreset

PRESETS = (
    ModelPreset(
        "llava-1.5-7b", "llava", hub_id="llava-hf/llava-1.5-7b-hf",
        revision="95f2cf316249a98c11183f471ab76065c3e5f494",
        quantization="4bit", max_new_tokens=32,
        description="LLaVA-1.5-7B (CLIP ViT-L/336 + Vicuna-7B), the study's model; QLoRA nf4",
    ),
    ModelPreset(
        "llava-1.5-13b", "llava", hub_id="llava-hf/llava-1.5-13b-hf",
        revision="b00005a1f5655024967655d73693652e397c24f8",
        quantization="4bit", max_new_tokens=32,
        description="LLaVA-1.5-13B (CLIP ViT-L/336 + Vicuna-13B); QLoRA nf4",
    ),
)

# The offline default's recipe for core's twin, over core's (lr 3e-3, batch 16, projector trained).
TWIN_RECIPES = {
    "tiny-llava-1.5": {"train.epochs": 2.0, "synthetic.train_size": 1200, "synthetic.test_size": 200},
}
