"""Data sources that load themselves: `resolve()` once, then `load(split)` validated records.

A domain's generated set is the source named `synthetic` (an empty source is the same, the older
spelling); `resolve()` builds it once and names it by its folder, which `config.yaml` records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from nmm_core.records import ValidationReport

if TYPE_CHECKING:
    from nmm_core.workflows import DataSettings

SYNTHETIC = "synthetic"  # the source that selects a domain's generated set


def is_synthetic(source: str) -> bool:
    """Whether `source` names the generated set (`synthetic`, or empty as before)."""
    return source.strip() in ("", SYNTHETIC)


@runtime_checkable
class DataSource(Protocol):
    """Where a command's records come from; `settings` is what the run's config.yaml records."""

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

    def resolve(self) -> ColumnSource:
        """The generated set's folder as the source when the source names it."""
        if self.synthetic is None or not is_synthetic(self.settings.source):
            return self
        return replace(self, settings=replace(self.settings, source=str(self.synthetic())))

    def load(self, split: str) -> ValidationReport:
        """One split, column-mapped and validated."""
        from nmm_core.workflows import load_columns

        return load_columns(self.settings, split)
