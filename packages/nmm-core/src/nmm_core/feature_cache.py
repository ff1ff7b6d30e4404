"""Frozen vision-tower features computed once per image and reused on every later epoch.

With LoRA on the language model only, the vision tower and projector are frozen and an image's
features never change, yet a plain step recomputes them every epoch (31% of a Qwen2-VL-2B step).
The cache wraps the model's own `get_image_features`: a batch whose images are all cached skips
the tower; any miss runs the real method and stores each example's features by example id. An
example may bring several images or tiles (SmolVLM's crops): its features are all its tiles'.

Also the training side of it: the cache for a training set, batches that carry example ids, and
`release_speedups`, which undoes the speed switches once training ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nmm_core.errors import ConfigError

if TYPE_CHECKING:
    from nmm_core.records import Example

# training's own logger, where the cache has always reported (log filters and tests watch it)
log = logging.getLogger("nmm_core.train")
EXAMPLE_IDS = "example_ids"


def _feature_owner(model):
    """The innermost module whose own forward calls `get_image_features`."""
    owner = None
    for module in model.modules():
        if "get_image_features" in type(module).__dict__:
            owner = module  # modules() goes outside-in: the last hit is the inner base model
    if owner is None:
        raise ConfigError(f"{type(model).__name__} has no get_image_features: the vision-feature cache "
                          "does not apply to it; turn cache_vision_features off")
    return owner


def _check_frozen(owner) -> None:
    trainable = [name for name, p in owner.named_parameters() if p.requires_grad
                 and not name.startswith(("language_model.", "text_model."))]
    if trainable:
        raise ConfigError(f"the vision-feature cache needs a frozen vision tower and projector, but "
                          f"{trainable[0]} trains (train_projector/train_vision): turn one of them off")


class VisionFeatureCache:
    """Per-example image features, filled on first sight and served while `keys` is set."""

    def __init__(self, model, *, device=None, explicit: bool = True, max_gib: float = 4.0) -> None:
        self.owner = _feature_owner(model)
        _check_frozen(self.owner)
        self.original = self.owner.get_image_features
        self.store: dict[str, Any] = {}
        self.device = device
        self.keys: Sequence[str] | None = None
        self.hits = self.misses = 0
        self.explicit = explicit  # asked for by name: a model it cannot serve is an error, not a skip
        # Beyond the budget new features are not stored (those batches run the tower as before),
        # so a large training set cannot run the card out of memory.
        self.budget = int(max_gib * 2**30)
        self.stored_bytes = 0
        self.disabled = False
        # what the model's method returns (output object, sequence or tensor) and how per-example
        # features are put back together (tuple, stack or cat): fixed by the first batch stored
        self._layout: tuple[str, str] | None = None
        self.owner.get_image_features = self._features

    def close(self) -> None:
        """Put the model's own method back and drop the stored features."""
        self.owner.__dict__.pop("get_image_features", None)
        self.store.clear()
        self.stored_bytes = 0

    def _features(self, pixel_values, *args, **kwargs):
        keys = self.keys
        if keys is None or self.disabled or not self.owner.training:
            return self.original(pixel_values, *args, **kwargs)
        if all(k in self.store for k in keys):
            self.hits += len(keys)
            return self._output([self.store[k].to(pixel_values.device) for k in keys])
        out = self.original(pixel_values, *args, **kwargs)
        try:
            per_image = self._split(out, len(keys), pixel_values)
        except ConfigError:
            if self.explicit:
                raise
            self.disabled = True  # features it cannot split per example: its tower runs every step
            self.store.clear()
            self.stored_bytes = 0
            return out
        for key, feats in zip(keys, per_image, strict=True):
            size = feats.numel() * feats.element_size()
            if key not in self.store and self.stored_bytes + size <= self.budget:
                # a copy: a view would keep the whole batch's features alive past the budget
                self.store[key] = feats.detach().to(self.device, copy=True) if self.device else feats.detach().clone()
                self.stored_bytes += size
        self.misses += len(keys)
        return out

    def _split(self, out, n: int, pixel_values) -> list:
        import torch

        feats = getattr(out, "pooler_output", out)
        kind = ("tensor" if isinstance(out, torch.Tensor) else
                "sequence" if isinstance(out, (list, tuple)) else "output")
        join, parts = None, None
        if isinstance(feats, (list, tuple)) and len(feats) == n:
            join, parts = "tuple", list(feats)
        elif isinstance(feats, torch.Tensor):
            tiles = _tiles_per_example(pixel_values, n)
            if tiles is not None and sum(tiles) == feats.shape[0]:
                # each example's real tiles, all in one tensor (Idefics3 on transformers 5.17)
                join, parts = "cat", list(feats.split(tiles))
            elif feats.shape[0] == n:  # one row per example (Moondream merges its crops into it)
                join, parts = "stack", list(feats.unbind(0))
        if parts is None:
            raise ConfigError("this model's image features cannot be told apart per example: turn "
                              "cache_vision_features off")
        if self._layout not in (None, (kind, join)):
            raise ConfigError(f"this model's image features changed layout between batches ({self._layout} "
                              f"then {(kind, join)}): turn cache_vision_features off")
        self._layout = (kind, join)
        return parts

    def _output(self, per_image: list):
        import torch

        kind, join = self._layout
        joined = (torch.cat(per_image) if join == "cat" else
                  torch.stack(per_image) if join == "stack" else tuple(per_image))
        if kind != "output":
            return joined
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(pooler_output=joined)


def _tiles_per_example(pixel_values, n: int) -> list[int] | None:
    """Real images per example of a (batch, images, channels, height, width) batch: rows padded
    with all-zero images, the padding the Idefics3 family drops before its tower."""
    if getattr(pixel_values, "dim", lambda: 0)() != 5 or pixel_values.shape[0] != n:
        return None
    return (pixel_values != 0).flatten(2).any(-1).sum(1).tolist() or None


class WithIds:
    """Adds the examples' ids to each batch (the vision-feature cache keys features by them)."""

    def __init__(self, collate) -> None:
        self.collate = collate

    def __call__(self, examples: Sequence[Example]) -> dict[str, Any]:
        batch = self.collate(examples)
        batch[EXAMPLE_IDS] = [ex.id for ex in examples]
        return batch


def cache_for_training(model, dataset, *, explicit: bool) -> VisionFeatureCache | None:
    """The cache for training `model` on `dataset`, or None where it cannot apply (an error only
    when asked for explicitly)."""
    from collections import Counter

    ids = Counter(ex.id for ex in getattr(dataset, "examples", ()))
    repeated = [i for i, n in ids.items() if n > 1]
    try:
        if repeated:
            raise ConfigError(f"the vision-feature cache keys images by example id, and ids repeat: {repeated[:5]}")
        return VisionFeatureCache(model, explicit=explicit)
    except ConfigError as exc:
        if explicit:
            raise
        log.debug("vision-feature cache off: %s", exc)  # auto: nothing the user set, nothing to change
        return None


def release_speedups(trainer) -> dict[str, int] | None:
    """After training: drop cached features, restore peft's adapters as they were for evaluation;
    the feature cache's hits and misses (None without one)."""
    from nmm_core.lora import cast_adapter_weights, set_input_casting

    stats = None
    cache = getattr(trainer, "feature_cache", None)
    if cache is not None:
        stats = {"hits": cache.hits, "misses": cache.misses}
        log.info("vision-feature cache: %d hits, %d misses", cache.hits, cache.misses)
        cache.close()
    set_input_casting(trainer.model, enabled=True)
    cast_adapter_weights(trainer.model, enabled=False)
    return stats
