"""Data sources that load themselves: `resolve()` once, then `load(split)` validated records.

A domain's generated set is the source named `synthetic` (an empty source is the same, the older
spelling); `resolve()` builds it once and names it by its folder, which `config.yaml` records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from nmm_core.data import load_examples, meant_as_path
from nmm_core.errors import ConfigError
from nmm_core.records import ValidationReport, validate

if TYPE_CHECKING:
    from nmm_core.workflows import DataSettings

SYNTHETIC = "synthetic"  # the source that selects a domain's generated set


def is_synthetic(source: str) -> bool:
    """Whether `source` names the generated set (`synthetic`, or empty as before)."""
    return source.strip() in ("", SYNTHETIC)


@runtime_checkable
class DataSource(Protocol):
    """Where a command's records come from; `settings` is what the run's config.yaml records.

    A source whose class sets `hub_ids = True` (core's `ColumnSource`) may name a hub dataset;
    any other must name a local file or folder, which `check_source` finds before any run folder.
    """

    settings: Any

    def resolve(self) -> DataSource:
        """The same source made concrete (a generated set built and named by its folder)."""
        ...

    def load(self, split: str) -> ValidationReport:
        """One split's records, validated (skip-and-count or stop, as the settings say)."""
        ...


@dataclass(frozen=True)
class ColumnSource:
    """A hub id, local file or folder whose columns map to records (core's `DataSettings`).

    `synthetic` builds (once) and returns a domain's generated set; without it there is none.
    """

    settings: DataSettings
    synthetic: Callable[[], Path] | None = None
    hub_ids: ClassVar[bool] = True  # `load_examples` reads a hub id where no such local path exists

    def resolve(self) -> ColumnSource:
        """The generated set's folder as the source when the source names it."""
        if self.synthetic is None or not is_synthetic(self.settings.source):
            return self
        return replace(self, settings=replace(self.settings, source=str(self.synthetic())))

    def load(self, split: str) -> ValidationReport:
        """One split, column-mapped and validated."""
        return load_columns(self.settings, split)


def load_columns(data: DataSettings, split: str) -> ValidationReport:
    """One split of a column-mapped source, validated (skip-and-count or stop)."""
    if not data.source:
        raise ConfigError("data.source is empty: give --data-source (a hub id or a local path)")
    examples = load_examples(data.source, split=split, columns=data.columns(),
                             revision=data.revision, image_root=data.image_root, limit=data.limit)
    return validate(examples, policy=data.on_bad_record)


def check_source(source: DataSource, flag: str = "--data-source") -> None:
    """Pre-flight, before any run folder is made: a resolved source that names no readable local file or
    folder (and, where its class reads them, no hub id) is a one-line ConfigError naming `flag` and the path."""
    import os

    where = str(getattr(source.settings, "source", "") or "").strip()
    if not where:
        raise ConfigError(f"data.source is empty: give {flag} (a hub id or a local path)")
    path = Path(where).expanduser()
    if not path.exists():
        if getattr(source, "hub_ids", False) and not meant_as_path(where):
            check_hub_dataset(where, flag)
            return  # a hub id: loading it says whether it is there
        raise ConfigError(f"{flag} {where}: no such file or folder")
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                next(entries, None)
        else:
            with open(path, "rb") as file:
                file.read(1)
    except OSError as exc:
        raise ConfigError(f"{flag} {where}: cannot be read ({exc.strerror or exc})") from None


def check_hub_dataset(hub_id: str, flag: str = "--data-source") -> None:
    """Offline, a hub dataset id the local datasets cache lacks cannot load: a one-line ConfigError now,
    found in the cache `datasets.load_dataset` falls back to offline (never asking the hub)."""
    from nmm_core.models import hub_offline

    if not hub_offline():
        return  # the hub may serve it: loading it says whether it does
    from datasets.load import CachedDatasetModuleFactory

    try:
        CachedDatasetModuleFactory(hub_id).get_module()
    except FileNotFoundError:
        raise ConfigError(f"{flag} {hub_id}: not in the local datasets cache and HF_HUB_OFFLINE is set: load "
                          "it once with the hub reachable, or pass a local file or folder") from None
