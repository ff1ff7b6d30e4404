"""GillModel: the frozen OPT (+ LoRA) and CLIP, and the modules GILL learns around them.

Learned here (saved beside the LoRA adapter, `persist.py`):
- `visual_embeddings` Linear(clip_dim -> visual_tokens * lm_dim): the captioning prefix;
- `img_tokens` (r, lm_dim): the [IMG] rows, used as input embeddings and as output rows (OPT
  ties its head to its embeddings). They live outside the LM's embedding matrix, so the LM is
  never resized and its config (and core's adapter fingerprint) stays the base model's;
- `mapper` (GILLMapper) -> SD conditioning; `ret_fc` / `visual_fc` / `logit_scale`: retrieval.

The [IMG] ids follow the LM's own rows, `first_img .. first_img + r - 1` (GILL: 50266..50273);
logits are the LM head's for ids below `first_img` and the [IMG] rows' for the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmm_core.chat import IGNORE_INDEX
from nmm_memes.gill.mapper import GILLMapper

PARTS = ("visual_embeddings", "visual_fc", "ret_fc", "mapper", "img_tokens", "logit_scale")


@dataclass(frozen=True)
class GillSpec:
    """Shapes of the learned parts; stored with them, so a saved set rebuilds exactly."""

    lm_dim: int
    vision_dim: int
    sd_dim: int
    sd_tokens: int
    first_img: int
    visual_tokens: int = 4
    img_tokens: int = 8
    ret_dim: int = 256
    mapper_dim: int = 512
    mapper_heads: int = 4
    mapper_layers: int = 4


class GillModel(nn.Module):
    """GILL around a (LoRA-wrapped) `OPTForCausalLM` and a `CLIPVisionModel`; returns its own loss."""

    def __init__(self, lm, vision, spec: GillSpec, *, text_encoder=None, gen_loss_scale: float = 1.0,
                 ret_loss_scale: float = 1.0) -> None:
        super().__init__()
        self.lm, self.vision, self.spec = lm, vision, spec
        # SD's frozen text encoder gives the mapper's training target (only training needs it).
        self.text_encoder = text_encoder
        self.gen_loss_scale, self.ret_loss_scale = gen_loss_scale, ret_loss_scale
        for frozen in (vision, text_encoder):
            for p in frozen.parameters() if frozen is not None else ():
                p.requires_grad_(False)
        embed = self.opt.get_input_embeddings().weight
        self.visual_embeddings = nn.Linear(spec.vision_dim, spec.visual_tokens * spec.lm_dim)
        self.visual_fc = nn.Linear(spec.vision_dim, spec.ret_dim)
        self.ret_fc = nn.Linear(spec.lm_dim, spec.ret_dim)
        self.mapper = GILLMapper(spec.lm_dim, spec.sd_dim, spec.sd_tokens, dim=spec.mapper_dim,
                                 heads=spec.mapper_heads, layers=spec.mapper_layers)
        # Start the [IMG] rows at the scale of the frozen rows, as GILL keeps their norms matched.
        # (A Python float: a 0-dim CUDA tensor times a CPU tensor is a device error.)
        rows = torch.randn(spec.img_tokens, spec.lm_dim) * float(embed.detach().float().std())
        self.img_tokens = nn.Parameter(rows)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def opt(self):
        """The OPTForCausalLM (LoRA layers in place when wrapped)."""
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    def train(self, mode: bool = True):
        # The frozen LM and CLIPs stay in eval mode (no dropout), as GILL keeps them.
        super().train(mode)
        for frozen in (self.lm, self.vision, self.text_encoder):
            if frozen is not None:
                frozen.eval()
        return self

    def state_dict(self, *args, **kwargs):
        """Trainable tensors only (LoRA + GILL's parts): what a checkpoint must hold.

        The frozen 7B base is never copied into checkpoints, and OPT's tied head would not
        survive safetensors' no-shared-tensor rule anyway. Resume loads with strict=False.
        """
        full = super().state_dict(*args, **kwargs)
        keep = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in full.items() if k in keep}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load what `state_dict()` saves: only missing *trainable* tensors count as missing."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        keep = {n for n, p in self.named_parameters() if p.requires_grad}
        result = result._replace(missing_keys=[k for k in result.missing_keys if k in keep])
        if strict and (result.missing_keys or result.unexpected_keys):
            raise RuntimeError(f"GillModel: missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
        return result

    def parts_state(self) -> dict[str, torch.Tensor]:
        """GILL's learned parts (no LoRA), for `persist.save_parts`."""
        full = nn.Module.state_dict(self)
        return {k: v.detach().cpu().contiguous() for k, v in full.items() if k.split(".")[0] in PARTS}

    # -- pieces ---------------------------------------------------------------------------

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (bs, T) -> input embeddings (bs, T, lm_dim); [IMG] ids take the learned rows."""
        table = self.opt.get_input_embeddings()
        base = table(ids.clamp(max=table.num_embeddings - 1))
        is_img = ids >= self.spec.first_img
        # not `img_tokens[index]`: its CPU backward sums repeated rows with atomics, in no fixed order
        img = F.embedding((ids - self.spec.first_img).clamp(0, self.spec.img_tokens - 1), self.img_tokens)
        return torch.where(is_img[..., None], img.to(base.dtype), base)

    def hidden(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (after OPT's final norm and projection), shape (bs, T, lm_dim)."""
        return self.opt.model.decoder(inputs_embeds=embeds, attention_mask=mask).last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(bs, T, first_img + r): the LM head below the [IMG] ids, the [IMG] rows above."""
        base = self.opt.lm_head(hidden).float()
        first = self.spec.first_img
        if base.shape[-1] >= first:
            base = base[..., :first]
        else:  # a vocabulary smaller than the tokenizer (the twin): ids never produced
            pad = base.new_full((*base.shape[:-1], first - base.shape[-1]), float("-inf"))
            base = torch.cat([base, pad], dim=-1)
        img = hidden.float() @ self.img_tokens.float().T
        return torch.cat([base, img], dim=-1)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """CLIP's pooled output (bs, vision_dim), no gradient (CLIP is frozen)."""
        with torch.no_grad():
            out = self.vision(pixel_values=pixel_values.to(self.vision.dtype))
        return out.pooler_output.float()

    def visual_prefix(self, features: torch.Tensor) -> torch.Tensor:
        """(bs, vision_dim) -> (bs, visual_tokens, lm_dim) in the LM's dtype."""
        prefix = self.visual_embeddings(features).view(features.shape[0], self.spec.visual_tokens, -1)
        return prefix.to(self.opt.get_input_embeddings().weight.dtype)

    def img_states(self, ids: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states at the r [IMG] positions of each row, (bs, r, lm_dim), float."""
        rows, cols = (ids >= self.spec.first_img).nonzero(as_tuple=True)
        return hidden[rows, cols].float().view(ids.shape[0], self.spec.img_tokens, -1)

    def conditioning(self, ids: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The mapper's SD conditioning (bs, sd_tokens, sd_dim): states + the [IMG] rows, as GILL."""
        return self.mapper(self.img_states(ids, hidden) + self.img_tokens.float())

    def text_retrieval(self, ids: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Unit retrieval embeddings of captions from the first [IMG] state, (bs, ret_dim)."""
        return F.normalize(self.ret_fc(self.img_states(ids, hidden)[:, 0]), dim=-1)

    def image_retrieval(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unit retrieval embeddings of images, (bs, ret_dim)."""
        return F.normalize(self.visual_fc(self.image_features(pixel_values)), dim=-1)

    def sd_target(self, sd_ids: torch.Tensor) -> torch.Tensor:
        """sd_ids (bs, sd_tokens) -> SD's text-encoder output (bs, sd_tokens, sd_dim), float, no gradient."""
        if self.text_encoder is None:
            raise RuntimeError("GillModel was built without SD's text encoder: it cannot train the mapper")
        with torch.no_grad():
            return self.text_encoder(sd_ids)[0].float()

    # -- training -------------------------------------------------------------------------

    @staticmethod
    def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=IGNORE_INDEX)

    def forward(self, pixel_values: torch.Tensor, cap_ids: torch.Tensor, cap_mask: torch.Tensor,
                cap_labels: torch.Tensor, gen_ids: torch.Tensor, gen_mask: torch.Tensor, gen_labels: torch.Tensor,
                sd_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Captioning + generation (+ retrieval) losses of one batch; `loss` is their weighted sum.

        cap_* : (bs, Tc) image -> caption tokens; gen_* : (bs, Tg) caption + [IMG] tokens, labels
        on [IMG] only; sd_ids : (bs, sd_tokens) SD's token ids of the caption (the mapper's target is
        their text-encoder output).
        """
        features = self.image_features(pixel_values)
        prefix = self.visual_prefix(features)
        n = prefix.shape[1]
        embeds = torch.cat([prefix, self.embed(cap_ids)], dim=1)
        mask = torch.cat([cap_mask.new_ones(cap_mask.shape[0], n), cap_mask], dim=1)
        labels = torch.cat([cap_labels.new_full((cap_labels.shape[0], n), IGNORE_INDEX), cap_labels], dim=1)
        cap_loss = self.lm_loss(self.logits(self.hidden(embeds, mask)), labels)

        hidden = self.hidden(self.embed(gen_ids), gen_mask)
        gen_lm = self.lm_loss(self.logits(hidden), gen_labels)
        mse = F.mse_loss(self.conditioning(gen_ids, hidden), self.sd_target(sd_ids))
        loss = cap_loss + gen_lm + self.gen_loss_scale * mse
        out = {"cap_loss": cap_loss.detach(), "gen_lm_loss": gen_lm.detach(), "gen_mse": mse.detach()}
        if self.ret_loss_scale > 0 and gen_ids.shape[0] > 1:
            text = self.text_retrieval(gen_ids, hidden)
            image = F.normalize(self.visual_fc(features), dim=-1)
            sims = self.logit_scale.exp() * image @ text.T
            target = torch.arange(sims.shape[0], device=sims.device)
            ret = (F.cross_entropy(sims, target) + F.cross_entropy(sims.T, target)) / 2
            loss = loss + self.ret_loss_scale * ret
            out["ret_loss"] = ret.detach()
        return {"loss": loss, **out}

    # -- inference ------------------------------------------------------------------------

    @torch.no_grad()
    def caption(self, pixel_values: torch.Tensor, prompt_ids: torch.Tensor, *, eos_id: int,
                max_new_tokens: int = 32) -> list[int]:
        """Greedy caption ids for one image; [IMG] ids are never produced here."""
        prefix = self.visual_prefix(self.image_features(pixel_values))
        ids = prompt_ids
        out: list[int] = []
        for _ in range(max_new_tokens):
            embeds = torch.cat([prefix, self.embed(ids)], dim=1)
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
            logits = self.logits(self.hidden(embeds, mask)[:, -1:])[0, -1]
            logits[self.spec.first_img:] = float("-inf")
            token = int(logits.argmax())
            if token == eos_id:
                break
            out.append(token)
            ids = torch.cat([ids, ids.new_tensor([[token]])], dim=1)
        return out

    @torch.no_grad()
    def encode_captions(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions ending in the r [IMG] tokens -> (SD conditioning, unit retrieval embeddings)."""
        hidden = self.hidden(self.embed(ids), mask)
        return self.conditioning(ids, hidden), self.text_retrieval(ids, hidden)
