"""Moondream2 (2024 layout): our implementation against a reference written from the published
structure, the weight converter, collation, and LoRA on the tiny twin.

The reference below is plain torch named as the published checkpoint names its weights
(`vision_encoder.encoder.model.visual.*`, `vision_encoder.projection.mlp.*`,
`text_model.transformer.*`, `text_model.lm_head.{ln,linear}`), with the published computation:
a Linear patch embedding on (channel, row, column)-flattened patches, fused q/k/v in both
towers, tanh-GELU MLPs, crops tiled and resized to the global patch grid, Phi's parallel
attention + MLP block with rotary embedding on the first half of each head.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nmm_core.errors import DataError
from nmm_core.families.moondream_convert import convert_folder, convert_state_dict, load_converted, map_key
from nmm_core.families.moondream_model import MoondreamConfig

D_VIS, HEADS_VIS, LAYERS_VIS, PATCH, CROP = 32, 2, 2, 14, 28
D_TXT, HEADS_TXT, LAYERS_TXT, VOCAB, ROT = 64, 4, 2, 100, 0.5
IMAGE_TOKEN, BOS = 99, 0


class RefAttention(nn.Module):
    def __init__(self, dim, heads, fused, out):
        super().__init__()
        self.heads = heads
        setattr(self, fused, nn.Linear(dim, 3 * dim))
        setattr(self, out, nn.Linear(dim, dim))
        self.fused, self.out = fused, out

    def forward(self, x, rotary_dims=0, causal=False):
        b, n, d = x.shape
        q, k, v = getattr(self, self.fused)(x).chunk(3, dim=-1)
        q, k, v = (t.view(b, n, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        if rotary_dims:
            q, k = _rotary(q, rotary_dims), _rotary(k, rotary_dims)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if causal:
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        return getattr(self, self.out)(y)


def _rotary(x, dims):
    n = x.shape[-2]
    inv = 1.0 / (10000 ** (torch.arange(0, dims, 2).float() / dims))
    freqs = torch.outer(torch.arange(n).float(), inv)
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()
    rot, rest = x[..., :dims], x[..., dims:]
    half = torch.cat([-rot[..., dims // 2 :], rot[..., : dims // 2]], -1)
    return torch.cat([rot * cos + half * sin, rest], -1)


class RefMLP(nn.Module):
    def __init__(self, d_in, d_hidden, d_out):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, d_hidden), nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class RefBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(D_VIS), nn.LayerNorm(D_VIS)
        self.attn = RefAttention(D_VIS, HEADS_VIS, "qkv", "proj")
        self.mlp = RefMLP(D_VIS, 4 * D_VIS, D_VIS)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RefViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.linear = nn.Linear(3 * PATCH * PATCH, D_VIS)
        self.pos_embed = nn.Parameter(torch.randn(1, (CROP // PATCH) ** 2, D_VIS) * 0.5)
        self.blocks = nn.Sequential(*[RefBlock() for _ in range(LAYERS_VIS)])
        self.norm = nn.LayerNorm(D_VIS)

    def forward(self, x):
        b, c, h, w = x.shape
        g = h // PATCH
        x = x.reshape(b, c, g, PATCH, g, PATCH).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)
        return self.norm(self.blocks(self.patch_embed.linear(x) + self.pos_embed))


class RefPhiBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(D_TXT)
        self.mixer = RefAttention(D_TXT, HEADS_TXT, "Wqkv", "out_proj")
        self.mlp = RefMLP(D_TXT, 4 * D_TXT, D_TXT)

    def forward(self, x):
        h = self.ln(x)
        rotary_dims = int(ROT * (D_TXT // HEADS_TXT))
        return x + self.mixer(h, rotary_dims=rotary_dims, causal=True) + self.mlp(h)


class Reference(nn.Module):
    """The published module tree (weight names) with the published computation."""

    def __init__(self, vocab=VOCAB):
        super().__init__()
        self.vision_encoder = nn.Module()
        self.vision_encoder.encoder = nn.Module()
        self.vision_encoder.encoder.model = nn.ModuleDict({"visual": RefViT()})
        self.vision_encoder.projection = nn.Module()
        self.vision_encoder.projection.mlp = RefMLP(2 * D_VIS, 4 * D_TXT, D_TXT)
        self.text_model = nn.Module()
        self.text_model.transformer = nn.Module()
        self.text_model.transformer.embd = nn.Module()
        self.text_model.transformer.embd.wte = nn.Embedding(vocab, D_TXT)
        self.text_model.transformer.h = nn.ModuleList([RefPhiBlock() for _ in range(LAYERS_TXT)])
        self.text_model.lm_head = nn.Module()
        self.text_model.lm_head.ln = nn.LayerNorm(D_TXT)
        self.text_model.lm_head.linear = nn.Linear(D_TXT, vocab)
        self.region_model = nn.Linear(2, 2)  # 2024-08-26 ships a detection head: dropped

    def image_embeds(self, full, rows, cols):
        """`full`: the resized image (3, rows*CROP, cols*CROP), as the published preprocess gives."""
        vit = self.vision_encoder.encoder.model["visual"]
        g = CROP // PATCH
        glob = vit(F.interpolate(full[None], size=(CROP, CROP), mode="bilinear"))[0]
        if rows * cols == 1:
            local = glob
        else:
            crops = [full[:, i * CROP:(i + 1) * CROP, j * CROP:(j + 1) * CROP]
                     for i in range(rows) for j in range(cols)]
            feats = vit(torch.stack(crops)).transpose(1, 2).reshape(rows * cols, D_VIS, g, g)
            tiled = torch.cat([torch.cat(list(feats[i * cols:(i + 1) * cols]), dim=2) for i in range(rows)], dim=1)
            local = F.interpolate(tiled[None], size=(g, g), mode="bilinear")[0].reshape(D_VIS, -1).T
        return self.vision_encoder.projection.mlp(torch.cat([glob, local], -1))

    def forward(self, image, before, after, bos=BOS):
        """The published input: BOS, text before the image, image embeddings, text after."""
        wte = self.text_model.transformer.embd.wte
        x = torch.cat([wte(torch.tensor([bos, *before])), image, wte(torch.tensor(after))])[None]
        for block in self.text_model.transformer.h:
            x = block(x)
        return self.text_model.lm_head.linear(self.text_model.lm_head.ln(x))


def _text(vocab=VOCAB):
    return dict(vocab_size=vocab, hidden_size=D_TXT, intermediate_size=4 * D_TXT, num_hidden_layers=LAYERS_TXT,
                num_attention_heads=HEADS_TXT, hidden_act="gelu_new", partial_rotary_factor=ROT, layer_norm_eps=1e-5)


VISION = dict(hidden_size=D_VIS, intermediate_size=4 * D_VIS, num_hidden_layers=LAYERS_VIS,
              num_attention_heads=HEADS_VIS, patch_size=PATCH, image_size=CROP, hidden_act="gelu_pytorch_tanh",
              layer_norm_eps=1e-5, vision_use_head=False)


def _config():
    return MoondreamConfig(text_config=_text(), vision_config=VISION, projector_hidden_size=4 * D_TXT,
                           image_token_id=IMAGE_TOKEN)


def _published(seed=0, vocab=VOCAB):
    torch.manual_seed(seed)
    ref = Reference(vocab).eval()
    with torch.no_grad():
        for p in ref.parameters():  # LayerNorm weights away from 1 and biases away from 0
            p.add_(torch.randn_like(p) * 0.1)
    return ref, {k: v.clone() for k, v in ref.state_dict().items()}


@pytest.mark.parametrize("grid", [(1, 1), (2, 2), (1, 2), (2, 1)])
def test_converted_model_reproduces_the_published_computation(grid):
    rows, cols = grid
    ref, state = _published()
    assert "vision_encoder.encoder.model.visual.blocks.0.attn.qkv.weight" in state
    assert "text_model.transformer.h.1.mixer.Wqkv.weight" in state
    model = load_converted(state, _config()).eval()
    full = torch.randn(3, rows * CROP, cols * CROP)
    views = torch.zeros(1, 5, 3, CROP, CROP)
    views[0, 0] = F.interpolate(full[None], size=(CROP, CROP), mode="bilinear")[0]
    if rows * cols > 1:
        tiles = full.reshape(3, rows, CROP, cols, CROP).permute(1, 3, 0, 2, 4)
        views[0, 1:1 + rows * cols] = tiles.reshape(-1, 3, CROP, CROP)
    crops = torch.tensor([[rows, cols]]) if rows * cols > 1 else torch.tensor([[0, 0]])
    before, after = [5, 6], [7, 8, 9, 10]
    n_image = (CROP // PATCH) ** 2
    ids = torch.tensor([[BOS, *before, *[IMAGE_TOKEN] * n_image, *after]])
    with torch.no_grad():
        expected = ref(ref.image_embeds(full, rows, cols), before, after)
        got = model(input_ids=ids, pixel_values=views, image_crops=crops).logits
        kept = model(input_ids=ids, pixel_values=views, image_crops=crops,
                     logits_to_keep=torch.tensor([2, ids.shape[1] - 1])).logits
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert torch.allclose(kept, got[:, [2, ids.shape[1] - 1]], atol=1e-6)


def test_converter_splits_fused_weights_and_refuses_unknown_names():
    _, state = _published()
    ours = convert_state_dict(state)
    qkv = state["text_model.transformer.h.0.mixer.Wqkv.weight"]
    assert torch.equal(ours["model.language_model.layers.0.self_attn.k_proj.weight"], qkv[D_TXT:2 * D_TXT])
    assert ours["model.vision_tower.embeddings.patch_embedding.weight"].shape == (D_VIS, 3, PATCH, PATCH)
    assert not any(k.startswith("region_model") for k in ours)
    assert map_key("text_model.lm_head.linear.bias") == ("lm_head.bias",)
    with pytest.raises(DataError, match="weight 'mm_projector.0.weight'"):
        map_key("mm_projector.0.weight")
    del state["text_model.lm_head.ln.weight"]
    with pytest.raises(DataError, match="final_layernorm.weight"):
        load_converted(state, _config())


def test_weights_of_other_dimensions_than_the_config_are_named():
    _, state = _published()
    config = MoondreamConfig(text_config=_text(), vision_config=VISION, projector_hidden_size=2 * D_TXT,
                             image_token_id=IMAGE_TOKEN)
    with pytest.raises(DataError, match=r"multi_modal_projector\.linear_1\.weight \(256, 64\) \(config: \(128, 64\)\)"):
        load_converted(state, config)


def test_a_published_folder_converts_into_a_model_and_processor_core_loads(tmp_path):
    """The user's path minus the download: safetensors + tokenizer files in, core's model out."""
    from safetensors.torch import save_file

    from nmm_core.chat import VlmCollator
    from nmm_core.models import load_model
    from nmm_core.records import Example
    from nmm_core.testing.tokenizer import build_bpe_tokenizer

    eot = "<|endoftext|>"
    tok = build_bpe_tokenizer(special_tokens=(eot,), bos_token=eot, eos_token=eot, unk_token=eot)
    ref, state = _published(vocab=len(tok) + 8)
    src = tmp_path / "published"
    src.mkdir()
    save_file(state, src / "model.safetensors")
    tok.save_pretrained(src)
    hub_config = {"architectures": ["Moondream"], "model_type": "moondream1", "text_config": {"model_type": "phi"}}
    (src / "config.json").write_text(json.dumps(hub_config))
    convert_folder(src, tmp_path / "ours", text=_text(len(tok) + 8), vision=VISION,
                   projector_hidden_size=4 * D_TXT, multi_crop_min_size=38)

    loaded = load_model(str(tmp_path / "ours"))
    assert loaded.family.name == "moondream"
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8))
    batch = VlmCollator(loaded.processor, loaded.family, train=False)([Example("a", image, "How many bars?", ("3",))])
    rows, cols = batch["image_crops"][0].tolist()
    rows, cols = max(rows, 1), max(cols, 1)
    # the published preprocessing: bicubic resize to the grid's size, [0, 1], mean = std = 0.5
    resized = np.asarray(image.resize((cols * CROP, rows * CROP), Image.BICUBIC), dtype=np.float32) / 255
    full = torch.from_numpy((resized - 0.5) / 0.5).permute(2, 0, 1)
    after = tok("\n\nQuestion: How many bars?\n\nAnswer:", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = ref(ref.image_embeds(full, rows, cols), [], after, bos=tok.eos_token_id)
        got = loaded.model(**batch).logits
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_shipped_reference_config_is_what_the_converter_writes_for_phi_tokens():
    """The full-size builds (`nmm_core.fullsize`) and the converter must describe one model."""
    from nmm_core.families import get_family
    from nmm_core.families.moondream import published_config

    shipped = MoondreamConfig.from_dict(get_family("moondream").load_reference_config()).to_dict()
    # Phi-1.5's tokenizer: <|endoftext|> is 50256, `<image>` is added after its 50,295 tokens
    assert shipped == published_config(image_token_id=50295, eos_token_id=50256).to_dict()


def test_a_published_hub_id_without_its_preset_is_refused_before_any_download(monkeypatch):
    from nmm_core.errors import PresetError
    from nmm_core.models import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refused = r"'vikhyatk/moondream2': .* only after conversion at a pinned revision; use its preset"
    with pytest.raises(PresetError, match=refused):
        load_model("vikhyatk/moondream2", family="moondream")
