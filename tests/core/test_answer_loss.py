"""Answer-only logits: the same loss as the model's own, from the LM head at a few positions."""

from __future__ import annotations

import pytest
import torch

from nmm_core.answer_loss import answer_only_loss, kept_positions
from nmm_core.chat import VlmCollator
from nmm_core.lora import LoraSettings, apply_lora
from nmm_core.models import load_model
from nmm_core.runs import read_jsonl
from nmm_core.task import short_answer_task
from nmm_core.testing.shapes import make_shapes_dataset
from nmm_core.train import TrainSettings, train


@pytest.mark.parametrize("preset", ["tiny-qwen2-vl", "tiny-smolvlm", "tiny-llava-1.5", "tiny-tinyllava"])
def test_answer_only_loss_equals_the_full_loss(preset):
    loaded = load_model(preset)
    examples = make_shapes_dataset(6, seed=7)
    batch = VlmCollator(loaded.processor, loaded.family)(examples)
    with torch.no_grad():
        full = loaded.model(**batch).loss
        ours, outputs = answer_only_loss(loaded.model, batch)
    assert torch.allclose(ours, full, atol=1e-6), (ours, full)
    keep = kept_positions(batch["labels"])
    assert outputs.logits.shape[1] == len(keep) < batch["input_ids"].shape[1] // 3


def test_training_losses_match_the_plain_trainer_step_for_step(tmp_path):
    examples = make_shapes_dataset(32, seed=8)
    logged = {}
    for answer_only in (False, True):
        loaded = load_model("tiny-qwen2-vl")
        torch.manual_seed(0)  # the same LoRA initialisation in both runs
        model = apply_lora(loaded, LoraSettings(r=4, dropout=0.0))
        run = tmp_path / str(answer_only)
        settings = TrainSettings(max_steps=6, batch_size=4, grad_accum=2, lr=5e-3, logging_steps=1,
                                 save_steps=100, answer_only_logits=answer_only)
        train(model, loaded.processor, loaded.family, examples, task=short_answer_task(),
              settings=settings, run_dir=run, use_cpu=True)
        logged[answer_only] = [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert len(logged[True]) == 6
    assert logged[True] == pytest.approx(logged[False], rel=1e-4)
