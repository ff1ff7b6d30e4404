"""Each VLM domain CLI's `export` verb: core's command, wired in, on the twin the domain uses."""

from __future__ import annotations

import json

import pytest
import torch

from nmm_charts.cli import main as charts_main
from nmm_core.lora import LoraSettings, apply_lora, save_adapter
from nmm_core.models import load_model
from nmm_memes.cli import main as memes_main
from nmm_pathology.cli import main as pathology_main


@pytest.mark.parametrize("main, verb, model, family", [
    (charts_main, ["export"], "tiny-smolvlm", "idefics3"),
    (pathology_main, ["vqa", "export"], "tiny-llava-1.5", "llava"),
    (memes_main, ["export"], "tiny-tinyllava", "tinyllava"),
])
def test_domain_export_verb_writes_a_merged_folder(main, verb, model, family, tmp_path):
    loaded = load_model(model, device="cpu")
    peft_model = apply_lora(loaded, LoraSettings(r=4))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)
    adapter = save_adapter(peft_model, tmp_path / "adapter", base_name=model, family=family)
    out = tmp_path / "exported"
    assert main([*verb, "--adapter", str(adapter), "--out", str(out), "--model-device", "cpu"]) == 0
    assert json.loads((out / "nmm_export.json").read_text())["base"] == model
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
