"""LoRA: targets, save -> reload -> merge round trips, base checks, and 4-bit QLoRA on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from nmm_core.chat import VlmCollator
from nmm_core.errors import ConfigError, PresetError
from nmm_core.lora import LoraSettings, apply_lora, load_adapter, save_adapter
from nmm_core.models import load_model
from nmm_core.records import Example


def _batch(loaded):
    image = Image.new("RGB", (64, 64), (30, 30, 200))
    examples = [Example("a", image, "What colour is the square?", ("blue",)),
                Example("b", image, "How many squares are there?", ("1",))]
    return VlmCollator(loaded.processor, loaded.family)(examples)


def _overfit(model, batch, *, steps: int) -> list[float]:
    """Losses of `steps` AdamW steps on one batch (trainable parameters only)."""
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        losses.append(loss.item())
    return losses


def _randomise_lora(model, seed=0):
    # lora_B starts at zero, which would make every round trip trivially equal.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def test_lora_targets_only_language_model_projections():
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(".language_model.layers." in n for n in trainable)
    assert not any(".visual." in n for n in trainable)
    projections = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    assert projections == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_train_projector_and_vision_options_widen_what_trains():
    loaded = load_model("tiny-llava-1.5")
    model = apply_lora(loaded, LoraSettings(r=4, train_projector=True, train_vision=True))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("multi_modal_projector" in n and "lora_" not in n for n in names)
    assert any("vision_tower" in n and "lora_" in n for n in names)


@pytest.mark.parametrize("preset", ["tiny-qwen2-vl", "tiny-smolvlm", "tiny-tinyllava"])
def test_adapter_round_trip_and_merge(preset, tmp_path):
    from peft import PeftModel

    loaded = load_model(preset)
    model = apply_lora(loaded, LoraSettings(r=4, alpha=8, dropout=0.0))
    _randomise_lora(model)
    model.eval()
    batch = _batch(loaded)
    with torch.no_grad():
        expected = model(**batch).logits
    folder = save_adapter(model, tmp_path / "adapter", base_name=preset, family=loaded.family.name)
    assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
    assert not list(tmp_path.glob(".adapter-*")), "no temporary folder may remain"

    reloaded = load_adapter(load_model(preset), folder)
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, expected)

    plain = PeftModel.from_pretrained(load_model(preset).model, str(folder)).eval()
    with torch.no_grad():
        assert torch.equal(plain(**batch).logits, expected)

    merged = load_adapter(load_model(preset), folder, merge=True)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        got = merged(**batch).logits
    # Merging reorders float32 sums: 1e-5 absolute plus 1e-5 of each logit's size (the Qwen
    # twin's logits reach ~7, where one float32 ulp is already ~5e-7).
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        untouched = load_model(preset).model(**batch).logits
    assert not torch.allclose(untouched, expected, atol=1e-3), "the adapter must change the logits"


def test_adapter_for_another_base_is_refused_before_work(tmp_path):
    loaded = load_model("tiny-qwen2-vl")
    folder = save_adapter(apply_lora(loaded, LoraSettings(r=4)), tmp_path / "a",
                          base_name="tiny-qwen2-vl", family="qwen2_vl")
    marker = json.loads((folder / "nmm_adapter.json").read_text())
    assert marker["base"] == "tiny-qwen2-vl"
    with pytest.raises(PresetError, match="trained for base 'tiny-qwen2-vl'"):
        load_adapter(load_model("tiny-smolvlm"), folder)
    with pytest.raises(PresetError, match="not a LoRA adapter folder"):
        load_adapter(loaded, tmp_path)


def test_qlora_4bit_trains_on_cpu():
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    loaded = load_model("tiny-qwen2-vl", quantization="4bit", device="cpu")
    lm_linear = loaded.model.model.language_model.layers[0].self_attn.q_proj
    assert isinstance(lm_linear, bnb.nn.Linear4bit)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.model.model.visual.modules())
    model = apply_lora(loaded, LoraSettings(r=8, alpha=16, dropout=0.0))
    losses = _overfit(model, _batch(loaded), steps=15)
    assert losses[-1] < 0.5 * losses[0], losses


def test_tinyllava_head_keeps_phi2_bias_through_save_and_load(tmp_path):
    from nmm_core.families.tinyllava_model import TinyLlavaForConditionalGeneration

    loaded = load_model("tiny-tinyllava")
    assert isinstance(loaded.model, TinyLlavaForConditionalGeneration)
    head = loaded.model.lm_head
    assert head.bias is not None
    batch = _batch(loaded)
    with torch.no_grad():
        head.bias.normal_()
        expected = loaded.model(**batch).logits
        loaded.model.save_pretrained(tmp_path / "m")
        again = TinyLlavaForConditionalGeneration.from_pretrained(tmp_path / "m")(**batch).logits
        assert torch.equal(again, expected)
        head.bias.zero_()
        assert not torch.allclose(loaded.model(**batch).logits, expected), "the bias reaches the logits"


def test_eight_bit_base_trains_lora_on_cpu():
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    loaded = load_model("tiny-llava-1.5", quantization="8bit", device="cpu")
    assert isinstance(loaded.model.model.language_model.layers[0].mlp.down_proj, bnb.nn.Linear8bitLt)
    assert not any(isinstance(m, bnb.nn.Linear8bitLt) for m in loaded.model.model.vision_tower.modules())
    model = apply_lora(loaded, LoraSettings(r=8, alpha=16, dropout=0.0))
    losses = _overfit(model, _batch(loaded), steps=12)
    assert losses[-1] < 0.5 * losses[0], losses


def _qlora_bf16(upcast: bool):
    loaded = load_model("tiny-llava-1.5", quantization="4bit", device="cpu", dtype="bfloat16")
    torch.manual_seed(0)
    model = apply_lora(loaded, LoraSettings(r=8, alpha=16, kbit_upcast=upcast), gradient_checkpointing=True)
    return loaded, model


def test_qlora_keeps_the_unquantised_weights_and_the_residual_stream_in_bf16():
    pytest.importorskip("bitsandbytes")
    from nmm_core.answer_loss import answer_only_loss
    from nmm_core.lora import needs_autocast

    losses, streams = {}, {}
    for upcast in (True, False):
        loaded, model = _qlora_bf16(upcast)
        floats = {p.dtype for p in model.parameters() if not p.requires_grad and p.is_floating_point()}
        assert floats == ({torch.float32} if upcast else {torch.bfloat16})
        dtypes = []
        layer = loaded.model.model.language_model.layers[0]
        layer.register_forward_hook(lambda _m, _i, out, seen=dtypes: seen.append(
            out[0].dtype if isinstance(out, tuple) else out.dtype))
        for p in model.parameters():
            if p.requires_grad:  # B starts at zero: give the adapters an effect
                torch.nn.init.normal_(p, std=0.05)
        model.train()
        # peft's upcast model mixes fp32 weights with the 4-bit layers' bf16 compute: it trains under
        # autocast as the trainer would run it; ours needs none (fp32-master adapters cast themselves)
        assert needs_autocast(model) == upcast
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=upcast):
            loss, _ = answer_only_loss(model, _batch(loaded))
        loss.backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
        losses[upcast], streams[upcast] = float(loss), dtypes[0]
    assert streams == {True: torch.float32, False: torch.bfloat16}
    assert losses[False] == pytest.approx(losses[True], rel=2e-2), losses  # bf16 rounding, the same loss


@pytest.mark.parametrize("quantization", [None, "4bit"])
def test_a_trained_projector_keeps_fp32_master_weights_on_a_bf16_base(quantization, tmp_path):
    if quantization:
        pytest.importorskip("bitsandbytes")
    from nmm_core.answer_loss import answer_only_loss
    from nmm_core.lora import needs_autocast

    loaded = load_model("tiny-llava-1.5", quantization=quantization, device="cpu", dtype="bfloat16")
    model = apply_lora(loaded, LoraSettings(r=8, alpha=16, train_projector=True))
    projector = {n: p for n, p in model.named_parameters() if p.requires_grad and "multi_modal_projector" in n}
    # a bf16 projector would take AdamW steps of lr 2e-4 in bf16: most of them round away
    assert projector and all(p.dtype == torch.float32 for p in projector.values())
    assert not needs_autocast(model)  # its linears cast themselves, as the adapters do
    model.train()
    loss, _ = answer_only_loss(model, _batch(loaded))  # no autocast
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in projector.values())
    if quantization is None:  # the fp32 projector loads into a plain bf16 base
        save_adapter(model, tmp_path / "ad", base_name="tiny-llava-1.5", family=loaded.family.name)
        fresh = load_model("tiny-llava-1.5", device="cpu", dtype="bfloat16")
        reloaded = load_adapter(fresh, tmp_path / "ad")
        saved = next(v for k, v in projector.items() if k.endswith("linear_1.weight"))
        got = next(p for n, p in reloaded.named_parameters() if n.endswith("modules_to_save.default.linear_1.weight"))
        torch.testing.assert_close(got, saved.detach().to(got.dtype))


def test_kbit_upcast_without_a_quantised_base_is_refused():
    with pytest.raises(ConfigError, match="kbit_upcast applies to a 4/8-bit base only"):
        apply_lora(load_model("tiny-qwen2-vl"), LoraSettings(kbit_upcast=True))
