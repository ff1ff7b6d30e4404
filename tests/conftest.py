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


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache (and nmm cache) under tmp_path; `hf_cache(hub_id, revision, *files)`
    puts files into it the way a download would (refs/<tag> -> snapshots/<commit>/)."""
    import hashlib
    import re

    from huggingface_hub import constants

    hub = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HOME", str(hub.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))  # read once, at import
    monkeypatch.setenv("NMM_CACHE", str(tmp_path / "nmm"))

    def put(hub_id: str, revision: str, *files: str):
        repo = hub / f"models--{hub_id.replace('/', '--')}"
        commit = revision if re.fullmatch(r"[0-9a-f]{40}", revision) else hashlib.sha1(revision.encode()).hexdigest()
        if commit != revision:
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / revision).write_text(commit)
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        for name in files:
            (snapshot / name).write_text("{}")
        return snapshot

    return put


@pytest.fixture
def no_network(monkeypatch) -> list:
    """HF_HUB_OFFLINE unset, and every request huggingface_hub makes fails to connect, as with no
    network (nothing leaves the machine): the list of the URLs it tried."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    tried: list = []

    def refuse(request):
        tried.append(str(request.url))
        raise httpx2.ConnectError("[Errno 101] Network is unreachable", request=request)

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(_http, "_GLOBAL_CLIENT", None)  # the shared client is made anew, from this factory
    monkeypatch.setattr(_http, "_GLOBAL_CLIENT_FACTORY", lambda: httpx2.Client(transport=httpx2.MockTransport(refuse)))
    return tried
