"""What a command can know about its model before loading it: whether it is there to load, which
images its processor accepts, and the image-token budget an adapter was trained at."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmm_core.errors import PresetError
from nmm_core.image_budget import check_budget_fits, resolve_budget
from nmm_core.models import resolve_source
from nmm_core.records import ImageLimits

if TYPE_CHECKING:
    from nmm_core.workflows import ModelSettings


def check_model_source(model: ModelSettings, adapter: str | None = None, config: Any = None) -> None:
    """Fail before any work: an unknown preset, a hub model offline and not cached (with the command's
    `config`, also a part its family's own trainee loads: `Family.hub_parts`), an image-token budget its
    family cannot keep, or an adapter folder made for another family."""
    from nmm_core.families import get_family
    from nmm_core.lora import read_adapter_marker
    from nmm_core.models import check_cached_offline, check_hub_part, unknown_model
    from nmm_core.presets import all_presets

    name = model.model
    if not Path(name).expanduser().is_dir() and not (model.family and name.count("/") == 1):
        if name not in all_presets():
            raise PresetError(unknown_model(name, model.family))
    if model.revision:
        resolve_source(name, family=model.family, revision=model.revision)  # a revision is for hub ids only
    check_cached_offline(name, family=model.family, revision=model.revision)  # before any data is prepared
    preset = all_presets().get(name)
    if config is not None and preset is not None and not preset.tiny:  # a twin's parts are built locally
        for flag, hub_id, revision, first in get_family(preset.family).own_hub_parts(config):
            if not Path(hub_id).expanduser().is_dir():
                check_hub_part(f"--model {name} ({flag})", hub_id, revision, config=first)
    check_budget_fits(name, family=model.family, revision=model.revision,
                      min_tokens=model.min_image_tokens, max_tokens=model.max_image_tokens)
    if adapter is None:
        return
    folder = Path(adapter)
    marker = read_adapter_marker(folder)
    family = model.family or (all_presets()[name].family if name in all_presets() else None)
    if family and marker.get("family") and marker["family"] != family:
        raise PresetError(f"adapter {folder} was trained for '{marker.get('base')}' "
                          f"({marker['family']}), not for '{name}' ({family})")


def model_image_limits(model: ModelSettings) -> ImageLimits | None:
    """The image shapes the model's processor accepts, from its family (None: not a model core knows)."""
    try:
        return resolve_source(model.model, family=model.family, revision=model.revision).family.image_limits
    except PresetError:
        return None  # an error the model's loading will report


def budget_for(model: ModelSettings, adapter: str | None) -> ModelSettings:
    """`model` at the image-token budget `adapter` was trained at, unless a budget was given (a warning
    then names both where they differ)."""
    low, high = resolve_budget(model.min_image_tokens, model.max_image_tokens, adapter)
    return replace(model, min_image_tokens=low, max_image_tokens=high)
