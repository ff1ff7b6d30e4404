"""Chat formatting and label masking for every family the project uses."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nmm_core.chat import IGNORE_INDEX, VlmCollator, render_prompt
from nmm_core.families.tinyllava import SYSTEM
from nmm_core.models import load_model
from nmm_core.records import Example

VISION_PRESETS = ("tiny-qwen2-vl", "tiny-smolvlm", "tiny-llava-1.5", "tiny-tinyllava")

# The real processors' formats (OFFLINE-NOTES.md), with "Q" as the question.
EXPECTED_PROMPTS = {
    "tiny-qwen2-vl": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q<|im_end|>\n"
    "<|im_start|>assistant\n",
    "tiny-smolvlm": "<|im_start|>User:<image>Q<end_of_utterance>\nAssistant:",
    "tiny-llava-1.5": "USER: <image>\nQ ASSISTANT:",
    "tiny-tinyllava": f"{SYSTEM} USER: <image>\nQ ASSISTANT:",
}


def _examples(with_image: bool = True) -> list[Example]:
    image = Image.new("RGB", (90, 70), (200, 30, 30)) if with_image else None
    return [
        Example("a", image, "What colour is the circle?", ("red",)),
        Example("b", image, "How many squares are there in this picture?", ("three squares",)),
    ]


@pytest.mark.parametrize("preset", VISION_PRESETS)
def test_prompt_matches_the_real_chat_format(preset):
    loaded = load_model(preset)
    assert render_prompt(loaded.processor, loaded.family, "Q") == EXPECTED_PROMPTS[preset]


@pytest.mark.parametrize("preset", [*VISION_PRESETS, "tiny-opt-clip"])
def test_only_answer_and_end_of_turn_carry_loss(preset):
    loaded = load_model(preset)
    examples = _examples(with_image=loaded.family.chat)
    collate = VlmCollator(loaded.processor, loaded.family)
    batch = collate(examples)
    tok = collate.tokenizer
    for row, ex in enumerate(examples):
        labels = batch["labels"][row]
        kept = labels[labels != IGNORE_INDEX]
        assert tok.decode(kept).strip() == f"{ex.answer}{loaded.family.end_of_turn}"
        # the kept labels are the sequence's last real tokens, equal to its input ids
        real = batch["attention_mask"][row].nonzero().flatten()
        tail = real[len(real) - len(kept) :]
        assert torch.equal(batch["input_ids"][row, tail], kept)
        assert kept[-1].item() == collate.eot_id
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


@pytest.mark.parametrize("preset", VISION_PRESETS)
def test_image_tokens_are_masked_and_forward_gives_a_loss(preset):
    loaded = load_model(preset)
    batch = VlmCollator(loaded.processor, loaded.family)(_examples())
    image_id = loaded.model.config.image_token_id
    assert (batch["input_ids"] == image_id).sum() > 0
    assert (batch["labels"][batch["input_ids"] == image_id] == IGNORE_INDEX).all()
    loss = loaded.model(**batch).loss
    assert torch.isfinite(loss) and loss.item() > 0


@pytest.mark.parametrize("preset", VISION_PRESETS)
def test_generation_batch_is_left_padded_prompt_only(preset):
    loaded = load_model(preset)
    batch = VlmCollator(loaded.processor, loaded.family, train=False)(_examples())
    assert "labels" not in batch
    mask = batch["attention_mask"]
    assert mask[:, -1].all(), "every prompt must end at the last position (left padding)"
    out = loaded.model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] > batch["input_ids"].shape[1]


def test_a_batch_mixing_images_and_text_only_is_refused():
    loaded = load_model("tiny-qwen2-vl")
    mixed = [_examples()[0], _examples(with_image=False)[1]]
    with pytest.raises(ValueError, match="mixes"):
        VlmCollator(loaded.processor, loaded.family)(mixed)


def test_generation_batches_need_no_answer():
    loaded = load_model("tiny-qwen2-vl")
    unlabelled = [Example("q", Image.new("RGB", (64, 64)), "What colour is the circle?", ())]
    batch = VlmCollator(loaded.processor, loaded.family, train=False)(unlabelled)
    assert batch["input_ids"].shape[0] == 1
