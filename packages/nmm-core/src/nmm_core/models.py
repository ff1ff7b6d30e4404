"""Load a model + processor from a preset name, a local folder or a hub id."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmm_core.devices import pick_device, pick_dtype, require_bitsandbytes
from nmm_core.errors import ConfigError, PresetError
from nmm_core.families import Family, family_for_config, get_family
from nmm_core.presets import ModelPreset, all_presets, is_preset
from nmm_core.twins import read_marker, twin_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, resolved before anything heavy is loaded."""

    name: str  # what the user typed
    location: str | None  # a local folder or a hub id (None: a family's own parts, GILL's)
    revision: str | None
    family: Family
    preset: ModelPreset | None


@dataclass
class LoadedModel:
    """A model ready for training or generation, with what is needed to feed it."""

    model: Any
    processor: Any
    family: Family
    source: ModelSource
    quantization: str | None = None


def resolve_source(name: str, *, family: str | None = None, revision: str | None = None) -> ModelSource:
    """Preset name -> preset; existing folder -> local model; 'org/name' -> hub id (at `revision`)."""
    if revision and (is_preset(name) or Path(name).expanduser().is_dir()):
        raise PresetError(f"--model-revision applies to a bare hub id; '{name}' is "
                          + ("a preset, pinned to its own revision" if is_preset(name) else "a local folder"))
    if is_preset(name):
        preset = all_presets()[name]
        fam = get_family(preset.family)
        # a family with its own trainee builds its parts itself (GILL's): no core twin to build
        location = str(twin_path(preset)) if preset.tiny and fam.trainee is None else preset.hub_id
        return ModelSource(name, location, preset.revision, fam, preset)
    path = Path(name).expanduser()
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.exists():
            raise PresetError(f"model folder {path} has no config.json")
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PresetError(f"{config_file}: not a readable config.json ({exc})") from None
        return ModelSource(name, str(path), None, _folder_family(path, config, family), None)
    if name.count("/") == 1 and not name.startswith((".", "/")) and family is not None:
        return ModelSource(name, name, revision, get_family(family), None)
    raise PresetError(unknown_model(name, family))


def unknown_model(name: str, family: str | None, *, presets: Collection[str] | None = None,
                  families: Collection[str] | None = None) -> str:
    """Why `name` names no model: a hub id needs --model-family; otherwise the known presets (those
    of a domain where it names `presets` and `families`; by default every installed one)."""
    from nmm_core.families import FAMILIES

    known = ", ".join(all_presets() if presets is None else presets)
    if family is None and name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return (f"'{name}' looks like a hub id: add --model-family ({', '.join(families or FAMILIES)}) and pin "
                f"it with --model-revision <commit>; or use a preset: {known}")
    return f"unknown preset '{name}' (nor a model folder); known presets: {known}"


def _folder_family(path: Path, config: dict[str, Any], family: str | None) -> Family:
    """A local folder's family: its nmm.json marker's, or from config.json; --model-family must agree."""
    saved = read_marker(path).get("family")
    if family is not None and saved is not None and family != saved:
        raise PresetError(f"model folder {path} is a '{saved}' model (its nmm.json says so), not "
                          f"'{family}': drop --model-family or give {saved}")
    fam = family_for_config(config, hint=family or saved)
    model_type = config.get("model_type")
    if family is not None and fam.model_types and model_type not in fam.model_types:
        raise PresetError(f"model folder {path} holds a '{model_type}' model (config.json), which family "
                          f"'{family}' does not load: drop --model-family or give the right one")
    return fam


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set (read now: huggingface_hub reads it at import)."""
    return any(os.environ.get(var, "0") not in ("0", "", "false", "False")
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_cached_offline(name: str, *, family: str | None = None, revision: str | None = None,
                         weights: bool = True) -> None:
    """A hub model that cannot be loaded is a ConfigError naming --model now, before any data is prepared
    or run folder made: one the local Hugging Face cache lacks a file of (its config, tokenizer settings or,
    unless `weights` is False, its weights) must be downloadable: offline it is not, nor with no hub."""
    preset = all_presets().get(name)
    if preset is not None:
        if preset.tiny or not preset.hub_id:
            return  # built locally, or a family's own parts (GILL's)
        hub_id, revision, family = preset.hub_id, preset.revision, preset.family
    elif Path(name).expanduser().is_dir() or not (family and name.count("/") == 1):
        return  # a local folder, or not a hub id (resolve_source says what it is)
    else:
        hub_id = name
    fam = get_family(family)
    if fam.published_converter and (preset is None or fam.published_ready(hub_id, revision)):
        return  # converted once into the nmm cache, which holds it (a bare hub id: _load_location says why not)
    # a converted checkpoint's processor, too, comes from its converted copy, which is made from the weights
    check_hub_part(f"--model {name}", hub_id, revision, weights=weights or bool(fam.published_converter))


def check_hub_part(what: str, hub_id: str, revision: str | None, *, weights: bool = True,
                   config: str = "config.json") -> None:
    """A ConfigError starting with `what` unless the local Hugging Face cache holds `hub_id` (`config` is
    its first file: `model_index.json` for a diffusers pipeline) or, not offline, the hub answers for it."""
    from nmm_core.hub_files import hub_problem, missing_from_cache

    missing = missing_from_cache(hub_id, revision, weights=weights, config=config)
    if missing is None:
        return
    model = f"{what}: '{hub_id}'" + (f" at revision {revision}" if revision else "")
    if hub_offline():
        raise ConfigError(f"{model} is not in the local Hugging Face cache (no {missing}) and HF_HUB_OFFLINE "
                          "is set: download it once with the hub reachable, or use a tiny twin or a local folder")
    problem = hub_problem(hub_id, revision, config)
    if problem is not None:
        raise ConfigError(f"{model} is not in the local Hugging Face cache (no {missing}) and {problem}")


def _hub_error(source: ModelSource, exc: Exception) -> PresetError:
    offline = hub_offline()
    local = Path(source.location).is_dir()  # a local folder that fails to load is not the hub's fault
    hint = " (HF_HUB_OFFLINE is set: download it once with the hub reachable)" if offline and not local else ""
    return PresetError(
        f"cannot load '{source.location}'"
        + (f" at revision {source.revision}" if source.revision else "")
        + f"{hint}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    )


def _load_location(source: ModelSource) -> tuple[str, str | None]:
    """(folder or hub id, revision) to load from; a converted copy where the family needs one."""
    if source.family.published_converter and source.preset is not None and not source.preset.tiny:
        return str(source.family.local_published(source.location, source.revision)), None
    if source.family.published_converter and source.preset is None and not Path(source.location).is_dir():
        presets = [p.name for p in all_presets().values() if p.family == source.family.name and not p.tiny]
        raise PresetError(
            f"'{source.location}': a published {source.family.name} checkpoint loads into our model only "
            f"after conversion at a pinned revision; use its preset ({', '.join(presets) or 'none installed'})"
        )
    return source.location, source.revision


def load_processor(source: ModelSource, *, padding_side: str = "right"):
    """The source's processor (a tokenizer for plain-text families)."""
    from transformers import AutoProcessor, AutoTokenizer

    kwargs = dict(source.preset.processor_kwargs) if source.preset else {}
    loader = AutoProcessor if source.family.chat else AutoTokenizer
    source.family.model_cls()  # a family of ours registers its config and processor on import
    try:
        location, revision = _load_location(source)
        processor = loader.from_pretrained(location, revision=revision, **kwargs)
    except (OSError, ValueError) as exc:
        raise _hub_error(source, exc) from None
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = padding_side
    return processor


# dtypes bitsandbytes may pack 4-bit weights into (`bnb_4bit_quant_storage`)
QUANT_STORAGES = ("uint8", "bfloat16", "float16", "float32")


def quantization_config(family: Family, quantization: str, dtype, storage: str = "uint8"):
    """bitsandbytes settings: nf4 + double quantisation; vision tower, projector, head kept."""
    import torch
    from transformers import BitsAndBytesConfig

    require_bitsandbytes(quantization)
    skip = [*family.vision_prefixes, "lm_head"]
    if storage not in QUANT_STORAGES:
        raise ConfigError(f"--model-quant-storage must be one of {', '.join(QUANT_STORAGES)}, got {storage!r}")
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            # FSDP shards each wrapped layer as one dtype: packing 4-bit weights into the unquantised
            # weights' dtype (bf16) lets it shard them with the rest instead of leaving them whole
            bnb_4bit_quant_storage=getattr(torch, storage),
            llm_int8_skip_modules=skip,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def load_model(
    name: str,
    *,
    family: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    quantization: str | None = None,
    attn_implementation: str = "sdpa",
    padding_side: str = "right",
    revision: str | None = None,
    image_tokens: tuple[int | None, int | None] = (None, None),
    quant_storage: str = "uint8",
) -> LoadedModel:
    """Load model and processor; `name` is a preset, a local folder, or a hub id (+ family).

    `quantization` is None, "4bit", "8bit", or "auto" (the preset's default, e.g. QLoRA for
    LLaVA-1.5; none for local folders and twins). `image_tokens` is the (min, max) image-token
    budget set on the processor (`nmm_core.image_budget`; None: the processor's own);
    `quant_storage` is the dtype 4-bit weights are packed in (bf16 for FSDP).
    """
    source = resolve_source(name, family=family, revision=revision)
    if source.family.trainee is not None:
        raise PresetError(f"'{name}' is a {source.family.name} model: it is built by its own trainee and loaded by "
                          "its domain's own commands, not by core's loader")
    if quantization == "auto":
        quantization = source.preset.quantization if source.preset else None
    if quant_storage != "uint8" and quantization != "4bit":
        raise ConfigError(f"--model-quant-storage {quant_storage} applies to 4-bit weights "
                          f"(--model-quantization 4bit), not to quantization {quantization or 'none'}")
    torch_device = pick_device(device)
    torch_dtype = pick_dtype(dtype, torch_device)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "attn_implementation": attn_implementation}
    if quantization:
        kwargs["quantization_config"] = quantization_config(source.family, quantization, torch_dtype,
                                                          storage=quant_storage)
        kwargs["device_map"] = {"": torch_device}
    cls = source.family.model_cls()
    processor = load_processor(source, padding_side=padding_side)
    if image_tokens != (None, None):
        source.family.set_image_budget(processor, *image_tokens)
    try:
        location, revision = _load_location(source)
        model = cls.from_pretrained(location, revision=revision, **kwargs)
    except (OSError, ValueError) as exc:
        raise _hub_error(source, exc) from None
    if not quantization:
        model.to(torch_device)
    log.info("loaded %s (%s) on %s as %s", name, source.family.name, torch_device, torch_dtype)
    return LoadedModel(model, processor, source.family, source, quantization)
