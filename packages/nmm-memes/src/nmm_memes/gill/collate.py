"""GILL training batches: image -> caption (captioning) and caption -> [IMG] tokens + SD's token ids.

A batch is built on the CPU only (tokenizers, image processor): the data loader's worker
processes cannot use CUDA, so the SD text encoder's target is computed in `GillModel.forward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nmm_core.chat import IGNORE_INDEX
from nmm_core.records import Example, load_image


def training_caption(example: Example) -> str:
    """What the image shows: MemeCap's first literal image caption, else the first meme caption."""
    captions = example.meta.get("img_captions") if example.meta else None
    if isinstance(captions, list):
        for caption in captions:
            if isinstance(caption, str) and caption.strip():
                return caption.strip()
    return example.answer


def pad(rows: list[list[int]], value: int) -> tuple[Any, Any]:
    """Right-pad id lists into a (bs, T) tensor and its attention mask."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    ids = pad_sequence([torch.tensor(r, dtype=torch.long) for r in rows], batch_first=True, padding_value=value)
    mask = pad_sequence([torch.ones(len(r), dtype=torch.long) for r in rows], batch_first=True)
    return ids, mask


class GillCollator:
    """Examples -> GillModel.forward's keyword arguments."""

    def __init__(self, tokenizer, image_processor, sd_tokenizer, *, first_img: int, img_tokens: int,
                 max_caption_tokens: int = 32) -> None:
        self.tokenizer, self.image_processor, self.sd_tokenizer = tokenizer, image_processor, sd_tokenizer
        self.img_ids = list(range(first_img, first_img + img_tokens))
        self.max_tokens = max_caption_tokens

    def caption_ids(self, captions: Sequence[str]) -> list[list[int]]:
        """Tokenized captions (OPT's leading `</s>` included), cut to `max_caption_tokens`."""
        return [ids[: self.max_tokens] for ids in self.tokenizer(list(captions))["input_ids"]]

    def with_img_tokens(self, ids: list[list[int]]) -> tuple[Any, Any]:
        """Caption ids followed by [IMG0]..[IMGr-1], right-padded: (bs, T) ids and mask."""
        return pad([r + self.img_ids for r in ids], self.tokenizer.pad_token_id)

    def __call__(self, examples: Sequence[Example]) -> dict[str, Any]:
        import torch

        tok = self.tokenizer
        captions = [training_caption(ex) for ex in examples]
        pixels = self.image_processor([load_image(ex) for ex in examples], return_tensors="pt")["pixel_values"]
        ids = self.caption_ids(captions)
        cap_ids, cap_mask = pad([r + [tok.eos_token_id] for r in ids], tok.pad_token_id)
        cap_labels = cap_ids.masked_fill(cap_mask == 0, IGNORE_INDEX)
        cap_labels[:, 0] = IGNORE_INDEX  # the leading </s> is given, not predicted
        gen_ids, gen_mask = self.with_img_tokens(ids)
        is_img = gen_ids >= self.img_ids[0]
        gen_labels = torch.where(is_img & (gen_mask == 1), gen_ids, torch.full_like(gen_ids, IGNORE_INDEX))
        sd = self.sd_tokenizer
        sd_ids = sd(captions, padding="max_length", max_length=sd.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
        return {"pixel_values": pixels, "cap_ids": cap_ids, "cap_mask": cap_mask, "cap_labels": cap_labels,
                "gen_ids": gen_ids, "gen_mask": gen_mask, "gen_labels": gen_labels, "sd_ids": sd_ids}
