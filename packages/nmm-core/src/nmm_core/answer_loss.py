"""Loss on answer tokens only, with logits computed only where an answer token is predicted.

The language-model head over the whole sequence is the largest activation of a VLM step
(batch x sequence x vocabulary: 16 x 482 x 151,936 floats for Qwen2-VL-2B) although only a few
answer positions carry loss. transformers' `logits_to_keep` takes the positions to keep, so the
head runs there only; the loss is the same cross-entropy over the same tokens.
"""

from __future__ import annotations

from typing import Any

from nmm_core.chat import IGNORE_INDEX


def kept_positions(labels):
    """Sorted positions p whose logits predict a labelled token at p + 1 (any row of the batch)."""
    import torch

    targets = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return torch.nonzero(targets).flatten()


def answer_only_loss(model, inputs: dict[str, Any], num_items_in_batch=None):
    """(loss, outputs): cross-entropy of the answer tokens from logits at answer positions only.

    Summed and divided by `num_items_in_batch` when given (the count over all accumulated
    micro-batches, as transformers does), else averaged over this batch's answer tokens.
    """
    import torch.nn.functional as F

    inputs = dict(inputs)
    labels = inputs.pop("labels")
    keep = kept_positions(labels)
    outputs = model(**inputs, logits_to_keep=keep)
    logits = outputs.logits.float()  # (batch, len(keep), vocab)
    targets = labels[:, keep + 1].to(logits.device)
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                            ignore_index=IGNORE_INDEX, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE_INDEX).sum()
    return total / count, outputs
