"""The trainer's speed switches change how a step runs, never what it computes."""

from __future__ import annotations

import pytest
import torch

from nmm_core.answer_loss import answer_only_loss
from nmm_core.chat import VlmCollator
from nmm_core.errors import ConfigError, DeviceError
from nmm_core.feature_cache import VisionFeatureCache
from nmm_core.lora import LoraSettings, apply_lora, set_input_casting
from nmm_core.models import load_model
from nmm_core.runs import read_jsonl
from nmm_core.task import short_answer_task
from nmm_core.testing.shapes import make_shapes_dataset
from nmm_core.train import TrainSettings, make_trainer, train


def _batch(loaded, n=4, seed=0):
    examples = make_shapes_dataset(n, seed=seed)
    return [ex.id for ex in examples], VlmCollator(loaded.processor, loaded.family)(examples)


@pytest.mark.parametrize("preset", ["tiny-qwen2-vl", "tiny-llava-1.5", "tiny-tinyllava", "tiny-smolvlm"])
def test_feature_cache_serves_the_same_features_without_running_the_tower(preset):
    loaded = load_model(preset)
    model = apply_lora(loaded, LoraSettings())
    model.train()
    ids, batch = _batch(loaded)
    cache = VisionFeatureCache(model)
    calls = []
    original = cache.original
    cache.original = lambda *a, **k: calls.append(1) or original(*a, **k)
    cache.keys = ids
    first, _ = answer_only_loss(model, batch)
    second, _ = answer_only_loss(model, batch)
    assert len(calls) == 1, "the second pass must not run the vision tower"
    assert (cache.hits, cache.misses) == (len(ids), len(ids))
    torch.testing.assert_close(first, second)
    cache.keys = None  # evaluation and unknown batches use the model's own method
    answer_only_loss(model, batch)
    assert len(calls) == 2
    cache.close()
    assert "get_image_features" not in cache.owner.__dict__


def test_feature_cache_stores_nothing_beyond_its_budget():
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings())
    model.train()
    ids, batch = _batch(loaded)
    cache = VisionFeatureCache(model, max_gib=0.0)
    cache.keys = ids
    first, _ = answer_only_loss(model, batch)
    second, _ = answer_only_loss(model, batch)
    assert not cache.store and cache.stored_bytes == 0 and cache.hits == 0 and cache.misses == 2 * len(ids)
    torch.testing.assert_close(first, second)


def test_feature_cache_refuses_a_trainable_projector():
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings(train_projector=True))
    with pytest.raises(ConfigError, match="frozen vision tower and projector"):
        VisionFeatureCache(model)


@pytest.mark.slow
def test_training_with_the_cache_gives_the_losses_of_training_without(tmp_path):
    examples = make_shapes_dataset(8, seed=2)
    losses = {}
    for switch in ("off", "on"):
        loaded = load_model("tiny-qwen2-vl")
        torch.manual_seed(0)
        model = apply_lora(loaded, LoraSettings(r=8))
        settings = TrainSettings(epochs=3, batch_size=4, lr=5e-3, warmup=0, logging_steps=1,
                                 save_steps=100, cache_vision_features=switch)
        train(model, loaded.processor, loaded.family, examples, task=short_answer_task(), settings=settings,
              run_dir=tmp_path / switch, use_cpu=True)
        losses[switch] = [r["loss"] for r in read_jsonl(tmp_path / switch / "metrics.jsonl") if "loss" in r]
    assert len(losses["on"]) == 6
    assert losses["on"] == pytest.approx(losses["off"], rel=1e-5)


def test_fp32_master_adapters_skip_the_activation_cast_and_keep_fp32_gradients():
    loaded = load_model("tiny-qwen2-vl", dtype="bfloat16")
    model = apply_lora(loaded, LoraSettings())
    lora_layers = [m for m in model.modules() if hasattr(m, "cast_input_dtype_enabled")]
    assert lora_layers and not any(m.cast_input_dtype_enabled for m in lora_layers)
    _, batch = _batch(loaded, n=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = answer_only_loss(model, batch)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    set_input_casting(model, enabled=True)  # what train() does at the end: plain eval works again
    with torch.no_grad():
        assert model(**batch).logits.dtype == torch.bfloat16


def test_fp32_master_adapters_without_autocast_are_refused(tmp_path):
    loaded = load_model("tiny-qwen2-vl", dtype="bfloat16")
    model = apply_lora(loaded, LoraSettings())
    with pytest.raises(ConfigError, match="bf16 autocast"):
        make_trainer(model, make_shapes_dataset(2), lambda x: x, settings=TrainSettings(), run_dir=tmp_path,
                     bf16=False, use_cpu=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("switch", [{"liger": "on"}, {"compile_layers": True}])
def test_cuda_only_switches_say_what_to_do_on_cpu(tmp_path, switch):
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings())
    with pytest.raises(DeviceError, match="needs a CUDA GPU"):
        make_trainer(model, make_shapes_dataset(2), lambda x: x, settings=TrainSettings(**switch),
                     run_dir=tmp_path, use_cpu=True)


def test_switch_values_are_checked():
    with pytest.raises(ConfigError, match="liger must be one of auto, on, off"):
        TrainSettings(liger="yes")
    with pytest.raises(ConfigError, match="lora.precision"):
        LoraSettings(precision="fp8")


@pytest.mark.slow
def test_fast_defaults_reach_the_plain_paths_score(tmp_path):
    """Issue 10: speed that changes the result does not count (here: the CPU-side switches)."""
    from nmm_core.evaluate import GenerationSettings, evaluate

    task = short_answer_task("shapes-vqa")
    examples = make_shapes_dataset(700, seed=0)
    train_set, test_set = examples[:600], examples[600:]
    paths = {  # peft's defaults and the model's own loss, against every default switch of ours
        "plain": (LoraSettings(dropout=0.05, precision="fp32"),
                  dict(answer_only_logits=False, cache_vision_features="off", liger="off")),
        "fast": (LoraSettings(), {}),
    }
    scores = {}
    for name, (lora, switches) in paths.items():
        torch.manual_seed(0)
        loaded = load_model("tiny-qwen2-vl")
        model = apply_lora(loaded, lora)
        settings = TrainSettings(epochs=5, batch_size=16, lr=3e-3, logging_steps=50, save_steps=10**9, **switches)
        train(model, loaded.processor, loaded.family, train_set, task=task, settings=settings,
              run_dir=tmp_path / name, use_cpu=True)
        loaded.processor.tokenizer.padding_side = "left"
        result = evaluate(model, loaded.processor, loaded.family, test_set, task=task,
                          settings=GenerationSettings(batch_size=32, max_new_tokens=4), name=name, progress=False)
        scores[name] = result.metrics["exact_match"]
    assert min(scores.values()) >= 0.25, scores  # both learn (the base scores 0)
    assert abs(scores["fast"] - scores["plain"]) <= 0.1, scores


def test_grouping_by_length_pads_less_and_still_sees_every_example(tmp_path):
    import random

    from nmm_core.records import Example

    rng = random.Random(0)
    filler = "Look at every part of the picture before you answer. "
    examples = [Example(ex.id, ex.image, filler * rng.randint(0, 6) + ex.prompt, ex.answers, ex.meta)
                for ex in make_shapes_dataset(64, seed=4)]
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings())
    collate = VlmCollator(loaded.processor, loaded.family)
    padding, seen = {}, {}
    for grouped in (False, True):
        settings = TrainSettings(batch_size=4, group_by_length=grouped, cache_vision_features="off")
        trainer = make_trainer(model, _Examples(examples), lambda batch: {"ids": [ex.id for ex in batch],
                                                                           **collate(batch)},
                               settings=settings, run_dir=tmp_path / str(grouped), use_cpu=True)
        batches = list(trainer.get_train_dataloader())
        padding[grouped] = sum(int((b["attention_mask"] == 0).sum()) for b in batches)
        seen[grouped] = sorted(i for b in batches for i in b["ids"])
    assert seen[True] == seen[False] == sorted(ex.id for ex in examples)
    assert padding[True] < 0.5 * padding[False], padding


class _Examples:
    def __init__(self, examples):
        self.examples = examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]
