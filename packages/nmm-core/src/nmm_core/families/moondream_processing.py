"""Moondream2 (2024) input side: its image preprocessing and the image-token expansion.

Preprocessing as the published 2024 code does it: an image under 512 px on its long side is
resized (bicubic) to one 378 px square; a larger one to whichever of 378x378, 378x756, 756x378,
756x756 best matches its aspect ratio (ties broken by closeness in size), then cut into
378 px crops. The global view is that resized image scaled (bilinear) to 378 px. Values are
scaled to [-1, 1] (mean and std 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import BatchFeature, ProcessorMixin
from transformers.image_processing_utils import BaseImageProcessor

IMAGE_TOKEN = "<image>"


class MoondreamImageProcessor(BaseImageProcessor):
    """PIL images -> `pixel_values` (batch, 1 + max crops, 3, S, S) and `image_crops` (batch, 2)."""

    model_input_names = ["pixel_values", "image_crops"]

    def __init__(
        self,
        crop_size: int = 378,
        max_grid: int = 2,
        multi_crop_min_size: int = 512,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.crop_size = crop_size
        self.max_grid = max_grid
        self.multi_crop_min_size = multi_crop_min_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)

    def grid_for(self, width: int, height: int) -> tuple[int, int]:
        """(rows, cols) of crops an image of this size is resized to."""
        if max(width, height) < self.multi_crop_min_size:
            return 1, 1
        aspect = width / height
        c = self.crop_size
        grids = [(r, k) for r in range(1, self.max_grid + 1) for k in range(1, self.max_grid + 1)]
        # The published key compares the candidate's first side with the width and its second
        # with the height in the tie-break; kept as is so the same size is chosen.
        return min(grids, key=lambda g: (abs(g[1] / g[0] - aspect),
                                         abs(g[0] * c - width) + abs(g[1] * c - height)))

    def _one(self, image) -> tuple[Any, tuple[int, int]]:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        image = image.convert("RGB")
        rows, cols = self.grid_for(*image.size)
        c = self.crop_size
        resized = image.resize((cols * c, rows * c), Image.BICUBIC)
        array = np.asarray(resized, dtype=np.float32) / 255.0
        array = (array - np.array(self.image_mean, dtype=np.float32)) / np.array(self.image_std, dtype=np.float32)
        full = torch.from_numpy(array).permute(2, 0, 1)  # (3, rows*S, cols*S)
        views = torch.zeros(1 + self.max_grid**2, 3, c, c)
        if rows * cols == 1:
            views[0] = full
            return views, (0, 0)
        views[0] = F.interpolate(full[None], size=(c, c), mode="bilinear")[0]
        crops = full.reshape(3, rows, c, cols, c).permute(1, 3, 0, 2, 4).reshape(-1, 3, c, c)
        views[1 : 1 + len(crops)] = crops
        return views, (rows, cols)

    def __call__(self, images, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        import torch

        if not isinstance(images, (list, tuple)):
            images = [images]
        views, grids = zip(*(self._one(im) for im in images), strict=True)
        data = {"pixel_values": torch.stack(views), "image_crops": torch.tensor(grids, dtype=torch.long)}
        return BatchFeature(data=data, tensor_type=return_tensors)


class MoondreamProcessor(ProcessorMixin):
    """Image processor + tokenizer; `<image>` in the text becomes one token per image feature."""

    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, chat_template: str | None = None,
                 image_seq_length: int = 729, **kwargs: Any) -> None:
        self.image_seq_length = image_seq_length
        self.image_token = IMAGE_TOKEN
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    @property
    def image_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.image_token)

    def __call__(self, images=None, text: str | list[str] | None = None, **kwargs: Any) -> BatchFeature:
        return_tensors = kwargs.pop("return_tensors", None)
        texts = [text] if isinstance(text, str) else list(text or [])
        data: dict[str, Any] = {}
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors))
            n_images = len(data["pixel_values"])
            n_tokens = sum(t.count(self.image_token) for t in texts)
            if n_tokens != n_images:
                raise ValueError(f"{n_images} images but {n_tokens} {self.image_token} tokens in the text")
        expanded = [t.replace(self.image_token, self.image_token * self.image_seq_length) for t in texts]
        # the chat template writes the BOS token itself, as the published prompt starts with it
        kwargs.setdefault("add_special_tokens", False)
        data.update(self.tokenizer(expanded, return_tensors=return_tensors, **kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "image_crops"]
