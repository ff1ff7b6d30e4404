"""Core's own presets: a tiny twin of every family, built locally (tests, demo, smoke runs)."""

from nmm_core.presets import ModelPreset

PRESETS = (
    ModelPreset("tiny-qwen2-vl", "qwen2_vl", tiny=True,
                description="Qwen2-VL twin: real classes and chat format, ~0.2M params"),
    ModelPreset("tiny-smolvlm", "idefics3", tiny=True,
                description="SmolVLM/Idefics3 twin: real classes and chat format"),
    ModelPreset("tiny-llava-1.5", "llava", tiny=True,
                description="LLaVA-1.5 twin: CLIP vision + Llama, llava-hf format"),
    ModelPreset("tiny-tinyllava", "tinyllava", tiny=True,
                description="TinyLLaVA-Phi-2-SigLIP twin as Llava: SigLIP + Phi, phi format"),
    ModelPreset("tiny-moondream", "moondream", tiny=True,
                description="Moondream2 (2024) twin: SigLIP-shaped ViT + 2x2 crops + MLP + Phi"),
    ModelPreset("tiny-opt-clip", "opt_clip", tiny=True,
                description="GILL's parts: tiny OPT causal LM + CLIP vision"),
)
