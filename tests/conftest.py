"""Test-wide settings: nothing may reach a model hub; tiny twins are cached per session."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports huggingface_hub / datasets: they read these at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
_cache = tempfile.mkdtemp(prefix="nmm-test-cache-")
os.environ.setdefault("NMM_CACHE", os.path.join(_cache, "nmm"))
os.environ.setdefault("HF_MODULES_CACHE", os.path.join(_cache, "hf-modules"))
os.environ.setdefault("HF_HOME", os.path.join(_cache, "hf-home"))

import pytest  # noqa: E402

TINY_PRESETS = ("tiny-qwen2-vl", "tiny-smolvlm", "tiny-llava-1.5", "tiny-tinyllava")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """Two cores in CI: one intra-op pool, no oversubscription."""
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def generate_caps(monkeypatch) -> list:
    """The `max_new_tokens` of every `generate` call a test makes (the real generate still runs)."""
    from transformers.generation.utils import GenerationMixin

    caps: list = []
    real = GenerationMixin.generate

    def spy(self, *args, **kwargs):
        caps.append(kwargs.get("max_new_tokens"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", spy)
    return caps
