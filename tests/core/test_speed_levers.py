"""The trainer's speed switches change how a step runs, never what it computes."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest
import torch

from nmm_core.answer_loss import answer_only_loss
from nmm_core.chat import VlmCollator
from nmm_core.errors import ConfigError, DeviceError
from nmm_core.feature_cache import VisionFeatureCache
from nmm_core.lora import LoraSettings, apply_lora, cast_adapter_weights, needs_autocast, set_input_casting
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


def _tiled_smolvlm():
    """The SmolVLM twin splitting images into crops: 5 tiles for a square image, 3 for a wide one."""
    loaded = load_model("tiny-smolvlm")
    loaded.processor.image_processor.do_image_splitting = True
    loaded.processor.image_processor.size = {"longest_edge": 64}
    examples = make_shapes_dataset(3)
    wide = examples[1].image.resize((112, 28)) if hasattr(examples[1].image, "resize") else None
    examples[1] = dataclasses.replace(examples[1], image=wide)
    return loaded, examples


@pytest.mark.parametrize("features_as", ["per example (transformers >= 5.20)", "one tensor of tiles (5.17)"])
def test_feature_cache_serves_several_tiles_per_example(features_as):
    loaded, examples = _tiled_smolvlm()
    batch = VlmCollator(loaded.processor, loaded.family)(examples)
    assert [n for n in (batch["pixel_values"] != 0).flatten(2).any(-1).sum(1).tolist()] == [5, 3, 5]
    model = apply_lora(loaded, LoraSettings())
    model.train()
    cache = VisionFeatureCache(model)
    calls = []
    original = cache.original

    def tower(*args, **kwargs):
        calls.append(1)
        out = original(*args, **kwargs)
        if features_as.startswith("one tensor"):  # all real tiles in one tensor, as transformers 5.17 returns
            seq = loaded.processor.image_seq_len
            out.pooler_output = torch.cat([f.reshape(-1, seq, f.shape[-1]) for f in out.pooler_output])
        return out

    cache.original = tower
    cache.keys = [ex.id for ex in examples]
    first, _ = answer_only_loss(model, batch)
    second, _ = answer_only_loss(model, batch)
    assert len(calls) == 1 and not cache.disabled
    per_tile = loaded.processor.image_seq_len * model.config.text_config.hidden_size
    assert [f.numel() // per_tile for f in cache.store.values()] == [5, 3, 5]
    torch.testing.assert_close(first, second)


class _Tower(torch.nn.Module):
    """A stand-in model whose image features come back in the layout it is told."""

    def __init__(self):
        super().__init__()
        self.layout = "rows"

    def get_image_features(self, pixel_values):
        rows = pixel_values.flatten(1)
        return rows if self.layout == "rows" else tuple(rows.unbind(0))


@pytest.mark.parametrize("explicit", [True, False])
def test_feature_cache_refuses_features_that_change_layout_between_batches(explicit):
    tower = _Tower()
    cache = VisionFeatureCache(tower, explicit=explicit)
    cache.keys = ["a", "b"]
    tower.get_image_features(torch.ones(2, 3))
    tower.layout, cache.keys = "sequence", ["c", "d"]
    if explicit:
        with pytest.raises(ConfigError, match="changed layout between batches"):
            tower.get_image_features(torch.ones(2, 3))
    else:
        assert isinstance(tower.get_image_features(torch.ones(2, 3)), tuple)
        assert cache.disabled and not cache.store and cache.stored_bytes == 0


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


def test_fp32_master_adapters_compute_in_bf16_without_autocast_and_keep_fp32_gradients():
    loaded = load_model("tiny-qwen2-vl", dtype="bfloat16")
    model = apply_lora(loaded, LoraSettings())
    lora_layers = [m for m in model.modules() if hasattr(m, "cast_input_dtype_enabled")]
    assert lora_layers and not any(m.cast_input_dtype_enabled for m in lora_layers)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in trainable) and not needs_autocast(model)
    for p in trainable:  # B starts at zero: give the adapters an effect to compare
        torch.nn.init.normal_(p, std=0.05)
    _, batch = _batch(loaded, n=2)
    loss, out = answer_only_loss(model, batch)  # no autocast anywhere
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in trainable)

    # the same adapter weights held in bf16 compute the same logits, bit for bit
    twin = apply_lora(load_model("tiny-qwen2-vl", dtype="bfloat16"), LoraSettings(precision="bf16"))
    twin.load_state_dict({k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(twin(**batch).logits, model(**batch).logits)

    set_input_casting(model, enabled=True)  # what train() does at the end: peft's own adapters again
    assert cast_adapter_weights(model, enabled=False) == 2 * len(lora_layers)
    with torch.no_grad():
        assert model(**batch).logits.dtype == torch.bfloat16


def _autocast_seen(model) -> list[bool]:
    seen: list[bool] = []
    # inside the peft wrapper: accelerate patches the outer forward with its autocast
    model.get_base_model().register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    return seen


@pytest.mark.parametrize(("precision", "autocast"), [("fp32-master", False), ("fp32-autocast", True),
                                                     ("fp32", True), ("bf16", False)])
def test_the_step_runs_under_autocast_only_where_fp32_weights_need_it(tmp_path, precision, autocast):
    loaded = load_model("tiny-qwen2-vl", dtype="bfloat16")
    model = apply_lora(loaded, LoraSettings(precision=precision))
    seen = _autocast_seen(model)
    collator = VlmCollator(loaded.processor, loaded.family, prompt_fn=short_answer_task().prompt, train=True)
    trainer = make_trainer(model, _Examples(make_shapes_dataset(4)), collator, run_dir=tmp_path, bf16=True,
                           use_cpu=True, settings=TrainSettings(max_steps=1, batch_size=2, num_workers=0))
    trainer.train()
    assert seen and set(seen) == {autocast}


@pytest.mark.parametrize(("dtype", "applied"), [("bfloat16", "no"), ("float32", "bf16")])
def test_accelerates_bf16_from_the_environment_is_dropped_only_where_it_would_add_casts(
        tmp_path, monkeypatch, dtype, applied):
    """`accelerate launch --mixed_precision bf16` exports ACCELERATE_MIXED_PRECISION=bf16: over a bf16
    base it would only wrap self-casting adapters in autocast; an fp32 base gets what was asked."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    loaded = load_model("tiny-qwen2-vl", dtype=dtype)
    model = apply_lora(loaded, LoraSettings())
    seen = _autocast_seen(model)
    collator = VlmCollator(loaded.processor, loaded.family, prompt_fn=short_answer_task().prompt, train=True)
    trainer = make_trainer(model, _Examples(make_shapes_dataset(4)), collator, run_dir=tmp_path, bf16=True,
                           use_cpu=True, settings=TrainSettings(max_steps=1, batch_size=2, num_workers=0))
    assert trainer.args.mixed_precision == trainer.accelerator.mixed_precision == applied
    trainer.train()
    assert set(seen) == {applied == "bf16"}


def test_fp32_autocast_adapters_without_autocast_are_refused(tmp_path):
    loaded = load_model("tiny-qwen2-vl", dtype="bfloat16")
    model = apply_lora(loaded, LoraSettings(precision="fp32-autocast"))
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
    from nmm_core.metrics import exact_match_per_example

    task = short_answer_task("shapes-vqa")
    examples = make_shapes_dataset(1000, seed=0)
    train_set, test_set = examples[:600], examples[600:]  # 400 questions: a 100-question interval is +-0.1
    paths = {  # peft's defaults and the model's own loss, against every default switch of ours
        "plain": (LoraSettings(dropout=0.05, precision="fp32"),
                  dict(answer_only_logits=False, cache_vision_features="off", liger="off")),
        "fast": (LoraSettings(), {}),
    }
    scores, answers = {}, {}
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
        scores[name] = [row["exact_match"] for row in result.predictions]
        answers[name] = [row["prediction"] for row in result.predictions]
    references = [list(ex.answers) for ex in test_set]
    prior = Counter(r[0] for r in references).most_common(1)[0][0]
    broken = {"constant": exact_match_per_example([prior] * len(references), references),
              "shuffled": exact_match_per_example(random.Random(0).sample(answers["fast"], len(references)),
                                                  references)}
    means = {name: sum(v) / len(v) for name, v in {**scores, **broken}.items()}
    for name in ("plain", "fast"):  # both learn beyond the answer prior (the random base scores 0)
        assert _difference(broken["constant"], scores[name]) == "better", means
    assert _difference(scores["plain"], scores["fast"]) == "none", means  # the same result
    for name, values in broken.items():  # ... by a comparison that tells a broken model apart
        assert _difference(scores["plain"], values) == "worse", (name, means)


def _difference(first: list[float], other: list[float]) -> str:
    """Where the 95% paired-bootstrap interval of `other - first` lies: "better", "worse" or "none" (holds 0)."""
    from nmm_core.ratings import bootstrap_interval

    low, high = bootstrap_interval([b - a for a, b in zip(first, other, strict=True)])
    return "better" if low > 0 else "worse" if high < 0 else "none"


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


@pytest.mark.parametrize("preset", ["tiny-smolvlm", "tiny-llava-1.5", "tiny-tinyllava", "tiny-moondream"])
def test_every_family_trains_bf16_with_self_casting_adapters_and_no_autocast(preset):
    loaded = load_model(preset, dtype="bfloat16")
    model = apply_lora(loaded, LoraSettings())
    assert not needs_autocast(model)
    model.train()
    _, batch = _batch(loaded, n=2)
    loss, _ = answer_only_loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_a_float16_base_is_refused_on_cpu_where_loss_scaling_cannot_run(tmp_path):
    loaded = load_model("tiny-qwen2-vl", dtype="float16")
    model = apply_lora(loaded, LoraSettings())
    with pytest.raises(ConfigError, match="float16 base trains with loss scaling on a GPU only"):
        make_trainer(model, make_shapes_dataset(2), lambda x: x, settings=TrainSettings(), run_dir=tmp_path,
                     use_cpu=True)
