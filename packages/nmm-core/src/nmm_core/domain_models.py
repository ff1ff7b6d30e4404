"""The models a domain's `--model` takes: the presets of the families it declares, or a model folder
or hub id of one of them; anything else is refused in one line before any run folder is made."""

from __future__ import annotations

from collections.abc import Collection
from importlib import metadata
from pathlib import Path

from nmm_core.errors import ConfigError, PresetError
from nmm_core.presets import ModelPreset, all_presets

# A domain's program name -> its `Domain` declaration; read only to say whose preset a refused one is.
DOMAINS_ENTRY_POINT = "nmm.domains"


def presets_for(families: Collection[str]) -> dict[str, ModelPreset]:
    """The installed presets of `families` (empty: of every family), by name."""
    return {name: p for name, p in all_presets().items() if not families or p.family in families}


def models_help(families: Collection[str]) -> str:
    """What `--model` takes, in a line: the presets, then a folder or hub id of the families."""
    return (f"a preset ({', '.join(presets_for(families))}), or a model folder or hub id "
            f"(with --model-family) of family {', '.join(families)}")


def domains_taking(family: str) -> list[str]:
    """The installed domains (entry point `nmm.domains`) whose declarations take models of `family`."""
    points = sorted(metadata.entry_points(group=DOMAINS_ENTRY_POINT), key=lambda e: e.name)
    return [ep.name for ep in points if family in getattr(ep.load(), "families", ())]


def check_domain_model(program: str, families: Collection[str], name: str, family: str | None) -> None:
    """ConfigError unless `--model name` is a preset of `families`, or a model folder or hub id (with
    `--model-family family`) of one of them; an unknown name lists only these presets. No families: any."""
    from nmm_core.models import resolve_source, unknown_model

    if not families:
        return
    presets = presets_for(families)
    preset = all_presets().get(name)
    if preset is not None:
        if preset.family in families:
            return
        owners = " and ".join(domains_taking(preset.family))
        whose = f"of {owners}, not of {program}" if owners else f"of family {preset.family}, not taken by {program}"
        raise ConfigError(f"--model {name} is a preset {whose} (its presets: {', '.join(presets)})")
    taken = ", ".join(families)
    if Path(name).expanduser().is_dir():
        found = resolve_source(name, family=family).family.name  # its nmm.json or config.json says
        if found not in families:
            raise ConfigError(f"--model {name} is a '{found}' model folder; {program} takes family {taken}")
        return
    if family is not None and name.count("/") == 1:
        if family not in families:
            raise ConfigError(f"--model-family {family}: {program} takes family {taken}")
        return
    raise PresetError(unknown_model(name, family, presets=presets, families=families))
