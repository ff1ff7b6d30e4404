"""`nmm export`: a merged folder that plain transformers loads and answers with exactly as nmm does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmm_core.cli import main as core_main
from nmm_core.config import dump_yaml
from nmm_core.evaluate import GenerationSettings, generate
from nmm_core.lora import LoraSettings, accepted_fingerprints, apply_lora, load_adapter, save_adapter
from nmm_core.models import load_model
from nmm_core.task import short_answer_task
from nmm_core.testing.shapes import make_shapes_dataset
from nmm_core.workflows import DataSettings, ModelSettings, TrainConfig

# Run in a fresh interpreter: only transformers, as a user without nmm would load the folder.
PLAIN_LOAD = r"""
import json, sys
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

folder, examples, max_new = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
model = AutoModelForImageTextToText.from_pretrained(folder)
processor = AutoProcessor.from_pretrained(folder)
answers = []
for image, prompt in examples:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    batch = processor(text=[text], images=[Image.open(image).convert("RGB")], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=max_new, do_sample=False)
    new = out[0, batch["input_ids"].shape[1]:]
    answers.append(processor.tokenizer.decode(new, skip_special_tokens=True).strip())
print(json.dumps({"answers": answers, "dtype": str(model.dtype), "class": type(model).__name__,
                  "nmm": sorted(m for m in sys.modules if m.split(".")[0].startswith("nmm"))}))
"""
MAX_NEW = 6


def _perturbed_adapter(run: Path, *, model: str, family: str, seed: int, **load) -> Path:
    """A saved adapter whose LoRA weights are random (B is zero after init: the merge would change nothing)."""
    loaded = load_model(model, device="cpu", **load)
    peft_model = apply_lora(loaded, LoraSettings(r=4, alpha=8))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return save_adapter(peft_model, run / "adapter", base_name=model, family=family)


def _examples(folder: Path, n: int = 4):
    examples = make_shapes_dataset(n, seed=3)
    (folder / "images").mkdir(parents=True)
    for i, ex in enumerate(examples):
        ex.image.save(folder / "images" / f"{i}.png")
    return examples, [[str(folder / "images" / f"{i}.png"), short_answer_task().prompt(ex)]
                      for i, ex in enumerate(examples)]


def _nmm_answers(examples, adapter: Path | None, dtype: str) -> list[str]:
    """nmm's own evaluation path: base (+ adapter merged), greedy, one at a time."""
    loaded = load_model("tiny-qwen2-vl", device="cpu", dtype=dtype, padding_side="left")
    model = load_adapter(loaded, adapter, merge=True) if adapter else loaded.model
    answers, _ = generate(model, loaded.processor, loaded.family, examples, task=short_answer_task(),
                          settings=GenerationSettings(batch_size=1, max_new_tokens=MAX_NEW), progress=False)
    return answers


def _plain_load(folder: Path, rows) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", PLAIN_LOAD, str(folder), json.dumps(rows), str(MAX_NEW)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh interpreter importing transformers: most of a minute on 2 busy cores
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_export_loads_with_transformers_alone_and_answers_as_nmm_does(dtype, tmp_path, capsys):
    run = tmp_path / "run"
    adapter = _perturbed_adapter(run, model="tiny-qwen2-vl", family="qwen2_vl", seed=1)
    dump_yaml(TrainConfig(data=DataSettings(source="my-charts", split="train", limit=300)), run / "config.yaml")
    examples, rows = _examples(tmp_path)
    out = tmp_path / "exported"
    assert core_main(["export", "--adapter", str(adapter), "--out", str(out), "--dtype", dtype,
                      "--model-device", "cpu"]) == 0
    assert "loads with plain transformers" in capsys.readouterr().err
    plain = _plain_load(out, rows)
    assert plain["nmm"] == [], "the folder must load without nmm"
    assert plain["class"] == "Qwen2VLForConditionalGeneration" and plain["dtype"] == f"torch.{dtype}"
    merged = _nmm_answers(examples, adapter, dtype)
    assert plain["answers"] == merged
    # the merge matters: the base alone answers otherwise (an export of the bare base fails above)
    assert _nmm_answers(examples, None, dtype) != merged
    card = (out / "README.md").read_text()
    assert "tiny-qwen2-vl" in card and "source: my-charts" in card and "limit: 300" in card
    assert "AutoModelForImageTextToText" in card and "r: 16" in card  # the run's LoRA settings
    assert not list(tmp_path.glob(".exported-*")), "no temporary folder is left"


def test_export_carries_the_image_budget_and_the_compare_table(tmp_path):
    adapter = _perturbed_adapter(tmp_path / "run", model="tiny-qwen2-vl", family="qwen2_vl", seed=2)
    marker = json.loads((adapter / "nmm_adapter.json").read_text())
    (adapter / "nmm_adapter.json").write_text(json.dumps({**marker, "image_tokens": {"min": 4, "max": 9}}))
    report = tmp_path / "compare-run"
    report.mkdir()
    (report / "report.json").write_text(json.dumps({
        "primary_metric": "exact_match", "delta_vs_first": {"fine-tuned": 0.25},
        "delta_ci95_vs_first": {"fine-tuned": [0.1, 0.4]},
        "results": [{"name": "base", "n": 20, "seconds_per_example": 0.1, "exact_match": 0.1},
                    {"name": "fine-tuned", "n": 20, "seconds_per_example": 0.1, "exact_match": 0.35}]}))
    out = tmp_path / "exported"
    args = ["export", "--adapter", str(adapter), "--out", str(out), "--model-device", "cpu", "--report", str(report)]
    assert core_main(args) == 0
    size = json.loads((out / "processor_config.json").read_text())["image_processor"]["size"]
    assert size == {"shortest_edge": 4 * 28 * 28, "longest_edge": 9 * 28 * 28}  # 28x28 pixels per token
    card = (out / "README.md").read_text()
    assert "| fine-tuned | 20 | 0.3500 |" in card and "+0.2500" in card and "+0.1000 to +0.4000" in card
    # an earlier export is replaced whole; the folder holds no stray file from the first
    (out / "stray.txt").write_text("x")
    assert core_main(args[:-2]) == 0
    assert not (out / "stray.txt").exists() and "## Evaluation" not in (out / "README.md").read_text()


def test_qlora_adapter_exports_in_bf16_with_no_quantization(tmp_path, capsys):
    pytest.importorskip("bitsandbytes")
    from safetensors import safe_open
    from transformers import LlavaForConditionalGeneration

    run = tmp_path / "run"
    adapter = _perturbed_adapter(run, model="tiny-llava-1.5", family="llava", seed=4,
                                 quantization="4bit", dtype="bfloat16")
    dump_yaml(TrainConfig(model=ModelSettings(model="tiny-llava-1.5", quantization="4bit")), run / "config.yaml")
    quantized = load_model("tiny-llava-1.5", quantization="4bit", device="cpu", dtype="bfloat16").model
    # the fingerprint adapters saved before it ignored quantisation (an empty quantization_config entry)
    import hashlib

    from nmm_core.lora import _shape_fields
    legacy = hashlib.sha256(json.dumps(_shape_fields(quantized.config.to_dict()), default=str).encode())
    plain_base = load_model("tiny-llava-1.5", device="cpu", dtype="bfloat16").model
    assert legacy.hexdigest()[:16] in accepted_fingerprints(plain_base)

    out = tmp_path / "exported"
    assert core_main(["export", "--adapter", str(adapter), "--out", str(out), "--model-device", "cpu"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    with safe_open(out / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    exported = LlavaForConditionalGeneration.from_pretrained(out)
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    merged = exported.state_dict()[name]
    base = plain_base.state_dict()[name]
    assert merged.dtype == torch.bfloat16 and not torch.equal(merged, base)  # the adapter was merged in
    fresh = load_model("tiny-llava-1.5", device="cpu", dtype="bfloat16")
    expected = load_adapter(fresh, adapter, merge=True).state_dict()[name]
    assert torch.equal(merged, expected)
    assert "4bit (QLoRA) base" in (out / "README.md").read_text()


@pytest.mark.parametrize("model, family, plain", [
    ("tiny-smolvlm", "idefics3", True), ("tiny-tinyllava", "tinyllava", False), ("tiny-moondream", "moondream", False),
])
def test_each_family_says_how_its_folder_loads(model, family, plain, tmp_path, capsys):
    import importlib

    from nmm_core.families import get_family

    adapter = _perturbed_adapter(tmp_path / "run", model=model, family=family, seed=5)
    out = tmp_path / "exported"
    assert core_main(["export", "--adapter", str(adapter), "--out", str(out), "--model-device", "cpu"]) == 0
    err, card = capsys.readouterr().err, (out / "README.md").read_text()
    cls_path = get_family(family).model_class
    if plain:  # SmolVLM: the Auto class gives the family's transformers class
        from transformers import AutoModelForImageTextToText

        assert "loads with plain transformers" in err and "AutoModelForImageTextToText" in card
        assert type(AutoModelForImageTextToText.from_pretrained(out)).__name__ == cls_path
        return
    module, name = cls_path.split(":")
    assert "loading needs nmm-core" in err and f"from {module} import {name}" in err
    assert "loading needs nmm-core installed" in card and f"from {module} import {name}" in card
    model_cls = getattr(importlib.import_module(module), name)
    loaded = model_cls.from_pretrained(out)
    if family == "tinyllava":
        assert loaded.lm_head.bias is not None  # Phi-2's head bias, which a plain Llava would drop
    assert json.loads((out / "nmm.json").read_text())["family"] == family  # nmm loads it as what it is


def test_an_interrupted_export_leaves_nothing(tmp_path, capsys, monkeypatch):
    from transformers import PreTrainedModel

    adapter = _perturbed_adapter(tmp_path / "run", model="tiny-qwen2-vl", family="qwen2_vl", seed=6)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", interrupt)
    out = tmp_path / "exports" / "exported"
    assert core_main(["export", "--adapter", str(adapter), "--out", str(out), "--model-device", "cpu"]) == 130
    assert "nothing was written" in capsys.readouterr().err
    assert list((tmp_path / "exports").iterdir()) == []  # no folder, no temporary sibling


def test_an_adapter_with_parts_beyond_lora_is_refused_not_merged_without_them(tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    (adapter / "gill_parts.safetensors").write_bytes(b"")  # what GILL's trainee saves beside its LoRA
    assert core_main(["export", "--adapter", str(adapter), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "gill_parts.safetensors" in err and "cannot carry" in err
    assert not (tmp_path / "out").exists()
