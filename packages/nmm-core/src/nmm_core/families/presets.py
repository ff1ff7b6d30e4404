"""Core's own presets: a tiny twin of every family, built locally (tests, demo, smoke runs)."""

from nmm_core.presets import ModelPreset

# What moves a random ~0.2M-parameter twin within minutes on a CPU (the demo's settings): a
# learning rate ten times a real model's, the projector trained, batches of 16. Domains add
# their epochs and data to it (their `TWIN_RECIPES`).
TWIN_RECIPE = {"train.lr": 3e-3, "train.batch_size": 16, "lora.train_projector": True,
               "generation.batch_size": 32}

PRESETS = (
    ModelPreset("tiny-qwen2-vl", "qwen2_vl", tiny=True, recipe=TWIN_RECIPE,
                description="Qwen2-VL twin: real classes and chat format, ~0.2M params"),
    ModelPreset("tiny-smolvlm", "idefics3", tiny=True, recipe=TWIN_RECIPE,
                description="SmolVLM/Idefics3 twin: real classes and chat format"),
    ModelPreset("tiny-llava-1.5", "llava", tiny=True, recipe=TWIN_RECIPE,
                description="LLaVA-1.5 twin: CLIP vision + Llama, llava-hf format"),
    ModelPreset("tiny-tinyllava", "tinyllava", tiny=True, recipe=TWIN_RECIPE,
                description="TinyLLaVA-Phi-2-SigLIP twin as Llava: SigLIP + Phi, phi format"),
    ModelPreset("tiny-moondream", "moondream", tiny=True, recipe=TWIN_RECIPE,
                description="Moondream2 (2024) twin: SigLIP-shaped ViT + 2x2 crops + MLP + Phi"),
    ModelPreset("tiny-opt-clip", "opt_clip", tiny=True,
                description="GILL's parts: tiny OPT causal LM + CLIP vision"),
)
