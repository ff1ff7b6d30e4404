"""Command settings as dataclasses: defaults < YAML file (`--config`) < command-line flags."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import types
import typing
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from nmm_core.errors import ConfigError
from nmm_core.runs import atomic_write_text
from nmm_core.seeds import resolve_seeds

T = TypeVar("T")

SWITCH = ("auto", "on", "off")  # a speed lever's setting: "auto" where it applies
Switch = Literal["auto", "on", "off"]


def check_switch(name: str, value: str) -> None:
    """A ConfigError naming `name` unless `value` is one of SWITCH."""
    if value not in SWITCH:
        raise ConfigError(f"{name} must be one of {', '.join(SWITCH)}, got {value!r}")


_NONE_WORDS = {"none", "null", "~"}
_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}
_NAMES = {bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string"}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """The init fields of `cls` with their resolved type hints."""
    hints = typing.get_type_hints(cls)  # resolves `from __future__ import annotations` strings
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, type) for every non-dataclass field, nested ones included."""
    for f, tp in _fields(cls):
        if _is_dataclass_type(tp):
            yield from _leaves(tp, f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, f, tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _strip_optional(tp: Any) -> Any:
    if not _is_union(tp):
        return tp
    rest = [a for a in get_args(tp) if a is not type(None)]
    return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007


def _is_path_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, PurePath)


def _is_sequence_type(tp: Any) -> bool:
    return tp in (list, tuple) or get_origin(tp) in (list, tuple)


def _is_mapping_type(tp: Any) -> bool:
    return tp is dict or get_origin(tp) is dict


def _describe(tp: Any) -> str:
    if _is_union(tp):
        return " or ".join("none" if a is type(None) else _describe(a) for a in get_args(tp))
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(c) for c in get_args(tp))
    if tp in _NAMES:
        return _NAMES[tp]
    if _is_path_type(tp):
        return "a path"
    if _is_sequence_type(tp):
        elems = [a for a in get_args(tp) if a is not Ellipsis]
        names = sorted({getattr(a, "__name__", str(a)) for a in elems})
        return "a list" + (f" of {'/'.join(names)}" if names else "")
    if _is_mapping_type(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    """A value does not fit a type; `_coerce` turns it into a ConfigError naming the setting."""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a flag string or a YAML value to `tp`; raise ConfigError naming `where`."""
    try:
        converted = _convert(value, tp)
    except _Mismatch:
        raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}") from None
    if isinstance(converted, float) and not math.isfinite(converted):  # nan passes every `x <= 0` check
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return converted


def _convert(value: Any, tp: Any) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if _is_union(tp):
        if type(None) in args and (
            value is None or isinstance(value, str) and value.strip().lower() in _NONE_WORDS
        ):
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _convert(value, arg)
                except _Mismatch:
                    pass
        raise _Mismatch
    if origin is Literal:
        if isinstance(value, bool) and {"on", "off"} <= set(args):
            return "on" if value else "off"  # YAML 1.1 reads an unquoted on/off as a bool
        for choice in args:
            # Flags arrive as strings, so Literal[1, 2] must also accept "1".
            if type(value) is type(choice) and value == choice or (
                isinstance(value, str) and value == str(choice)
            ):
                return choice
        raise _Mismatch
    if _is_sequence_type(tp):
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch
            elem_types = list(args)
        else:
            elem_types = [args[0] if args else Any] * len(value)
        items = [_convert(v, t) for v, t in zip(value, elem_types, strict=False)]
        return tuple(items) if tuple in (tp, origin) else items
    if _is_mapping_type(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        kt, vt = args or (Any, Any)
        return {_convert(k, kt): _convert(v, vt) for k, v in value.items()}
    return _convert_scalar(value, tp)


def _convert_scalar(value: Any, tp: Any) -> Any:
    if tp is bool:
        word = value.strip().lower() if isinstance(value, str) else value
        if isinstance(word, bool) or word in _TRUE_WORDS | _FALSE_WORDS:
            return word if isinstance(word, bool) else word in _TRUE_WORDS
        raise _Mismatch
    if not (tp in (int, float, str) or _is_path_type(tp)):
        raise TypeError(f"unsupported setting type {tp!r}")
    if isinstance(value, bool):  # bool is an int subclass, but `epochs: yes` is a mistake
        raise _Mismatch
    if tp is int and isinstance(value, int) or tp is float and isinstance(value, (int, float)):
        return tp(value)
    if tp is str and isinstance(value, (str, int, float)):
        return str(value)
    if tp in (int, float) and isinstance(value, str):
        # PyYAML reads `lr: 1e-4` (no dot) as a string, so strings must parse here too.
        try:
            return tp(value.strip())
        except ValueError:
            raise _Mismatch from None
    if _is_path_type(tp) and isinstance(value, (str, os.PathLike)):
        return tp(value)
    raise _Mismatch


def _dest_prefix(prefix: str) -> str:
    prefix = prefix.strip("-.").replace("-", "_")
    return f"{prefix}." if prefix else ""


def _flag(dest: str) -> str:
    return "--" + dest.replace(".", "-").replace("_", "-")


def _shown_first(flag: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    """The flag and its aliases, a doubled name's short alias first (`--model`, not `--model-model`):
    usage and errors show the first, and it should be the one users type."""
    words = flag[2:].split("-")
    half = len(words) // 2
    if len(words) % 2 == 0 and words[:half] == words[half:] and "--" + "-".join(words[:half]) in aliases:
        short = "--" + "-".join(words[:half])
        return (short, flag, *(a for a in aliases if a != short))
    return (flag, *aliases)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default  # dataclasses.MISSING for a required field


def _leaf_defaults(cls: type, instance: Any = None, prefix: str = "") -> dict[str, Any]:
    """The default of every leaf setting as the command really starts: a nested group's values
    come from its parent's default instance (a domain's `ModelSettings(model=...)`), not its class."""
    out: dict[str, Any] = {}
    for f, tp in _fields(cls):
        value = getattr(instance, f.name) if instance is not None else _default_of(f)
        if _is_dataclass_type(tp):
            nested = value if dataclasses.is_dataclass(value) and not isinstance(value, type) else None
            out.update(_leaf_defaults(tp, nested, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def _help(f: dataclasses.Field, default: Any, twin: tuple[str, Any] | None = None) -> str:
    if isinstance(default, (list, tuple)):
        default = ",".join(str(v) for v in default) or "(empty)"
    shown = "required" if default is dataclasses.MISSING else f"default: {default}"
    if twin is not None and twin[1] != default:  # what really applies when the default model runs
        shown += f"; tiny twin {twin[0]}: {twin[1]}"
    text = f.metadata.get("help", "")
    if "(default:" in text and twin is None:  # the help says what the default means ("the run seed")
        return text.replace("%", "%%")
    # argparse %-formats help strings.
    return f"{text} ({shown})".strip().replace("%", "%%")


def _flag_kwargs(tp: Any) -> dict[str, Any] | None:
    inner = _strip_optional(tp)
    if inner is bool:
        return {"action": argparse.BooleanOptionalAction}
    if get_origin(inner) is Literal:
        return {"metavar": "{" + ",".join(str(c) for c in get_args(inner)) + "}"}
    if _is_sequence_type(inner):
        return {"nargs": "*", "metavar": "ITEM"}
    if _is_mapping_type(inner):
        return None  # YAML only
    if _is_union(inner):  # e.g. int | Literal["auto"]: INT|auto
        return {"metavar": "|".join(",".join(map(str, get_args(a))) if get_origin(a) is Literal
                                    else getattr(a, "__name__", "VALUE").upper() for a in get_args(inner))}
    if inner in (int, float, str) or _is_path_type(inner):
        return {"metavar": getattr(inner, "__name__", "VALUE").upper()}
    raise TypeError(f"unsupported setting type {tp!r}")


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, *, prefix: str = ""
) -> argparse.ArgumentParser:
    """Add one `--flag` per field of dataclass `cls` (nested dataclasses: `--lora-r`)."""
    if not _is_dataclass_type(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    group = parser.add_argument_group(f"{cls.__name__} settings")
    defaults = _leaf_defaults(cls)
    hook = getattr(cls, "recommended_settings", None)
    recipe = hook(defaults) if hook is not None else {}  # the default model's, when it is a tiny twin
    twin = defaults.get("model.model", getattr(cls, "twin_model", None))  # whose recipe that is
    for key, f, tp in _leaves(cls):
        dest = _dest_prefix(prefix) + key
        kwargs = _flag_kwargs(tp)
        if kwargs is not None and "metavar" in f.metadata:  # a union's own name says nothing
            kwargs["metavar"] = f.metadata["metavar"]
        if kwargs is not None:
            # A short alias (metadata "aliases", e.g. `--model` for `--model-model`) only at the
            # top level: under a prefix two commands' aliases could collide.
            aliases = () if prefix else tuple(f.metadata.get("aliases", ()))
            # SUPPRESS: a flag absent from argv leaves no attribute, so YAML values survive.
            group.add_argument(
                *_shown_first(_flag(dest), aliases), dest=dest, default=argparse.SUPPRESS,
                help=_help(f, defaults[key], (twin, recipe[key]) if key in recipe else None),
                **kwargs
            )
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `--config FILE` (a YAML file of settings; flags override it)."""
    help = "YAML file of settings; command-line flags override it"
    parser.add_argument("--config", metavar="FILE", default=None, help=help)
    return parser


def build_parser(
    cls: type, *, prog: str | None = None, description: str | None = None
) -> argparse.ArgumentParser:
    """An ArgumentParser with `--config` and one flag per field of `cls`."""
    doc = (cls.__doc__ or "").strip()
    if doc.startswith(f"{cls.__name__}("):  # the signature dataclasses write when none is given
        doc = ""
    parser = argparse.ArgumentParser(
        prog=prog, description=description or doc.split("\n")[0] or None, allow_abbrev=False
    )
    add_config_argument(parser)
    return add_dataclass_arguments(parser, cls)


def add_command(
    subparsers: Any, name: str, cls: type, *, help: str | None = None
) -> argparse.ArgumentParser:
    """Add subcommand `name` with `--config` and the fields of `cls` to `add_subparsers()`."""
    sub = subparsers.add_parser(name, help=help, description=help, allow_abbrev=False)
    add_config_argument(sub)
    return add_dataclass_arguments(sub, cls)


def _read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _yaml_values(cls: type, data: dict[Any, Any], source: str, prefix: str = "") -> dict:
    """Checked, converted YAML settings as a flat {dotted name: value} dict."""
    fields = {f.name: tp for f, tp in _fields(cls)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{source}: unknown setting '{name}' (valid: {', '.join(fields)})")
        if not _is_dataclass_type(fields[key]):
            out[name] = _coerce(value, fields[key], f"{source}: field '{name}'")
        elif isinstance(value, dict):
            out.update(_yaml_values(fields[key], value, source, name + "."))
        else:
            raise ConfigError(f"{source}: field '{name}': expected a mapping, got {value!r}")
    return out


def _flag_values(cls: type, given: dict[str, Any], dest_prefix: str) -> dict[str, Any]:
    """Converted values of the flags present in a parsed namespace, by dotted name."""
    out: dict[str, Any] = {}
    for key, _, tp in _leaves(cls):
        dest = dest_prefix + key
        if dest in given:
            value = given[dest]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = ",".join(value)  # nargs tokens; "a b" and "a,b" mean the same
            out[key] = _coerce(value, tp, _flag(dest))
    return out


def _build(cls: type[T], values: dict[str, Any], base: Any = None, prefix: str = "") -> T:
    """Construct `cls` from flat `values`, else `base`'s attributes, else field defaults."""
    kwargs: dict[str, Any] = {}
    for f, tp in _fields(cls):
        name = prefix + f.name
        # A nested default like `field(default_factory=lambda: Lora(r=64))` is the base its
        # overrides apply to, not the nested class's own defaults.
        default = getattr(base, f.name) if base is not None else _default_of(f)
        if f.name in getattr(base, "derived_settings", ()):
            default = _default_of(f)  # worked out from the others (LoRA's alpha from r): derive it again
        if _is_dataclass_type(tp):
            sub_base = None if default is dataclasses.MISSING else default
            kwargs[f.name] = _build(tp, values, sub_base, name + ".")
        elif name in values:
            kwargs[f.name] = values[name]
        elif default is not dataclasses.MISSING:
            kwargs[f.name] = default
        else:
            raise ConfigError(
                f"missing required setting '{name}' (pass {_flag(name)} or set it in --config)"
            )
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e


def config_from_parsed(
    cls: type[T], ns: argparse.Namespace, *, prefix: str = "",
    yaml_path: str | Path | None = None,
) -> T:
    """Build `cls` from defaults < YAML (`yaml_path` or `ns.config`) < flags given in `ns`."""
    if yaml_path is None:
        yaml_path = getattr(ns, "config", None)
    values: dict[str, Any] = {}
    if yaml_path is not None:
        values = _yaml_values(cls, _read_yaml(yaml_path), str(yaml_path))
    values.update(_flag_values(cls, vars(ns), _dest_prefix(prefix)))
    cfg = _build(cls, {**_recommended(cls, values), **values})
    resolve_seeds(cfg)  # a per-part seed not given is the run seed, in config.yaml as used
    return cfg


def _recommended(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """What `cls.recommended_settings` (if it has one) suggests for the settings not in `given`.

    A config class may recommend values that depend on the others (a tiny twin's learning rate
    follows from `model.model`); they sit between the field defaults and YAML/flags.
    """
    hook = getattr(cls, "recommended_settings", None)
    if hook is None:
        return {}
    leaves = {name: tp for name, _, tp in _leaves(cls)}
    suggested = hook({**_leaf_defaults(cls), **given})
    out = {name: _coerce(value, leaves[name], f"recommended setting '{name}'")
           for name, value in suggested.items() if name in leaves and name not in given}
    if out:
        logging.getLogger(__name__).info(
            "recommended for this model (flags override): %s",
            ", ".join(f"{k}={v}" for k, v in sorted(out.items())))
    return out


def parse_config(
    cls: type[T], args: argparse.Namespace | None = None, *,
    argv: list[str] | None = None, yaml_path: str | Path | None = None,
) -> T:
    """Build `cls` from parsed `args` or `argv` (None: no flags), plus an optional YAML file."""
    if args is None:
        args = build_parser(cls).parse_args(list(argv or []))
    return config_from_parsed(cls, args, yaml_path=yaml_path)


def load_yaml_config(cls: type[T], path: str | Path) -> T:
    """Read a YAML file (e.g. a run's `config.yaml`) into `cls` over its defaults."""
    return _build(cls, _yaml_values(cls, _read_yaml(path), str(path)))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain data: nested dataclasses -> dicts, Paths -> str, tuples -> lists."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"expected a dataclass instance, got {type(obj).__name__}")
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}


def dump_yaml(obj: Any, path: str | Path) -> None:
    """Write a dataclass (or a mapping) as YAML to `path` atomically."""
    data = obj if isinstance(obj, dict) else config_to_dict(obj)
    atomic_write_text(path, yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True))
