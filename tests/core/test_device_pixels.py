"""Pixels normalised on the model's side are the values the processor would have made."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nmm_core.chat import VlmCollator
from nmm_core.device_pixels import device_pixels_for, finish_pixels
from nmm_core.errors import ConfigError
from nmm_core.evaluate import GenerationSettings, generate
from nmm_core.families import FAMILIES
from nmm_core.lora import LoraSettings, apply_lora
from nmm_core.models import load_model
from nmm_core.task import short_answer_task
from nmm_core.testing.shapes import make_shapes_dataset
from nmm_core.train import TrainSettings, _ExampleDataset, make_trainer, release_speedups, train

LAYOUT_PRESETS = ["tiny-qwen2-vl", "tiny-llava-1.5", "tiny-tinyllava"]


def _examples(n=4):
    """Shapes questions with images of several sizes: some are resized, some are not."""
    examples = make_shapes_dataset(n, seed=3)
    sizes = [(112, 112), (90, 70), (84, 56), (150, 40)]
    return [dataclasses.replace(ex, image=ex.image.resize(sizes[i % len(sizes)])) for i, ex in enumerate(examples)]


@pytest.mark.parametrize("train_batch", [True, False], ids=["train", "generate"])
@pytest.mark.parametrize("preset", LAYOUT_PRESETS)
def test_raw_pixels_normalised_by_the_model_equal_the_processors_own(preset, train_batch):
    loaded = load_model(preset)
    examples = _examples()
    plain = VlmCollator(loaded.processor, loaded.family, train=train_batch)(examples)
    pixels = device_pixels_for(loaded.processor, loaded.family, "on")
    raw = VlmCollator(loaded.processor, loaded.family, train=train_batch, device_pixels=pixels)(examples)
    assert raw["pixel_values"].dtype == torch.uint8
    assert plain["pixel_values"].dtype == torch.float32
    assert set(raw) == set(plain)
    for key in plain:
        if key != "pixel_values":
            assert torch.equal(raw[key], plain[key]), key
    assert torch.equal(pixels.normalize(raw["pixel_values"]), plain["pixel_values"])


def test_the_trainer_and_the_evaluator_give_the_model_the_processors_values(tmp_path):
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings())
    examples = _examples()
    pixels = device_pixels_for(loaded.processor, loaded.family)
    plain, raw = (VlmCollator(loaded.processor, loaded.family, device_pixels=p) for p in (None, pixels))
    trainer = make_trainer(model, _ExampleDataset(examples), raw, settings=TrainSettings(),
                           run_dir=tmp_path, use_cpu=True)
    assert trainer.device_pixels is pixels
    model.train()
    seen = []
    handle = model.get_base_model().model.visual.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].abs().max().item()))
    with torch.no_grad():
        from_raw = trainer.compute_loss(model, raw(examples))
        from_plain = trainer.compute_loss(model, plain(examples))
    handle.remove()
    assert torch.equal(from_raw, from_plain)
    assert seen[0] == seen[1] < 10  # normalised values reached the tower, not 0-255
    release_speedups(trainer)

    task = short_answer_task("shapes")
    answers = {switch: generate(model, loaded.processor, loaded.family, examples, task=task, progress=False,
                                settings=GenerationSettings(batch_size=4, max_new_tokens=4,
                                                            pixels_on_device=switch))[0]
               for switch in ("on", "off")}
    assert answers["on"] == answers["off"]


def test_raw_pixels_with_nothing_to_normalise_them_are_refused():
    loaded = load_model("tiny-qwen2-vl")
    pixels = device_pixels_for(loaded.processor, loaded.family)
    raw = VlmCollator(loaded.processor, loaded.family, device_pixels=pixels)(_examples(2))
    with pytest.raises(ConfigError, match="raw uint8 pixel_values"):
        finish_pixels(raw, None)
    plain = VlmCollator(loaded.processor, loaded.family)(_examples(2))
    assert finish_pixels(plain, None) is plain


def test_families_without_a_layout_refuse_on_and_are_skipped_on_auto():
    loaded = load_model("tiny-smolvlm")
    with pytest.raises(ConfigError, match="pixels_on_device is on, but the idefics3 family"):
        device_pixels_for(loaded.processor, loaded.family, "on")
    assert device_pixels_for(loaded.processor, loaded.family, "auto") is None
    qwen = load_model("tiny-qwen2-vl")
    assert device_pixels_for(qwen.processor, qwen.family, "off") is None


def test_processors_that_cannot_hand_over_raw_pixels_are_refused():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    loaded = load_model("tiny-qwen2-vl")
    config = {k: v for k, v in loaded.processor.image_processor.to_dict().items()
              if k not in ("image_processor_type", "processor_class")}
    for image_processor, why in ((type(loaded.processor.image_processor)(**{**config, "do_normalize": False}),
                                  "does not both rescale and normalise"),
                                 (Qwen2VLImageProcessorPil(**config), "Qwen2VLImageProcessorPil")):
        loaded.processor.image_processor = image_processor
        with pytest.raises(ConfigError, match=why):
            device_pixels_for(loaded.processor, loaded.family, "on")
        assert device_pixels_for(loaded.processor, loaded.family, "auto") is None


def test_every_layout_is_known():
    from nmm_core.device_pixels import PIXEL_LAYOUTS

    assert {f.pixel_layout for f in FAMILIES.values()} <= {None, *PIXEL_LAYOUTS}


def test_training_hands_the_model_uint8_pixels_by_default(tmp_path, monkeypatch):
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings())
    dtypes = []

    class Recording(VlmCollator):
        def __call__(self, examples):
            batch = super().__call__(examples)
            dtypes.append(batch["pixel_values"].dtype)
            return batch

    monkeypatch.setattr("nmm_core.train.VlmCollator", Recording)
    train(model, loaded.processor, loaded.family, make_shapes_dataset(8), task=short_answer_task("shapes"),
          settings=TrainSettings(max_steps=2, batch_size=4, save_steps=10), run_dir=tmp_path, use_cpu=True)
    assert dtypes and set(dtypes) == {torch.uint8}


def test_the_switch_is_checked():
    with pytest.raises(ConfigError, match="pixels_on_device"):
        TrainSettings(pixels_on_device="yes")
    with pytest.raises(ConfigError, match="pixels_on_device"):
        GenerationSettings(pixels_on_device="gpu")

