"""Positional inputs (`predict IMAGE [QUESTION]`) that stand for a setting's flag, which stays as an alias."""

from __future__ import annotations

import argparse
from collections.abc import Collection

from nmm_core.errors import ConfigError

_SUFFIX = "__positional"


def add_positional(parser: argparse.ArgumentParser, dest: str, metavar: str, help: str, *,
                   nargs: str | None = "?") -> None:
    """A positional `metavar` that fills setting `dest`; optional by default (its `--flag` still works),
    or as argparse's `nargs` says (None: exactly one, "+": one or more, both required by argparse)."""
    parser.add_argument(dest + _SUFFIX, metavar=metavar, nargs=nargs, default=argparse.SUPPRESS, help=help)
    # The setting's own flag stays an alias: help says so, not "(default: )"; where argparse requires
    # the positional, the flag alone does not do, so help leaves it out.
    flag = parser._option_string_actions.get("--" + dest.replace("_", "-"))
    if flag is not None:
        flag.help = argparse.SUPPRESS if nargs in (None, "+") else f"the same as {metavar}"


def take_positionals(ns: argparse.Namespace, required: dict[str, tuple[str, str]],
                     optional: Collection[str] = ()) -> argparse.Namespace:
    """Move each positional into its setting; ConfigError when a required one is missing or given twice.

    `required` maps a setting's dest to (metavar, flag): `{"source": ("IMAGE", "--source")}`; those in
    `optional` may be left out.
    """
    for dest, (metavar, flag) in required.items():
        positional = vars(ns).pop(dest + _SUFFIX, None) or None  # an empty list: none given
        if positional is not None and getattr(ns, dest, None) is not None:
            raise ConfigError(f"{metavar} given twice: as a positional ({positional!r}) and as {flag}; give one")
        if positional is not None:
            setattr(ns, dest, positional)
        elif dest not in optional and getattr(ns, dest, None) is None and getattr(ns, "config", None) is None:  # YAML?
            raise ConfigError(f"missing {metavar}: give it as a positional argument (or {flag})")
    return ns
