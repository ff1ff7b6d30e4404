"""Continuing an interrupted run (`--resume FOLDER`): only the command that made it, with its settings.

A run folder holds what its settings produced (checkpoints, answers). Continuing it with other
settings would mix two runs in one folder, so the saved `config.yaml` and the command line are
compared first; both are read over today's defaults, so a setting added since the run started
is not a difference. Each command names what may change (where it writes, how fast it goes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nmm_core.config import config_to_dict, load_yaml_config
from nmm_core.errors import ConfigError
from nmm_core.runs import PROGRAM, RunDir, read_status

ALWAYS_MAY_CHANGE = ("resume", "output_dir")


def open_resumed(cfg: Any, folder: str, command: str, *, may_change: Sequence[str] = (),
                 reopen: bool = True) -> RunDir:
    """The run folder `folder` of `command`, checked against `cfg` and (with `reopen`) marked running."""
    refuse_other_program(folder)
    run = RunDir.open(folder)
    made_by = run.status.get("command")
    if made_by != command:
        raise ConfigError(f"--resume {folder}: that run was made by {made_by!r}, and this command is {command!r}")
    saved_file = run.file("config.yaml")
    if not saved_file.is_file():
        raise ConfigError(f"--resume {folder}: it holds no config.yaml, so what it did cannot be checked")
    saved = config_to_dict(load_yaml_config(type(cfg), saved_file))
    current = config_to_dict(cfg)
    for settings in (saved, current):
        for key in (*ALWAYS_MAY_CHANGE, *may_change):
            *parents, leaf = key.split(".")
            node = settings
            for parent in parents:
                node = node.get(parent) or {}
            node.pop(leaf, None)
    changed = first_difference(saved, current)
    if changed is not None:
        key, before, now = changed
        raise ConfigError(f"--resume {folder}: it ran with {key}={before!r}, now {now!r}; what it did would not "
                          "be this run's: resume with the same settings, or start a new run")
    if reopen:
        run.reopen()
    return run


def refuse_other_program(folder: str) -> None:
    """Refuse `--resume folder` of a run another program made (its settings would differ anyway), naming
    the program and command that continue it; checked before a command loads its data."""
    status = read_status(folder)  # {} where unreadable: RunDir.open says what is wrong with the folder
    made_in, now = status.get("program"), PROGRAM.get()
    if made_in and now and made_in != now:
        verb = status.get("verb") or status.get("command")
        raise ConfigError(f"--resume {folder}: that run was made by {made_in}, not {now}: resume it with "
                          f"{made_in} {verb} --resume {folder}")


def first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, a's value, b's value) of the first setting that differs, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)
