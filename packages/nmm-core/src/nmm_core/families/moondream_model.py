"""Moondream2 (2024 releases) written with transformers' parts: SigLIP tower, MLP, Phi.

The published 2024 model (vikhyatk/moondream2, revisions 2024-05-20 to 2024-08-26) is a
SigLIP-so400m-shaped ViT at 378 px, a two-layer tanh-GELU MLP and a Phi-1.5-shaped language
model. An image is seen as a global 378 px view plus, for large images, a grid of up to 2x2
378 px crops of the resized image; the crops' patch features are tiled back into one map,
resized (bilinear) to the global view's patch grid and concatenated to the global features
channel-wise, so the MLP's input is twice the tower's width (2304 -> 8192 -> 2048). Every image
is 729 (27 x 27) tokens, spliced into the text at a placeholder token as Llava does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    GenerationMixin,
    PhiConfig,
    PhiModel,
    PretrainedConfig,
    PreTrainedModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from nmm_core.families.moondream_processing import MoondreamImageProcessor, MoondreamProcessor

MODEL_TYPE = "nmm_moondream"


class MoondreamConfig(PretrainedConfig):
    """Text (Phi) and vision (SigLIP) sub-configs, the projector's width, the image token."""

    model_type = MODEL_TYPE
    sub_configs = {"text_config": PhiConfig, "vision_config": SiglipVisionConfig}

    def __init__(
        self,
        text_config: dict[str, Any] | PhiConfig | None = None,
        vision_config: dict[str, Any] | SiglipVisionConfig | None = None,
        projector_hidden_size: int = 8192,
        image_token_id: int = 0,
        **kwargs: Any,
    ) -> None:
        if isinstance(text_config, dict) or text_config is None:
            text_config = PhiConfig(**{k: v for k, v in (text_config or {}).items() if k != "model_type"})
        if isinstance(vision_config, dict) or vision_config is None:
            vision_config = SiglipVisionConfig(
                **{k: v for k, v in (vision_config or {}).items() if k != "model_type"}
            )
        self.text_config = text_config
        self.vision_config = vision_config
        self.projector_hidden_size = projector_hidden_size
        self.image_token_id = image_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def image_seq_length(self) -> int:
        """Tokens per image: the global view's patch grid."""
        side = self.vision_config.image_size // self.vision_config.patch_size
        return side * side


class MoondreamProjector(nn.Module):
    """Global and local patch features (concatenated) -> text embedding width."""

    def __init__(self, config: MoondreamConfig) -> None:
        super().__init__()
        width = config.vision_config.hidden_size
        self.linear_1 = nn.Linear(2 * width, config.projector_hidden_size)
        self.act = nn.GELU(approximate="tanh")
        self.linear_2 = nn.Linear(config.projector_hidden_size, config.text_config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class MoondreamPreTrainedModel(PreTrainedModel):
    config_class = MoondreamConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _no_split_modules = ["PhiDecoderLayer", "SiglipEncoderLayer"]


class MoondreamModel(MoondreamPreTrainedModel):
    """Vision tower, projector and Phi decoder (no head)."""

    def __init__(self, config: MoondreamConfig) -> None:
        super().__init__(config)
        self.vision_tower = SiglipVisionModel(config.vision_config)
        self.multi_modal_projector = MoondreamProjector(config)
        self.language_model = PhiModel(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_image_features(self, pixel_values: torch.Tensor, image_crops: torch.Tensor) -> torch.Tensor:
        """Image embeddings for the language model, one (tokens, hidden) entry per image.

        The name transformers' VLMs use: core's vision-feature cache (`nmm_core.feature_cache`)
        wraps this method, so `forward` must reach the tower through it.

        pixel_values : shape (batch, 1 + max_crops, 3, S, S): the global view, then the crops
            row by row, zero-padded past `rows * cols`.
        image_crops : shape (batch, 2): (rows, cols) of each image's crop grid; (0, 0) when the
            image was small enough to be seen as the global view only.
        Returns shape (batch, tokens_per_image, text hidden size).
        """
        tower = self.vision_tower
        counts = 1 + image_crops.to(pixel_values.device).prod(dim=-1)
        valid = torch.arange(pixel_values.shape[1], device=counts.device)[None, :] < counts[:, None]
        # only the real views are cast and encoded, not the zero padding
        features = tower(pixel_values=pixel_values[valid].to(tower.dtype)).last_hidden_state  # (n_views, P, D)
        side = int(features.shape[1] ** 0.5)
        merged = []
        offset = 0
        for n, (rows, cols) in zip(counts.tolist(), image_crops.tolist(), strict=True):
            global_view = features[offset]
            if rows * cols == 0:
                local = global_view
            else:
                # each crop's (P, D) patches as a (D, side, side) map, tiled into the grid
                maps = features[offset + 1 : offset + n].transpose(1, 2).reshape(rows, cols, -1, side, side)
                grid = torch.cat([torch.cat(list(row), dim=2) for row in maps], dim=1)
                local = F.interpolate(grid[None], size=(side, side), mode="bilinear")[0]
                local = local.flatten(1).transpose(0, 1)
            merged.append(torch.cat([global_view, local], dim=-1))
            offset += n
        return self.multi_modal_projector(torch.stack(merged))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_crops: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        """The language model's output over the text embeddings with the image features in place of the
        image tokens; the rest (position ids, cache, use_cache) goes to the language model as given."""
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            if image_crops is None:
                image_crops = torch.zeros(pixel_values.shape[0], 2, dtype=torch.long,
                                          device=pixel_values.device)
            if input_ids is None:
                raise ValueError("pixel_values need input_ids: the image goes where the image tokens are")
            images = self.get_image_features(pixel_values, image_crops).to(inputs_embeds.dtype)
            mask = input_ids == self.config.image_token_id
            if int(mask.sum()) != images.shape[0] * images.shape[1]:
                raise ValueError(
                    f"Image features and image tokens do not match: {int(mask.sum())} tokens, "
                    f"{images.shape[0]} images of {images.shape[1]} features"
                )
            inputs_embeds = inputs_embeds.masked_scatter(mask[..., None], images.reshape(-1, images.shape[-1]))
        return self.language_model(attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)


class MoondreamForConditionalGeneration(MoondreamPreTrainedModel, GenerationMixin):
    """Moondream2 (2024) with Phi's biased language-model head; trainable and generating."""

    def __init__(self, config: MoondreamConfig) -> None:
        super().__init__(config)
        self.model = MoondreamModel(config)
        text = config.text_config
        self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=True)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_crops: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Logits (and, with `labels`, the shifted causal-LM loss).

        logits_to_keep : an int n keeps the last n positions (0: all); a tensor keeps those
            positions, so a loss over answer tokens only runs the head there only.
        """
        outputs = self.model(
            input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
            image_crops=image_crops, position_ids=position_ids, past_key_values=past_key_values,
            inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs,
        )
        hidden = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels,
                                      vocab_size=self.config.text_config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )


def register_auto_classes() -> None:
    """Let AutoConfig / AutoImageProcessor / AutoProcessor load a saved folder of ours."""
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor

    AutoConfig.register(MODEL_TYPE, MoondreamConfig, exist_ok=True)
    # one implementation (PIL resize, torch crops) serves either backend transformers asks for
    AutoImageProcessor.register(
        MoondreamConfig, image_processor_classes={"torchvision": MoondreamImageProcessor,
                                                  "pil": MoondreamImageProcessor}, exist_ok=True)
    AutoProcessor.register(MoondreamConfig, MoondreamProcessor, exist_ok=True)


# A saved folder names our config and processor classes; transformers' Auto classes must know them.
register_auto_classes()
