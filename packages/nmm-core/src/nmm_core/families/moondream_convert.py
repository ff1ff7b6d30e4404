"""Convert a published Moondream2 (2024 layout) checkpoint to our module names.

Published names (the remote code's module paths, revisions 2024-05-20 .. 2024-08-26):
`vision_encoder.encoder.model.visual.{patch_embed.linear, pos_embed, blocks.N.{norm1, attn.qkv,
attn.proj, norm2, mlp.fc1, mlp.fc2}, norm}`, `vision_encoder.projection.mlp.{fc1, fc2}`,
`text_model.transformer.{embd.wte, h.N.{ln, mixer.Wqkv, mixer.out_proj, mlp.fc1, mlp.fc2}}`,
`text_model.lm_head.{ln, linear}`, and, from 2024-08-26, `region_model.*` (a detection head
that question answering does not use: dropped). Fused q/k/v weights are split in q, k, v order
(the published code chunks them so); the Linear patch embedding over (channel, row, column)
flattened patches is the same map as SigLIP's 14x14 stride-14 convolution, reshaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmm_core.errors import DataError
from nmm_core.weights import read_weights

if TYPE_CHECKING:
    from nmm_core.families.moondream_model import MoondreamConfig, MoondreamForConditionalGeneration

_VIS = "vision_encoder.encoder.model.visual."
_TXT = "text_model.transformer."
_DROPPED = ("region_model.",)
_OUR_VIS = "model.vision_tower.encoder.layers.{n}."
_OUR_TXT = "model.language_model.layers.{n}."

# (published pattern, our name or names); {n} is the block number. Several names: a fused
# weight split into equal parts along its output rows.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (_VIS + r"patch_embed\.linear\.(weight|bias)", ("model.vision_tower.embeddings.patch_embedding.{p}",)),
    (_VIS + r"pos_embed", ("model.vision_tower.embeddings.position_embedding.weight",)),
    (_VIS + r"blocks\.(\d+)\.norm1\.(weight|bias)", (_OUR_VIS + "layer_norm1.{p}",)),
    (_VIS + r"blocks\.(\d+)\.norm2\.(weight|bias)", (_OUR_VIS + "layer_norm2.{p}",)),
    (_VIS + r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)",
     tuple(_OUR_VIS + f"self_attn.{x}_proj.{{p}}" for x in "qkv")),
    (_VIS + r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", (_OUR_VIS + "self_attn.out_proj.{p}",)),
    (_VIS + r"blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", (_OUR_VIS + "mlp.{f}.{p}",)),
    (_VIS + r"norm\.(weight|bias)", ("model.vision_tower.post_layernorm.{p}",)),
    (r"vision_encoder\.projection\.mlp\.fc1\.(weight|bias)", ("model.multi_modal_projector.linear_1.{p}",)),
    (r"vision_encoder\.projection\.mlp\.fc2\.(weight|bias)", ("model.multi_modal_projector.linear_2.{p}",)),
    (_TXT + r"embd\.wte\.weight", ("model.language_model.embed_tokens.weight",)),
    (_TXT + r"h\.(\d+)\.ln\.(weight|bias)", (_OUR_TXT + "input_layernorm.{p}",)),
    (_TXT + r"h\.(\d+)\.mixer\.Wqkv\.(weight|bias)",
     tuple(_OUR_TXT + f"self_attn.{x}_proj.{{p}}" for x in "qkv")),
    (_TXT + r"h\.(\d+)\.mixer\.out_proj\.(weight|bias)", (_OUR_TXT + "self_attn.dense.{p}",)),
    (_TXT + r"h\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", (_OUR_TXT + "mlp.{f}.{p}",)),
    (r"text_model\.lm_head\.ln\.(weight|bias)", ("model.language_model.final_layernorm.{p}",)),
    (r"text_model\.lm_head\.linear\.(weight|bias)", ("lm_head.{p}",)),
)


def _fields(groups: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for g in groups:
        if g.isdigit():
            out["n"] = g
        elif g in ("fc1", "fc2"):
            out["f"] = g
        else:
            out["p"] = g
    return out


def map_key(key: str) -> tuple[str, ...]:
    """Our name(s) for one published weight name ((): dropped); unknown names are an error."""
    if key.startswith(_DROPPED):
        return ()
    for pattern, names in _RULES:
        match = re.fullmatch(pattern, key)
        if match:
            fields = _fields(match.groups())
            return tuple(name.format(**fields) for name in names)
    raise DataError(f"weight '{key}': not a Moondream2 (2024 layout) weight name")


def _reshape(name: str, value, vision_patch: int):
    if name.endswith("embeddings.patch_embedding.weight"):  # (D, 3*p*p) -> (D, 3, p, p)
        return value.reshape(value.shape[0], -1, vision_patch, vision_patch)
    if name.endswith("embeddings.position_embedding.weight"):  # (1, P, D) -> (P, D)
        return value.reshape(-1, value.shape[-1])
    return value


def convert_state_dict(state: Mapping[str, Any], *, patch_size: int = 14) -> dict[str, Any]:
    """Rename, split fused q/k/v, reshape the patch and position embeddings."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        names = map_key(key)
        if not names:
            continue
        parts = value.chunk(len(names), dim=0) if len(names) > 1 else (value,)
        for name, part in zip(names, parts, strict=True):
            if name in out:
                raise DataError(f"weight '{key}': maps onto '{name}' twice")
            out[name] = _reshape(name, part, patch_size).contiguous()
    return out


def load_converted(state: Mapping[str, Any], config: MoondreamConfig) -> MoondreamForConditionalGeneration:
    """Our model with the published weights `state`; any weight missing or left over is an error."""
    from nmm_core.families.moondream_model import MoondreamForConditionalGeneration

    converted = convert_state_dict(state, patch_size=config.vision_config.patch_size)
    # kept in the checkpoint's dtype (the 2024 releases are float16): half the disk of float32
    model = MoondreamForConditionalGeneration._from_config(config, dtype=next(iter(converted.values())).dtype)
    # checked here: load_state_dict's own size check is a RuntimeError listing every tensor
    ours = model.state_dict()
    wrong = [f"{name} {tuple(value.shape)} (config: {tuple(ours[name].shape)})"
             for name, value in converted.items() if name in ours and value.shape != ours[name].shape]
    if wrong:
        raise DataError(f"converted weights do not fit the config's dimensions: {', '.join(wrong[:3])}")
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise DataError(f"converted weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def convert_folder(src: str | Path, out: str | Path, *, text: dict[str, Any] | None = None,
                   vision: dict[str, Any] | None = None, projector_hidden_size: int | None = None,
                   multi_crop_min_size: int | None = None) -> MoondreamForConditionalGeneration:
    """Convert a downloaded published snapshot (weights + tokenizer files) into `out`; the model.

    The snapshot's `config.json` holds no dimensions (the published code hard-codes them), so
    the 2024 release's dimensions (`moondream.PUBLISHED_*`) are used, and checked against the
    weights when they are loaded; the keyword arguments replace them (tiny checkpoints in tests).
    """
    from transformers import AutoTokenizer

    from nmm_core.families import moondream
    from nmm_core.twins import write_marker

    src, out = Path(src), Path(out)
    vision = vision or moondream.PUBLISHED_VISION
    tokenizer = AutoTokenizer.from_pretrained(src)
    processor = moondream.make_processor(
        tokenizer, crop_size=vision["image_size"], patch_size=vision["patch_size"],
        multi_crop_min_size=multi_crop_min_size or moondream.PUBLISHED_MULTI_CROP_MIN_SIZE)
    config = moondream.published_config(
        image_token_id=processor.image_token_id, eos_token_id=tokenizer.eos_token_id, text=text, vision=vision,
        projector_hidden_size=projector_hidden_size or moondream.PUBLISHED_PROJECTOR_HIDDEN)
    if processor.image_token_id >= config.text_config.vocab_size:
        raise DataError(f"{src}: the tokenizer has no free embedding row for the image token")
    model = load_converted(read_weights(src), config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    write_marker(out, family="moondream", converted_from=str(src))
    return model


def converted_folder(hub_id: str, revision: str | None) -> Path:
    """Where `prepare_published` keeps `hub_id` at `revision` converted (complete once it holds the marker)."""
    from nmm_core import __version__
    from nmm_core.files import cache_root

    return cache_root() / "converted" / f"{hub_id.replace('/', '--')}-{revision}-core{__version__}"


def prepare_published(hub_id: str, revision: str) -> Path:
    """A local folder with `hub_id` at `revision` converted to our form (downloaded, converted once).

    Needs the hub (or its local cache); never called by the tests.
    """
    from huggingface_hub import snapshot_download

    from nmm_core.files import build_folder
    from nmm_core.twins import MARKER

    def build(tmp: Path) -> None:
        snapshot = snapshot_download(hub_id, revision=revision,
                                     allow_patterns=["*.safetensors", "*.json", "*.txt", "*.model"])
        convert_folder(snapshot, tmp)

    return build_folder(converted_folder(hub_id, revision), build, marker=MARKER)
