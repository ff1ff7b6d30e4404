"""nmm_core.diffusion: tiny SD twin, save/load in diffusers layout, latents, pinned loading."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("diffusers")

import torch  # noqa: E402

from nmm_core.diffusion import (  # noqa: E402
    SD15_REPO,
    SD15_REVISION,
    build_sd15_random,
    build_tiny_sd,
    decode_latents,
    encode_latents,
    expand_unet_inputs,
    load_sd15,
    noise_scheduler,
)
from nmm_core.errors import ConfigError, PresetError  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_sd(seed=0)


def test_core_does_not_import_diffusers_until_used():
    code = "import sys, nmm_core, nmm_core.diffusion; print('diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tiny_twin_keeps_sd15_shapes(tiny):
    assert tiny.vae_scale == 8 and tiny.vae.config.latent_channels == 4
    assert tiny.tokenizer.model_max_length == 77
    ids = tiny.tokenizer(["a rest matrix"], padding="max_length", max_length=77).input_ids[0]
    assert len(ids) == 77 and ids[0] == tiny.tokenizer.bos_token_id == len(tiny.tokenizer) - 2
    assert tiny.tokenizer.eos_token_id == tiny.tokenizer.pad_token_id == len(tiny.tokenizer) - 1
    assert tiny.encode_text(["a", "b c"]).shape == (2, 77, 32)
    assert sum(p.numel() for p in tiny.unet.parameters()) < 2_000_000
    # the same seed builds the same weights, and the caller's random stream is left alone
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    again = build_tiny_sd(seed=0)
    assert torch.equal(torch.rand(1), expected)
    assert all(torch.equal(a, b) for a, b in zip(tiny.unet.state_dict().values(),
                                                 again.unet.state_dict().values(), strict=True))


def test_latent_round_trip_shapes_and_range(tiny):
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        latents = encode_latents(tiny.vae, images)
        assert latents.shape == (2, 4, 8, 8)
        torch.testing.assert_close(encode_latents(tiny.vae, images), latents)  # the mean: deterministic
        sampled = encode_latents(tiny.vae, images, sample=True, generator=torch.Generator().manual_seed(0))
        assert not torch.equal(sampled, latents)
        decoded = decode_latents(tiny.vae, latents)
    assert decoded.shape == (2, 3, 64, 64) and decoded.min() >= -1 and decoded.max() <= 1
    sched = noise_scheduler(tiny)
    assert sched.config.num_train_timesteps == 1000 and sched.config.beta_schedule == "scaled_linear"


def test_save_and_load_in_diffusers_layout_then_generate(tiny, tmp_path):
    folder = tiny.save(tmp_path / "tiny-sd")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["unet"][1] == "UNet2DConditionModel" and index["tokenizer"][1] == "CLIPTokenizer"
    loaded = load_sd15(folder, device="cpu")
    for a, b in ((tiny.unet, loaded.unet), (tiny.vae, loaded.vae), (tiny.text_encoder, loaded.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert loaded.tokenizer("a b").input_ids == tiny.tokenizer("a b").input_ids
    out = loaded.pipeline()(["a rest matrix"], num_inference_steps=2, height=64, width=64, output_type="np",
                            generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (1, 64, 64, 3)


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")
def test_hub_loading_needs_a_pinned_revision_and_fails_clearly_offline(monkeypatch, tmp_path):
    assert len(SD15_REVISION) == 40
    with pytest.raises(ConfigError, match="pinned 40-hex revision"):
        load_sd15("someone/some-sd-model")
    with pytest.raises(ConfigError, match="pinned 40-hex revision"):
        load_sd15(SD15_REPO, revision="main")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PresetError, match=f"{SD15_REPO}.*{SD15_REVISION}"):
        load_sd15(SD15_REPO, device="cpu")  # nothing cached in the test's HF_HOME
    (tmp_path / "empty").mkdir()
    with pytest.raises(PresetError, match="no model_index.json"):
        load_sd15(tmp_path / "empty")


def test_full_size_architecture_matches_sd15_parameter_counts():
    parts = build_sd15_random(device="meta")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(parts.unet) == 859_520_964
    assert count(parts.vae) == 83_653_863
    assert count(parts.text_encoder) == 123_060_480


def test_expanded_unet_matches_the_original_until_trained(tiny):
    wide = expand_unet_inputs(tiny.unet, 8).eval()
    assert wide.config.in_channels == 8
    latents, extra = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    text = torch.randn(1, 77, 32)
    t = torch.tensor([10])
    with torch.no_grad():
        base = tiny.unet(latents, t, encoder_hidden_states=text).sample
        both = wide(torch.cat([latents, extra], dim=1), t, encoder_hidden_states=text).sample
    torch.testing.assert_close(both, base)
    with pytest.raises(ConfigError, match="shrink"):
        expand_unet_inputs(tiny.unet, 2)
