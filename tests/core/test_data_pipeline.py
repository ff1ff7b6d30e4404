"""The collator's speed levers change nothing the model receives: image backend, decoded-image cache."""

from __future__ import annotations

import os

import pytest
import torch
from PIL import Image, ImageDraw

from nmm_core.chat import DecodedImages, VlmCollator
from nmm_core.models import load_model
from nmm_core.records import Example


def _chart(path, width: int, height: int, seed: int) -> str:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for b in range(4):
        draw.rectangle([4 + b * width // 4, height // (2 + (b + seed) % 3), (b + 1) * width // 4 - 2, height - 4],
                       fill=(40 * b, 200 - 30 * seed, 90))
    image.save(path)
    return str(path)


def test_the_qwen2_vl_twin_loads_the_torchvision_image_processor_which_matches_pil():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    fast = load_model("tiny-qwen2-vl").processor.image_processor
    assert fast.backend == "torchvision"
    config = {k: v for k, v in fast.to_dict().items() if k not in ("image_processor_type", "processor_class")}
    slow = Qwen2VLImageProcessorPil(**config)
    # 112x112 and 84x56 are multiples of 28 within the twin's pixel budget: no resize, as the
    # benchmark's 504x672 charts at Qwen2-VL-2B's settings; 90x70 is resized
    for size, atol in (((112, 112), 1e-6), ((84, 56), 1e-6), ((90, 70), 0.05)):
        images = [Image.new("RGB", size, (200, 30, 30)), Image.effect_noise(size, 60).convert("RGB")]
        a, b = fast(images, return_tensors="pt"), slow(images, return_tensors="pt")
        assert torch.equal(a["image_grid_thw"], b["image_grid_thw"])
        assert a["pixel_values"].dtype == b["pixel_values"].dtype == torch.float32
        if atol < 1e-3:
            torch.testing.assert_close(a["pixel_values"], b["pixel_values"], rtol=0, atol=atol)
        else:
            # torchvision's and PIL's bicubic resampling differ by a few grey levels at edges
            assert (a["pixel_values"] - b["pixel_values"]).abs().mean() < atol


def test_decoded_images_are_reused_until_the_file_changes(tmp_path):
    cache = DecodedImages(max_mib=1)
    path = _chart(tmp_path / "a.png", 64, 48, seed=0)
    first = cache.load(Example("a", path, "Q", ("1",)))
    assert cache.load(Example("b", path, "Q", ("1",))) is first
    assert (cache.hits, cache.misses) == (1, 1)
    _chart(path, 64, 48, seed=1)
    os.utime(path, ns=(10**18, 10**18))
    changed = cache.load(Example("a", path, "Q", ("1",)))
    assert changed is not first and changed.tobytes() != first.tobytes()
    assert cache.misses == 2


def test_decoded_images_stay_within_their_budget(tmp_path):
    cache = DecodedImages(max_mib=3 * 100 * 100 * 3 / 2**20)  # three 100x100 RGB images
    paths = [_chart(tmp_path / f"{i}.png", 100, 100, seed=i) for i in range(5)]
    for p in paths:
        cache.load(Example("x", p, "Q", ("1",)))
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    cache.load(Example("x", paths[-1], "Q", ("1",)))
    assert cache.hits == 1
    image = Image.new("RGB", (10, 10))
    assert cache.load(Example("x", image, "Q", ("1",))) is image  # objects pass through
    assert DecodedImages(max_mib=0).load(Example("x", paths[0], "Q", ("1",))).size == (100, 100)


@pytest.mark.parametrize("preset", ["tiny-qwen2-vl", "tiny-smolvlm"])
def test_the_image_cache_leaves_batches_unchanged(tmp_path, preset):
    loaded = load_model(preset)
    paths = [_chart(tmp_path / f"{i}.png", 90 + 10 * i, 70, seed=i) for i in range(2)]
    examples = [Example(f"r{i}", paths[i % 2], "How many bars?", ("4",)) for i in range(4)]
    cached = VlmCollator(loaded.processor, loaded.family)
    plain = VlmCollator(loaded.processor, loaded.family, image_cache_mib=0)
    cached(examples)  # the second call is served from the cache
    a, b = cached(examples), plain(examples)
    assert cached.images.hits >= 4 and len(plain.images) == 0
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
