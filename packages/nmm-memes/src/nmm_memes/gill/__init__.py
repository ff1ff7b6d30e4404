"""GILL (Koh et al. 2023) on our parts: a frozen OPT with LoRA reading a CLIP visual prefix,
learned [IMG] tokens, and a mapper from their hidden states to Stable Diffusion's text
conditioning, for captioning, image generation and retrieval.

Modules: `settings` (what to load, sizes; no torch), `mapper` (GILLMapper), `model`
(GillModel: forward with its own loss, caption/condition/retrieval), `parts` (loading OPT,
CLIP, SD and the twin), `collate` (training batches), `persist` (the non-LoRA parts beside the
adapter), `convert` (the published checkpoint's names), `train`, `generate` (the commands).
"""

GILL_MODELS = ("gill", "tiny-gill")


def is_gill(model: str) -> bool:
    """Whether a `--model` value names GILL (real parts, or the tiny twin)."""
    return model in GILL_MODELS
