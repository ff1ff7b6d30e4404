"""Model presets: named checkpoints of a family, registered by packages through entry points.

Each installed package announces a list of `ModelPreset`s under the entry-point group
`nmm.presets`; the registry is keyed by exact name and a name claimed twice is an error that
names both packages (no fuzzy matching, no silent override).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from nmm_core.errors import PresetError
from nmm_core.families import get_family

ENTRY_POINT_GROUP = "nmm.presets"
# A full commit hash, or a dated release tag as moondream2 publishes (`2025-01-09`).
_PINNED = re.compile(r"^([0-9a-f]{40}|\d{4}-\d{2}-\d{2})$")


def is_pinned(revision: str | None) -> bool:
    """Whether `revision` names one fixed snapshot (not `main` or another branch)."""
    return bool(revision and _PINNED.match(revision))


@dataclass(frozen=True)
class ModelPreset:
    """A named model: a hub checkpoint at a pinned revision, or a tiny twin built locally."""

    name: str
    family: str
    hub_id: str | None = None
    revision: str | None = None  # a commit hash or dated release tag: never a moving branch
    tiny: bool = False  # built offline with random weights by the family's `build_twin`
    description: str = ""
    processor_kwargs: dict[str, Any] = field(default_factory=dict)  # for from_pretrained
    lora_projections: tuple[str, ...] | None = None  # None: the family's default
    quantization: str | None = None  # default for training: None | "4bit" | "8bit"
    max_new_tokens: int = 16
    twin_kwargs: dict[str, Any] = field(default_factory=dict)
    # A tiny twin's training recipe, {dotted setting as in config.yaml: value} (`train.lr`,
    # `lora.r`): used for the settings a user leaves unset, so that its offline default learns.
    # Real presets keep the studies' recipes: the settings' own defaults.
    recipe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_family(self.family)
        if self.recipe and not self.tiny:
            raise PresetError(f"preset '{self.name}': only a tiny twin carries a recipe")
        # a family with its own trainee loads its own parts, which its settings name (GILL's)
        if self.tiny == (self.hub_id is not None) and (self.tiny or get_family(self.family).trainee is None):
            raise PresetError(f"preset '{self.name}': give either hub_id or tiny=True, not both")
        if self.hub_id is not None and not is_pinned(self.revision):
            raise PresetError(
                f"preset '{self.name}': revision {self.revision!r} is not pinned "
                "(a 40-hex commit or a dated release tag)"
            )
        if self.quantization not in (None, "4bit", "8bit"):
            raise PresetError(f"preset '{self.name}': quantization must be None, 4bit or 8bit")


@dataclass
class _Registry:
    presets: dict[str, ModelPreset] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    loaded: bool = False


_registry = _Registry()


def register(presets: list[ModelPreset] | tuple[ModelPreset, ...], *, owner: str) -> None:
    """Add presets under `owner` (a package name); a duplicate name raises PresetError."""
    for preset in presets:
        if preset.name in _registry.presets:
            raise PresetError(
                f"preset '{preset.name}' is registered twice: by "
                f"{_registry.owners[preset.name]} and by {owner}"
            )
        _registry.presets[preset.name] = preset
        _registry.owners[preset.name] = owner


def _load_entry_points() -> None:
    if _registry.loaded:
        return
    _registry.loaded = True
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        owner = ep.dist.name if ep.dist is not None else ep.value
        register(list(ep.load()), owner=owner)


def all_presets() -> dict[str, ModelPreset]:
    """Every installed preset, by name."""
    _load_entry_points()
    return dict(sorted(_registry.presets.items()))


def preset_owner(name: str) -> str:
    """The package that registered preset `name`."""
    _load_entry_points()
    return _registry.owners[name]


def get_preset(name: str) -> ModelPreset:
    """The preset registered under exactly `name`; otherwise an error listing the known ones."""
    presets = all_presets()
    if name not in presets:
        raise PresetError(f"unknown preset '{name}'; known presets: {', '.join(presets)}")
    return presets[name]


def is_preset(name: str) -> bool:
    """Whether `name` is an installed preset."""
    return name in all_presets()


def recommended_settings(name: str, domain_recipes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Preset `name`'s recipe overlaid with a domain's recipe for `name` (a preset or a domain's own twin)."""
    preset = all_presets().get(name)
    return {**(preset.recipe if preset is not None else {}), **domain_recipes.get(name, {})}
