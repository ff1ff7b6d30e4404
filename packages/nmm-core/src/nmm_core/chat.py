"""Chat formatting and collation: the model's own chat template, loss on the answer only.

The training text is the generation prompt the model sees at inference (its processor's chat
template with `add_generation_prompt`) followed by the answer and the family's end-of-turn
token. Only those answer tokens carry loss; prompt, image and padding tokens are -100.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nmm_core.device_pixels import RAW_KWARGS, DevicePixels
from nmm_core.families import Family
from nmm_core.records import Example, load_image

if TYPE_CHECKING:
    import PIL.Image

IGNORE_INDEX = -100
# Per process (each DataLoader worker holds its own): 128 charts of 504x672 RGB.
IMAGE_CACHE_MIB = 128.0

PromptFn = Callable[[Example], str]


def user_messages(prompt: str, *, has_image: bool = True) -> list[dict[str, Any]]:
    """One user turn: the image first, then the prompt text (the layout every family expects)."""
    content: list[dict[str, Any]] = [{"type": "image"}] if has_image else []
    content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]


def render_prompt(processor, family: Family, prompt: str, *, has_image: bool = True) -> str:
    """The exact text the model is given before it answers."""
    if not family.chat:
        return prompt
    return processor.apply_chat_template(
        user_messages(prompt, has_image=has_image), tokenize=False, add_generation_prompt=True
    )


def render_answer(family: Family, answer: str) -> str:
    """What follows the prompt in training: the answer and the end-of-turn token."""
    return f"{family.answer_prefix}{answer}{family.end_of_turn}"


def _tokenizer(processor):
    return getattr(processor, "tokenizer", processor)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class DecodedImages:
    """A bounded LRU of decoded images read from files, keyed by path, mtime and size.

    Datasets repeat images (several questions per chart, and every epoch), and decoding a PNG is
    about a sixth of the collator's time. Images given as bytes or PIL objects pass through.
    """

    def __init__(self, max_mib: float = IMAGE_CACHE_MIB) -> None:
        self.max_bytes = int(max_mib * 2**20)
        self.bytes = 0
        self.hits = self.misses = 0
        self._images: OrderedDict[tuple[str, int, int], tuple[PIL.Image.Image, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._images)

    def load(self, example: Example) -> PIL.Image.Image:
        """`load_image(example)`, decoded once per distinct file while it stays in the cache."""
        source = example.image
        if self.max_bytes <= 0 or not isinstance(source, (str, os.PathLike)):
            return load_image(example)
        path = os.fspath(source)
        try:
            stat = os.stat(path)
        except OSError:
            return load_image(example)  # which reports the missing file with the record's id
        key = (path, stat.st_mtime_ns, stat.st_size)
        cached = self._images.get(key)
        if cached is not None:
            self.hits += 1
            self._images.move_to_end(key)
            return cached[0]
        self.misses += 1
        image = load_image(example)
        size = image.width * image.height * len(image.getbands())
        if size <= self.max_bytes:
            self._images[key] = (image, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, evicted) = self._images.popitem(last=False)
                self.bytes -= evicted
        return image


class VlmCollator:
    """Turn a list of `Example`s into a model batch; with `train`, add answer-only labels.

    With `device_pixels` (`device_pixels_for`) images stay uint8; the trainer and the evaluator
    normalise them on the model's device (`finish_pixels`).
    """

    def __init__(
        self,
        processor,
        family: Family,
        *,
        prompt_fn: PromptFn | None = None,
        train: bool = True,
        image_cache_mib: float = IMAGE_CACHE_MIB,
        device_pixels: DevicePixels | None = None,
    ) -> None:
        self.processor = processor
        self.family = family
        self.prompt_fn = prompt_fn or (lambda ex: ex.prompt)
        self.train = train
        self.tokenizer = _tokenizer(processor)
        self.eot_id = self.tokenizer.convert_tokens_to_ids(family.end_of_turn)
        self.images = DecodedImages(image_cache_mib)
        self.device_pixels = device_pixels

    def prompts(self, examples: Sequence[Example]) -> list[str]:
        """The generation prompts of `examples` (no answer needed)."""
        return [
            render_prompt(
                self.processor, self.family, self.prompt_fn(ex), has_image=ex.image is not None
            )
            for ex in examples
        ]

    def texts(self, examples: Sequence[Example]) -> tuple[list[str], list[str]]:
        """(prompts, full training texts) for `examples`."""
        prompts = self.prompts(examples)
        fulls = [p + render_answer(self.family, ex.answer) for p, ex in zip(prompts, examples, strict=True)]
        return prompts, fulls

    def _answer_lengths(self, prompts: list[str], fulls: list[str]) -> list[int]:
        # Tokenize text only (image placeholders unexpanded): the answer is the suffix of the
        # full text beyond its common prefix with the prompt, so its length survives expansion.
        tok = self.tokenizer
        p_ids = tok(prompts, add_special_tokens=True)["input_ids"]
        f_ids = tok(fulls, add_special_tokens=True)["input_ids"]
        return [len(f) - _common_prefix(p, f) for p, f in zip(p_ids, f_ids, strict=False)]

    def encode(self, texts: list[str], examples: Sequence[Example], padding_side: str):
        """Run the processor on texts and the examples' images."""
        has_images = [ex.image is not None for ex in examples]
        kwargs: dict[str, Any] = dict(return_tensors="pt", padding=True)
        if not self.family.chat:
            return self.tokenizer(texts, padding_side=padding_side, **kwargs)
        if any(has_images):
            if not all(has_images):
                raise ValueError("a batch mixes examples with and without images")
            images = [self.images.load(ex) for ex in examples]
            kwargs["images"] = [[im] for im in images] if self.family.nested_images else images
        kwargs.update(self.family.processor_kwargs)
        if self.device_pixels is not None and any(has_images):
            kwargs.update(RAW_KWARGS)
        return self.processor(text=texts, padding_side=padding_side, **kwargs)

    def __call__(self, examples: Sequence[Example]) -> dict[str, Any]:
        if not self.train:
            return dict(self.encode(self.prompts(examples), examples, "left"))
        prompts, fulls = self.texts(examples)
        batch = dict(self.encode(fulls, examples, "right"))
        batch["labels"] = self.labels(batch["input_ids"], batch["attention_mask"], prompts, fulls)
        return batch

    def labels(self, input_ids, attention_mask, prompts: list[str], fulls: list[str]):
        """-100 everywhere except the answer and its end-of-turn token."""
        import torch

        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for row, n_answer in enumerate(self._answer_lengths(prompts, fulls)):
            positions = attention_mask[row].nonzero().flatten()
            answer_pos = positions[len(positions) - n_answer :]
            labels[row, answer_pos] = input_ids[row, answer_pos]
        return labels
