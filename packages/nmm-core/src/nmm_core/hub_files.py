"""What loading a hub model needs: whether the local Hugging Face cache holds its files, and
whether the hub answers for it, both found out before anything heavy starts."""

from __future__ import annotations

import json
from pathlib import Path

# (one file, an index of shards): the weight layouts from_pretrained (and our converters) read, best first
_WEIGHTS = (("model.safetensors", "model.safetensors.index.json"),
            ("pytorch_model.bin", "pytorch_model.bin.index.json"))


def missing_from_cache(hub_id: str, revision: str | None, *, weights: bool = True,
                       config: str = "config.json") -> str | None:
    """The first file loading `hub_id` at `revision` needs that the local Hugging Face cache lacks
    (its config, its tokenizer's settings, every weight shard unless `weights` is False: the processor
    alone); None: all there. Another `config` (a diffusers pipeline's `model_index.json`): that file
    alone. Never asks the hub."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str):
        return try_to_load_from_cache(hub_id, filename, revision=revision)

    if not isinstance(cached(config), str):
        return config
    if config != "config.json":
        return None  # a pipeline's parts sit in subfolders its index names
    if cached("tokenizer_config.json") is None:  # neither cached nor known (from the hub) not to exist
        return "tokenizer_config.json"
    if not weights:
        return None
    for single, index in _WEIGHTS:
        if isinstance(cached(single), str):
            return None
        index_file = cached(index)
        if isinstance(index_file, str):
            try:
                shards = sorted(set(json.loads(Path(index_file).read_text(encoding="utf-8"))["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError):
                return f"readable {index}"  # from_pretrained could not read it either
            return next((shard for shard in shards if not isinstance(cached(shard), str)), None)
    return "weights"


def hub_problem(hub_id: str, revision: str | None, config: str = "config.json") -> str | None:
    """Why the hub cannot serve `hub_id` at `revision` now and what to do (None: it answers), from one
    request for its `config` file without the hub library's retries (with no network they back off for minutes)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import FileMetadataError, HfHubHTTPError, HTTPError, OfflineModeIsEnabled

    try:
        get_hf_file_metadata(hf_hub_url(hub_id, config, revision=revision), retry_on_errors=False)
    except HfHubHTTPError as exc:  # the hub answered: no such repository, revision or config; gated; down
        return (f"the hub refused it ({_first_line(exc)}): check the id and its revision "
                "(a gated model needs `hf auth login`), or pass a local folder")
    except (HTTPError, OfflineModeIsEnabled, FileMetadataError) as exc:  # no connection, a timeout, a proxy
        download = f"hf download {hub_id}" + (f" --revision {revision}" if revision else "")
        return (f"the hub could not be reached ({_first_line(exc)}): download it first where the hub is "
                f"reachable (`{download}`), then run with HF_HUB_OFFLINE=1; or pass a local folder")
    return None


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    # the hub's "404 Client Error." says why on its next line ("Repository Not Found for url: ...")
    return " ".join(lines[:2]) if lines[0].endswith("Error.") else lines[0]
