"""Architecture families: how core builds, formats, adapts and quantizes each kind of VLM.

A family is the *how* (model class, chat format, module layout); a preset (`nmm_core.presets`)
is the *what* (a named checkpoint of a family). Descriptors here import nothing heavy, so
listing them is instant; each family's builders live in its own module, imported on use.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nmm_core.errors import PresetError
from nmm_core.records import ImageLimits

MARKER = "nmm.json"  # beside config.json: which family a saved model belongs to


@dataclass(frozen=True)
class Family:
    """What core needs to know about one architecture family."""

    name: str
    model_types: tuple[str, ...]  # config.json `model_type` values that belong to this family
    model_class: str  # a transformers class name, or "module:Class" for one of ours
    module: str  # nmm_core.families submodule with `build_twin`
    answer_prefix: str  # text between the generation prompt and the answer
    end_of_turn: str  # token that closes the assistant's answer (carries loss)
    language_prefix: str  # module path of the language model, where LoRA goes by default
    lora_projections: tuple[str, ...]
    vision_prefixes: tuple[str, ...]  # vision tower + projector: frozen, kept out of 4-bit
    projector: str
    reference_config: str | None = None  # the real model's config.json, shipped in ./configs
    nested_images: bool = False  # processor wants [[img], [img]] for a batch
    processor_kwargs: dict[str, Any] = field(default_factory=dict)  # extra processor call args
    # where the processor's pixel_values keep their channels (`nmm_core.device_pixels`); None:
    # they are normalised in the data loader, as the processor does by default
    pixel_layout: str | None = None
    chat: bool = True  # False: plain "prompt answer</s>" text, no chat template
    # "module:function" (hub_id, revision) -> local folder: for published checkpoints that only
    # load into our model class after conversion; the module's `converted_folder` (same arguments) says where
    published_converter: str | None = None
    # "module:function" (TrainConfig) -> workflows.Trainee: for a model of a domain's own that
    # core's LoRA trainee does not build (GILL); `run_train` trains its presets with it
    trainee: str | None = None
    # "module:function" (a command's config) -> [(flag, hub id or folder, revision, first file)]: the models
    # that trainee loads beside `--model` (GILL's OPT, CLIP, SD), checked with it before any run folder
    hub_parts: str | None = None
    # what the processor refuses to resize: such records are skipped when the data is validated
    image_limits: ImageLimits = ImageLimits()

    def builder(self):
        """The family's module (twin and full-size builders)."""
        return importlib.import_module(f"nmm_core.families.{self.module}")

    def model_cls(self):
        """The model class (imports transformers)."""
        if ":" in self.model_class:
            module, name = self.model_class.split(":")
            return getattr(importlib.import_module(module), name)
        import transformers

        return getattr(transformers, self.model_class)

    def local_published(self, hub_id: str, revision: str | None) -> Path:
        """The converted local copy of a published checkpoint (downloaded and converted once)."""
        module, name = self.published_converter.split(":")
        return getattr(importlib.import_module(module), name)(hub_id, revision)

    def published_ready(self, hub_id: str, revision: str | None) -> bool:
        """Whether the converted local copy of a published checkpoint is already built (no hub needed)."""
        module = importlib.import_module(self.published_converter.split(":")[0])
        return (module.converted_folder(hub_id, revision) / MARKER).is_file()

    def own_trainee(self):
        """The function that builds this family's trainee, or None for core's LoRA trainee."""
        if self.trainee is None:
            return None
        module, name = self.trainee.split(":")
        return getattr(importlib.import_module(module), name)

    def own_hub_parts(self, config: Any) -> list[tuple[str, str, str | None, str]]:
        """The models this family's own trainee loads beside `--model` for `config` (`hub_parts`)."""
        if self.hub_parts is None:
            return []
        module, name = self.hub_parts.split(":")
        return list(getattr(importlib.import_module(module), name)(config))

    def image_token_range(self, processor) -> tuple[int, int]:
        """(fewest, most) tokens one image costs under `processor`'s settings (`nmm_core.image_budget`)."""
        return self.builder().image_token_range(processor)

    def set_image_budget(self, processor, min_tokens: int | None, max_tokens: int | None) -> None:
        """Bound the tokens one image costs, on `processor` itself (None: keep that bound as it is)."""
        self.builder().set_image_budget(processor, min_tokens, max_tokens)

    def lora_target_regex(self, projections: tuple[str, ...] | None = None) -> str:
        """A peft `target_modules` regex matching the language model's projections only."""
        names = "|".join(projections or self.lora_projections)
        prefix = self.language_prefix.replace(".", r"\.")
        return rf"^{prefix}\.layers\.\d+\..*\b({names})$"

    def load_reference_config(self) -> dict[str, Any]:
        """The real model's config.json (for full-size builds with random weights)."""
        if self.reference_config is None:
            raise PresetError(f"family '{self.name}' ships no reference config")
        text = resources.files("nmm_core.families").joinpath("configs", self.reference_config)
        return json.loads(text.read_text())


_LLAMA_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# transformers' Llava module layout (our TinyLLaVA and Moondream classes follow it too)
_LLAVA_LAYOUT: dict[str, Any] = {"language_prefix": "model.language_model",
                                 "vision_prefixes": ("model.vision_tower", "model.multi_modal_projector"),
                                 "projector": "model.multi_modal_projector"}
# a Phi language model: its chat turn ends at <|endoftext|>, its projections are named Phi's way
_PHI_TEXT: dict[str, Any] = {"answer_prefix": " ", "end_of_turn": "<|endoftext|>",
                             "lora_projections": ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2")}

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="qwen2_vl",
            model_types=("qwen2_vl",),
            model_class="Qwen2VLForConditionalGeneration",
            module="qwen2_vl",
            answer_prefix="",
            end_of_turn="<|im_end|>",
            language_prefix="model.language_model",
            lora_projections=_LLAMA_PROJ,
            vision_prefixes=("model.visual",),
            projector="model.visual.merger",
            reference_config="qwen2-vl-2b-instruct.json",
            # transformers >= 5.17: M-RoPE positions need the image-token mask
            processor_kwargs={"return_mm_token_type_ids": True},
            pixel_layout="patch-rows",
            image_limits=ImageLimits(max_aspect_ratio=200),  # transformers' smart_resize raises beyond it
        ),
        Family(
            name="idefics3",
            model_types=("idefics3", "smolvlm"),
            model_class="Idefics3ForConditionalGeneration",
            module="idefics3",
            answer_prefix=" ",
            end_of_turn="<end_of_utterance>",
            language_prefix="model.text_model",
            lora_projections=_LLAMA_PROJ,
            vision_prefixes=("model.vision_model", "model.connector"),
            projector="model.connector",
            reference_config="smolvlm-base.json",
            nested_images=True,
            # no pixel_layout: the processor pads tiles into a float32 tensor even when asked for
            # raw pixels, and the model finds padding tiles by their being zeros after normalisation
        ),
        Family(
            name="llava",
            model_types=("llava",),
            model_class="LlavaForConditionalGeneration",
            module="llava",
            answer_prefix=" ",
            end_of_turn="</s>",
            lora_projections=_LLAMA_PROJ,
            **_LLAVA_LAYOUT,
            reference_config="llava-1.5-7b-hf.json",
            pixel_layout="channels",
        ),
        Family(
            name="tinyllava",
            model_types=(),  # saved as model_type "llava"; chosen by preset, never by guess
            model_class="nmm_core.families.tinyllava_model:TinyLlavaForConditionalGeneration",
            module="tinyllava",
            **_PHI_TEXT,
            **_LLAVA_LAYOUT,
            reference_config="tinyllava-phi-2-siglip-3.1b.json",
            pixel_layout="channels",
        ),
        Family(
            name="moondream",
            model_types=("nmm_moondream",),  # our own config class (published: "moondream1")
            model_class="nmm_core.families.moondream_model:MoondreamForConditionalGeneration",
            module="moondream",
            **_PHI_TEXT,
            **_LLAVA_LAYOUT,
            # ours, from the release's hard-coded dimensions (its config.json holds none); the
            # token ids are Phi-1.5's tokenizer's, with `<image>` added after its 50,295 tokens
            reference_config="moondream2-2024.json",
            published_converter="nmm_core.families.moondream_convert:prepare_published",
        ),
        Family(
            name="opt_clip",
            model_types=("opt",),
            model_class="OPTForCausalLM",
            module="opt_clip",
            answer_prefix=" ",
            end_of_turn="</s>",
            language_prefix="model.decoder",
            lora_projections=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
            vision_prefixes=(),
            projector="",
            reference_config="opt-6.7b.json",
            chat=False,
        ),
    )
}


def get_family(name: str) -> Family:
    """The family registered under exactly `name`."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise PresetError(
            f"unknown model family '{name}'; known: {', '.join(sorted(FAMILIES))}"
        ) from None


def register_family(family: Family) -> Family:
    """Add a domain's own family (before its presets name it); a different one under a taken name raises."""
    if FAMILIES.setdefault(family.name, family) != family:
        raise PresetError(f"model family '{family.name}' is registered twice, differently")
    return family


def family_for_config(config: dict[str, Any], *, hint: str | None = None) -> Family:
    """The family of a saved model, from its config.json (or the family name saved beside it)."""
    if hint is not None:
        return get_family(hint)
    model_type = config.get("model_type")
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise PresetError(
        f"model_type '{model_type}' is not a supported family; supported: "
        + ", ".join(t for f in FAMILIES.values() for t in f.model_types)
    )
