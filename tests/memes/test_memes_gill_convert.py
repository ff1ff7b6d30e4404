"""GILL's published checkpoint -> our parts, checked on a tiny checkpoint built in GILL's naming.

The reference below is written from GILL's published structure (`gill/models.py`, `layers.py`:
GILLModel's `visual_embeddings`, `visual_fc`, `logit_scale`, `ret_text_hidden_fcs` (linear) and
`gen_text_hidden_fcs` (gill_mapper: fc -> nn.Transformer over learned `query_embs` -> model),
saved as `state_dict` of `GILL.model` without the frozen LM/CLIP, embedding pruned to the
[IMG] rows), so the test compares outputs, not only names.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmm_core.errors import DataError
from nmm_core.workflows import ModelSettings

pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # torch, pre-norm layers

LM, CLIP, SD_DIM, SD_TOKENS, DIM, LAYERS = 64, 32, 32, 77, 48, 2


class GillFcReference(nn.Module):
    """GILL's TextFcLayer in 'gill_mapper' mode: its attribute names and its forward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(LM, DIM)
        self.tfm = nn.Transformer(batch_first=True, norm_first=True, d_model=DIM, num_encoder_layers=LAYERS,
                                  num_decoder_layers=LAYERS, dim_feedforward=DIM * 4, dropout=0.0, nhead=4)
        self.model = nn.Linear(DIM, SD_DIM)
        self.query_embs = nn.Parameter(torch.randn(1, SD_TOKENS, DIM))

    def forward(self, x, input_embs):
        x = self.fc(x + input_embs)
        return self.model(self.tfm(x, self.query_embs.repeat(x.shape[0], 1, 1)))


def _published_state() -> tuple[dict, GillFcReference, dict]:
    torch.manual_seed(7)
    gen = GillFcReference().eval()
    linear = {"visual_embeddings": nn.Linear(CLIP, 4 * LM), "visual_fc": nn.Linear(CLIP, 32),
              "ret_text_hidden_fcs.0.model": nn.Linear(LM, 32)}
    state = {f"model.gen_text_hidden_fcs.0.{k}": v for k, v in gen.state_dict().items()}
    for name, layer in linear.items():
        state.update({f"model.{name}.{k}": v for k, v in layer.state_dict().items()})
    state["model.logit_scale"] = torch.tensor(2.5)
    state["model.input_embeddings.weight"] = torch.randn(8, LM)
    state["module.model.logit_scale"] = state["model.logit_scale"]  # prune_model_ckpt.py keeps both names
    return state, gen, linear


def test_gill_checkpoint_in_published_naming_loads_with_equal_outputs(tmp_path):
    from nmm_memes.gill.parts import load_parts
    from nmm_memes.gill.persist import fresh_model
    from nmm_memes.gill.settings import GillSettings

    state, gen, linear = _published_state()
    path = tmp_path / "pretrained_ckpt.pth.tar"
    torch.save({"state_dict": state}, path)
    parts = load_parts(ModelSettings(model="tiny-gill"), GillSettings(checkpoint=str(path)))
    model = fresh_model(parts, parts.loaded.model).eval()
    # sizes come from the file, not the twin's defaults (mapper 32 wide, 1 layer)
    assert (model.spec.mapper_dim, model.spec.mapper_layers, model.spec.ret_dim) == (DIM, LAYERS, 32)
    torch.testing.assert_close(model.img_tokens.data, state["model.input_embeddings.weight"])
    assert float(model.logit_scale.detach()) == 2.5

    states = torch.randn(2, 8, LM)
    with torch.no_grad():
        ours = model.mapper(states + model.img_tokens)
        theirs = gen(states, state["model.input_embeddings.weight"])
        torch.testing.assert_close(ours, theirs)
        features = torch.randn(2, CLIP)
        torch.testing.assert_close(model.visual_prefix(features),
                                   linear["visual_embeddings"](features).view(2, 4, LM))
        torch.testing.assert_close(model.visual_fc(features), linear["visual_fc"](features))
        torch.testing.assert_close(model.ret_fc(states[:, 0]), linear["ret_text_hidden_fcs.0.model"](states[:, 0]))


def test_gill_checkpoint_with_foreign_names_or_missing_parts_is_refused(tmp_path):
    from nmm_memes.gill.convert import convert_state_dict, load_checkpoint, map_key

    assert map_key("module.model.gen_text_hidden_fcs.0.tfm.decoder.norm.weight") == \
        "mapper.transformer.decoder.norm.weight"
    assert map_key("model.lm.model.decoder.layers.0.fc1.weight") is None  # frozen OPT: skipped
    with pytest.raises(DataError, match="not a GILL"):
        convert_state_dict({"model.connector.weight": torch.zeros(1)}, img_tokens=8)
    state, _, _ = _published_state()
    del state["model.gen_text_hidden_fcs.0.query_embs"]
    torch.save({"state_dict": state}, tmp_path / "ckpt.pth.tar")
    with pytest.raises(DataError, match="mapper.queries"):
        load_checkpoint(tmp_path / "ckpt.pth.tar", img_tokens=8)
    with pytest.raises(DataError, match="no such file"):
        load_checkpoint(tmp_path / "nothing", img_tokens=8)


def test_gill_mapper_at_full_size_has_the_published_parameter_count():
    """GILL's gill_mapper for OPT-6.7B -> SD1.5: fc 2,097,664 + transformer 29,427,712 + out 393,984
    + queries 39,424 = 31,958,784 (configs/PROVENANCE.md); built on the meta device, no memory."""
    from nmm_memes.gill.mapper import GILLMapper

    with torch.device("meta"):
        mapper = GILLMapper(4096, 768, 77)
    count = {name: sum(p.numel() for p in getattr(mapper, name).parameters())
             for name in ("proj_in", "transformer", "proj_out")}
    assert count == {"proj_in": 2_097_664, "transformer": 29_427_712, "proj_out": 393_984}
    assert mapper.queries.numel() == 39_424
    assert sum(p.numel() for p in mapper.parameters()) == 31_958_784
