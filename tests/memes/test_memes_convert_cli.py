"""`nmm-memes convert SRC OUT` on a tiny checkpoint in TinyLLaVA_Factory's naming, then `--model OUT`."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from transformers import PhiConfig, PhiForCausalLM, SiglipVisionConfig, SiglipVisionModel

from nmm_core.chat import VlmCollator
from nmm_core.cli import main as core_main
from nmm_core.evaluate import GenerationSettings, generate
from nmm_core.models import load_model
from nmm_core.records import Example
from nmm_core.testing.tokenizer import build_bpe_tokenizer
from nmm_memes.cli import main
from nmm_memes.task import meme_task

TEXT = dict(model_type="phi", vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, partial_rotary_factor=0.4, hidden_act="gelu_new")
VISION = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=2, image_size=56, patch_size=14, hidden_act="gelu_pytorch_tanh")


def _checkpoint(folder, *, tokenizer: bool):
    """Weights under TinyLLaVA_Factory's names, its config.json, and (optionally) tokenizer files."""
    torch.manual_seed(0)
    state = {f"language_model.{k}": v for k, v in PhiForCausalLM(PhiConfig(**TEXT)).state_dict().items()}
    vision = SiglipVisionModel(SiglipVisionConfig(**VISION)).state_dict()
    state |= {f"vision_tower._vision_tower.vision_model.{k.removeprefix('vision_model.')}": v
              for k, v in vision.items()}
    connector = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64)).state_dict()
    state |= {f"connector._connector.{k}": v for k, v in connector.items()}
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    config = {"model_type": "tinyllava", "connector_type": "mlp2x_gelu", "vision_feature_layer": -2,
              "vision_feature_select_strategy": "patch", "text_config": TEXT, "vision_config": VISION}
    (folder / "config.json").write_text(json.dumps(config))
    if tokenizer:
        build_bpe_tokenizer(special_tokens=("<|endoftext|>",), vocab_size=300, bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>", unk_token="<|endoftext|>").save_pretrained(folder)
    return folder


def test_convert_then_use_the_folder_as_model(tmp_path, capsys):
    src = _checkpoint(tmp_path / "tinyllava", tokenizer=True)
    out = tmp_path / "converted"
    assert main(["convert", str(src), str(out)]) == 0
    assert "image token '<image>'" in capsys.readouterr().out
    assert json.loads((out / "nmm.json").read_text())["family"] == "tinyllava"
    loaded = load_model(str(out), padding_side="left")
    tok = loaded.processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    assert image_id == loaded.model.config.image_token_index < TEXT["vocab_size"]
    assert loaded.processor.image_processor.size == {"height": 56, "width": 56}
    image = tmp_path / "meme.png"
    Image.new("RGB", (80, 60), (200, 30, 30)).save(image)
    example = Example("m", str(image), "me and mondays", ("x",))
    batch = VlmCollator(
        loaded.processor, loaded.family, prompt_fn=meme_task().prompt, train=False)([example])
    assert int((batch["input_ids"] == image_id).sum()) == (56 // 14) ** 2 - 1  # first patch dropped
    [answer], _ = generate(loaded.model, loaded.processor, loaded.family, [example], task=meme_task(),
                           settings=GenerationSettings(batch_size=1, max_new_tokens=3), progress=False)
    assert isinstance(answer, str)


def test_convert_without_tokenizer_files_says_what_to_pass(tmp_path, capsys):
    src = _checkpoint(tmp_path / "tinyllava", tokenizer=False)
    assert main(["convert", str(src), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no tokenizer files" in err and "--tokenizer DIR" in err and "\n" not in err.strip()
    assert not (tmp_path / "out").exists()  # refused before any conversion
    tok_dir = _checkpoint(tmp_path / "with-tok", tokenizer=True)
    assert main(["convert", str(src), str(tmp_path / "out"), "--tokenizer", str(tok_dir)]) == 0
    with pytest.raises(SystemExit):
        main(["convert", str(src)])  # OUT is required


def test_nmm_convert_is_the_same_converter(tmp_path, capsys):
    src = _checkpoint(tmp_path / "tinyllava", tokenizer=True)
    out = tmp_path / "converted"
    assert core_main(["convert", str(src), str(out)]) == 0
    assert f"use it as: nmm train --model {out}" in capsys.readouterr().out
    assert json.loads((out / "nmm.json").read_text())["family"] == "tinyllava"
    assert (out / "model.safetensors").exists() and (out / "processor_config.json").exists()
