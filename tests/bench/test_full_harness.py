"""The full-size harness runs its real code paths on the tiny twins ("dry" scale) on CPU."""

from __future__ import annotations

import pytest

from nmm_bench import fullsize as fs
from nmm_bench import inference_full, train_full


@pytest.mark.parametrize("family", ["qwen2_vl", "idefics3", "llava"])
def test_synthetic_batches_fit_the_model(family):
    import torch

    model, config = fs.build_model(family, "dry")
    batch = fs.collate(fs.make_items(family, config, "dry", 2))
    with torch.no_grad():
        out = model(**batch)
    assert out.loss is not None and torch.isfinite(out.loss)
    assert (batch["labels"] != fs.IGNORE).sum() == 2 * fs.ANSWER_TOKENS


def test_plain_and_our_trainer_rows_and_equal_losses_in_fp32():
    only = {"plain loop (peft defaults)", "nmm defaults (+ liger + cache)"}
    rows = train_full.run_rows("qwen2_vl", "dry", 2, 4, only=only)
    assert [r.label for r in rows] == sorted(only, key=lambda x: x.startswith("nmm"))
    assert all(r.value > 0 and "error" not in r.extra for r in rows), [r.extra.get("error") for r in rows]
    check = train_full.loss_agreement("qwen2_vl", "dry", 2, liger=False)
    assert check["max_abs_diff"] < 1e-4  # fp32 on CPU: the fast path's math is the plain loss


def test_generation_rows_and_token_agreement():
    result = inference_full.generation("qwen2_vl", "dry")
    assert result.rows[0].label == "one at a time" and all(r.value > 0 for r in result.rows)
    assert result.checks["bf16 greedy tokens equal to one-at-a-time (first prompts)"] == "4/4"  # fp32 here
