"""One seed per run: the run seed seeds every RNG, and each per-part seed left unset takes its value.

A command's run seed is its config's `seed` (eval, compare, connectome's train) or `train.seed`
(every VLM train). A per-part seed (`synthetic.seed`, `split.seed`, `bridge.seed`, ...) given on
the command line or in YAML overrides it for that part; left as None it becomes the run seed
itself, so the defaults (run seed 0) keep every earlier figure. Seeding goes through transformers'
`set_seed` / `enable_full_determinism`, the calls its Trainer makes.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _is_seed(name: str) -> bool:
    return name == "seed" or name.endswith("_seed")


def run_seed(cfg: Any) -> int | None:
    """The run seed of a command's config: its own `seed`, else `train.seed`; None if it has neither."""
    for holder in (cfg, getattr(cfg, "train", None)):
        value = getattr(holder, "seed", None)
        if holder is not None and isinstance(value, int):
            return value
    return None


def resolve_seeds(cfg: Any) -> dict[str, int]:
    """Fill every unset per-part seed of `cfg` (in place) with the run seed; all seeds by dotted name."""
    seed = run_seed(cfg)
    found: dict[str, int] = {}

    def walk(obj: Any, prefix: str) -> Any:
        changes = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                if (new := walk(value, f"{prefix}{f.name}.")) is not value:
                    changes[f.name] = new
            elif _is_seed(f.name):
                if value is None and seed is not None:
                    changes[f.name] = value = seed
                if value is not None:
                    found[prefix + f.name] = value
        if changes and obj.__dataclass_params__.frozen:
            return dataclasses.replace(obj, **changes)  # a frozen part is replaced in its parent
        for name, value in changes.items():
            setattr(obj, name, value)
        return obj

    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        walk(cfg, "")
    return found


def seed_run(seed: int, *, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (every device); with `deterministic`, also the framework's
    deterministic algorithms (transformers' `enable_full_determinism`)."""
    from transformers import enable_full_determinism, set_seed

    if deterministic:
        enable_full_determinism(seed)
    else:
        set_seed(seed)


def part_seed(value: int | None) -> int:
    """A per-part seed as used: settings built without a command (no run seed) read None as 0,
    the default run seed."""
    return 0 if value is None else value
