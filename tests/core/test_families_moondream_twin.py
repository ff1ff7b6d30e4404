"""The `tiny-moondream` twin through core: prompt format, crops, answer-only labels and loss,
LoRA save -> reload -> merge, generation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nmm_core.answer_loss import answer_only_loss, kept_positions
from nmm_core.chat import IGNORE_INDEX, VlmCollator, render_prompt
from nmm_core.families.moondream_processing import MoondreamImageProcessor
from nmm_core.lora import LoraSettings, apply_lora, load_adapter, save_adapter
from nmm_core.models import load_model
from nmm_core.records import Example

PRESET = "tiny-moondream"


@pytest.fixture(scope="module")
def loaded():
    return load_model(PRESET)


def _examples():
    wide = Image.new("RGB", (120, 60), (200, 30, 30))  # multi-crop: a 1x2 grid
    small = Image.new("RGB", (40, 40), (30, 30, 200))  # under the threshold: the global view only
    return [Example("a", wide, "What colour is the bar?", ("red",)),
            Example("b", small, "How many squares are there in this picture?", ("three squares",))]


def test_prompt_is_the_published_moondream_format(loaded):
    assert render_prompt(loaded.processor, loaded.family, "Q") == "<|endoftext|><image>\n\nQuestion: Q\n\nAnswer:"


@pytest.mark.parametrize(("size", "grid"), [((400, 300), (1, 1)), ((800, 600), (2, 2)), ((1000, 400), (1, 2)),
                                            ((400, 1000), (2, 1)), ((511, 200), (1, 1))])
def test_published_crop_grid_choice(size, grid):
    assert MoondreamImageProcessor().grid_for(*size) == grid


def test_collation_expands_the_image_and_labels_the_answer_only(loaded):
    examples = _examples()
    collate = VlmCollator(loaded.processor, loaded.family)
    batch = collate(examples)
    assert batch["pixel_values"].shape == (2, 5, 3, 42, 42)
    assert batch["image_crops"].tolist() == [[1, 2], [0, 0]]
    image_id = loaded.model.config.image_token_id
    assert ((batch["input_ids"] == image_id).sum(dim=1) == 9).all()  # (42 / 14)^2 per image
    tok = collate.tokenizer
    for row, ex in enumerate(examples):
        labels = batch["labels"][row]
        kept = labels[labels != IGNORE_INDEX]
        assert tok.decode(kept) == f" {ex.answer}<|endoftext|>"
        real = batch["attention_mask"][row].nonzero().flatten()
        assert torch.equal(batch["input_ids"][row, real[len(real) - len(kept):]], kept)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    with torch.no_grad():
        full = loaded.model(**batch).loss
        ours, outputs = answer_only_loss(loaded.model, batch)
    assert torch.allclose(ours, full, atol=1e-6), (ours, full)
    assert outputs.logits.shape[1] == len(kept_positions(batch["labels"]))


def test_lora_targets_phi_projections_and_round_trips_through_save_and_merge(tmp_path):
    base = load_model(PRESET)
    model = apply_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".language_model.layers." in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {
        "q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"}
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # lora_B starts at zero, which would make the round trip trivial
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    model.eval()
    batch = VlmCollator(base.processor, base.family)(_examples())
    with torch.no_grad():
        expected = model(**batch).logits
    folder = save_adapter(model, tmp_path / "adapter", base_name=PRESET, family="moondream")
    reloaded = load_adapter(load_model(PRESET), folder)
    merged = load_adapter(load_model(PRESET), folder, merge=True)
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, expected)
        got = merged(**batch).logits
        untouched = load_model(PRESET).model(**batch).logits
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(untouched, expected, atol=1e-3), "the adapter must change the logits"


def test_generation_with_left_padding_and_a_cache(loaded):
    collate = VlmCollator(loaded.processor, loaded.family, train=False)
    batch = collate(_examples())
    assert (batch["attention_mask"][:, -1] == 1).all()  # left padded
    with torch.no_grad():
        out = loaded.model.generate(**batch, max_new_tokens=3, min_new_tokens=3, do_sample=False)
        # greedy with the cache equals a cache-free forward on the prompt for the first token
        first = loaded.model(**batch).logits[:, -1].argmax(-1)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)
    assert torch.equal(out[:, batch["input_ids"].shape[1]], first)

