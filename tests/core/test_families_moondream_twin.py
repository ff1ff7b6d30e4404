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
        # the first token comes from the prefill (no cache yet): it equals a plain forward's; the
        # cached decoding steps are checked in the test below
        first = loaded.model(**batch).logits[:, -1].argmax(-1)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)
    assert torch.equal(out[:, batch["input_ids"].shape[1]], first)



def test_a_batch_of_mixed_crop_grids_encodes_each_image_as_it_would_alone(loaded):
    processor = loaded.processor.image_processor
    sizes = [(120, 120), (40, 40), (120, 60), (60, 120)]  # 2x2, global only, 1x2, 2x1
    images = [Image.new("RGB", s, (40 * i, 200 - 40 * i, 90)) for i, s in enumerate(sizes)]
    for i, image in enumerate(images):  # texture, so that crops and global view differ
        image.putpixel((i + 3, 5), (255, 255, 255))
    batch = processor(images)
    assert batch["image_crops"].tolist() == [[2, 2], [0, 0], [1, 2], [2, 1]]
    inner = loaded.model.model
    with torch.no_grad():
        together = inner.get_image_features(batch["pixel_values"], batch["image_crops"])
        for row, image in enumerate(images):
            alone = processor([image])
            one = inner.get_image_features(alone["pixel_values"], alone["image_crops"])
            torch.testing.assert_close(together[row], one[0], atol=1e-5, rtol=1e-5)
    assert together.shape == (4, 9, loaded.model.config.text_config.hidden_size)


def test_feature_cache_serves_moondream_per_example_without_running_the_tower():
    from nmm_core.feature_cache import VisionFeatureCache

    base = load_model(PRESET)
    model = apply_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0))
    model.train()
    examples = _examples()
    batch = VlmCollator(base.processor, base.family)(examples)
    cache = VisionFeatureCache(model)
    assert cache.owner is base.model.model
    calls = []
    original = cache.original
    cache.original = lambda *a, **k: calls.append(1) or original(*a, **k)
    cache.keys = [ex.id for ex in examples]
    first, _ = answer_only_loss(model, batch)
    second, _ = answer_only_loss(model, batch)
    assert len(calls) == 1, "the second pass must not run the vision tower"
    assert (cache.hits, cache.misses) == (2, 2)
    torch.testing.assert_close(first, second)
    with torch.no_grad():
        expected = original(batch["pixel_values"], batch["image_crops"])
    assert set(cache.store) == {"a", "b"}
    for row, ex in enumerate(examples):  # one (tokens, hidden) entry per example, in batch order
        torch.testing.assert_close(cache.store[ex.id], expected[row])
    cache.keys = None
    answer_only_loss(model, batch)
    assert len(calls) == 2
    cache.close()
    assert "get_image_features" not in cache.owner.__dict__


def test_left_padded_batched_generation_equals_each_example_alone_and_cache_free(loaded):
    collate = VlmCollator(loaded.processor, loaded.family, train=False)
    examples = _examples()
    batch = collate(examples)
    assert (batch["attention_mask"] == 0).any(), "the prompts must differ in length for this check"
    prompt = batch["input_ids"].shape[1]
    with torch.no_grad():
        cached = loaded.model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        uncached = loaded.model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                                         use_cache=False)
        alone = [loaded.model.generate(**collate([ex]), max_new_tokens=4, min_new_tokens=4, do_sample=False)
                 for ex in examples]
    assert torch.equal(cached, uncached)
    for row, out in enumerate(alone):
        assert torch.equal(cached[row, prompt:], out[0, -4:]), row


@pytest.mark.slow
def test_training_with_the_feature_cache_on_gives_the_losses_of_training_without(tmp_path, caplog):
    """Through the trainer: `auto` turns the cache on for moondream and it changes no loss."""
    import logging

    from nmm_core.runs import read_jsonl
    from nmm_core.task import short_answer_task
    from nmm_core.testing.shapes import make_shapes_dataset
    from nmm_core.train import TrainSettings, train

    examples = make_shapes_dataset(4, seed=2)
    losses = {}
    for switch in ("off", "auto"):
        loaded = load_model(PRESET)
        torch.manual_seed(0)
        model = apply_lora(loaded, LoraSettings(r=4))
        settings = TrainSettings(epochs=2, batch_size=2, lr=5e-3, warmup=0, logging_steps=1,
                                 save_steps=100, cache_vision_features=switch)
        with caplog.at_level(logging.INFO, logger="nmm_core.train"):
            train(model, loaded.processor, loaded.family, examples, task=short_answer_task(), settings=settings,
                  run_dir=tmp_path / switch, use_cpu=True)
        losses[switch] = [r["loss"] for r in read_jsonl(tmp_path / switch / "metrics.jsonl") if "loss" in r]
    # epoch 1 fills the cache, epoch 2 is served from it
    assert "vision-feature cache: 4 hits, 4 misses" in caplog.text
    assert len(losses["auto"]) == 4
    assert losses["auto"] == pytest.approx(losses["off"], rel=1e-5)
