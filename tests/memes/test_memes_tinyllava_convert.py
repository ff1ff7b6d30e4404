"""TinyLLaVA_Factory -> Llava conversion, checked on logits against TinyLLaVA's own forward.

The reference is composed the way TinyLLaVA_Factory composes it (SiglipVisionModel,
Linear-GELU-Linear connector, PhiForCausalLM, hidden_states[-2] with the first patch dropped,
image features spliced in at the image placeholder) and saved under TinyLLaVA's weight names.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import PhiConfig, PhiForCausalLM, SiglipVisionConfig, SiglipVisionModel

from nmm_core.errors import DataError
from nmm_core.families.tinyllava_convert import convert_checkpoint, map_key

IMAGE_TOKEN = 90  # our placeholder id inside the tiny vocabulary
TEXT = dict(model_type="phi", vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, partial_rotary_factor=0.4, hidden_act="gelu_new", layer_norm_eps=1e-5)
VISION = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=2, image_size=56, patch_size=14, hidden_act="gelu_pytorch_tanh",
              layer_norm_eps=1e-6, model_name_or_path="google/siglip-so400m-patch14-384")


class Reference(nn.Module):
    """TinyLLaVA-Phi-SigLIP's structure, with its attribute names."""

    def __init__(self):
        super().__init__()
        self.language_model = PhiForCausalLM(PhiConfig(**TEXT))
        vision = SiglipVisionModel(SiglipVisionConfig(**VISION))
        self.vision_tower = nn.Module()
        self.vision_tower._vision_tower = vision
        self.connector = nn.Module()
        self.connector._connector = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64))

    def forward(self, input_ids, pixel_values):
        hidden = self.vision_tower._vision_tower(pixel_values, output_hidden_states=True).hidden_states[-2]
        features = self.connector._connector(hidden[:, 1:])  # TinyLLaVA drops the first patch
        embeds = self.language_model.get_input_embeddings()(input_ids)
        embeds[input_ids == IMAGE_TOKEN] = features.reshape(-1, features.shape[-1])
        return self.language_model(inputs_embeds=embeds).logits

    def published_state_dict(self):
        """Weights under TinyLLaVA's names (transformers-4 layout: a `vision_model.` level)."""
        out = {}
        for key, value in self.state_dict().items():
            if key.startswith("vision_tower._vision_tower."):
                key = key.replace("vision_tower._vision_tower.", "vision_tower._vision_tower.vision_model.", 1)
            out[key] = value.contiguous()
        return out


def _checkpoint(tmp_path):
    torch.manual_seed(0)
    ref = Reference().eval()
    with torch.no_grad():
        ref.language_model.lm_head.bias.normal_()  # Phi-2's head bias must survive conversion
    src = tmp_path / "tinyllava"
    src.mkdir()
    save_file(ref.published_state_dict(), src / "model.safetensors")
    config = {"model_type": "tinyllava", "connector_type": "mlp2x_gelu", "vision_feature_layer": -2,
              "vision_feature_select_strategy": "patch", "text_config": TEXT, "vision_config": VISION}
    (src / "config.json").write_text(json.dumps(config))
    return ref, src


def test_converted_model_reproduces_tinyllava_logits(tmp_path):
    ref, src = _checkpoint(tmp_path)
    assert any(k.startswith("vision_tower._vision_tower.vision_model.encoder.") for k in ref.published_state_dict())
    model = convert_checkpoint(src, tmp_path / "out", image_token_id=IMAGE_TOKEN).eval()
    n_image = (56 // 14) ** 2 - 1
    ids = torch.tensor([[5, 6, *[IMAGE_TOKEN] * n_image, 7, 8, 9]])
    pixels = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        expected = ref(ids, pixels)
        got = model(input_ids=ids, pixel_values=pixels).logits
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert (tmp_path / "out" / "nmm.json").exists()


def test_unknown_weight_names_and_connectors_are_refused(tmp_path):
    with pytest.raises(DataError, match="weight 'mm_projector.0.weight'"):
        map_key("mm_projector.0.weight")
    _, src = _checkpoint(tmp_path)
    config = json.loads((src / "config.json").read_text())
    config["connector_type"] = "qformer"
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="connector_type"):
        convert_checkpoint(src, tmp_path / "out", image_token_id=IMAGE_TOKEN)
