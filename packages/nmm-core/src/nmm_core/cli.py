"""Command-line plumbing shared by `nmm` and every domain CLI (`nmm-charts`, ...).

Heavy libraries are imported only inside commands, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import logging
import re
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, NoReturn

from nmm_core.errors import Interrupted, NmmError
from nmm_core.noise import silence_third_party_noise

# Distributions whose versions `info` reports when installed.
_STACK = ("torch", "transformers", "peft", "accelerate", "datasets", "bitsandbytes",
          "diffusers", "ultralytics", "nilearn", "nibabel")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def info_text(dist: str, taken: Mapping[str, Any] | None = None) -> str:
    """Version of `dist`, what it requires and what of that is installed, presets it owns (a domain's:
    `taken`, the presets its `--model` takes)."""
    from nmm_core.presets import all_presets, preset_owner

    lines = [f"{dist} {_version(dist)}  (python {sys.version.split()[0]})"]
    requires = metadata.requires(dist) or []
    direct = sorted({re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r})
    names = sorted(set(direct) | {d for d in _STACK if _version(d)})
    lines.append("installed:")
    for name in names:
        lines.append(f"  {name:<16} {_version(name) or 'MISSING'}")
    presets = all_presets()
    owned = [p for n, p in presets.items() if preset_owner(n) == dist] if taken is None else list(taken.values())
    whose = f"of {dist}" if taken is None else f"{dist} takes"
    lines.append(f"presets {whose} ({len(owned)} of the {len(presets)} installed; `nmm presets` lists all):")
    for p in owned:
        where = "tiny twin, built locally" if p.tiny else f"{p.hub_id}@{(p.revision or '')[:10]}"
        where = where if p.tiny or p.hub_id else "parts named by its settings"  # a family's own (GILL)
        lines.append(f"  {p.name:<18} {p.family:<10} {where}")
    try:
        import torch

        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)"
    except Exception as exc:  # a broken torch install is worth seeing, not crashing on
        cuda = f"unknown ({exc})"
    lines.append(f"CUDA: {cuda}")
    from nmm_core.distributed import distributed_text

    lines.append(distributed_text())
    return "\n".join(lines)


def presets_text() -> str:
    """Every installed preset with its family, source and owning package."""
    from nmm_core.presets import all_presets, preset_owner

    rows = [f"{'name':<20} {'family':<10} {'package':<16} source"]
    for name, p in all_presets().items():
        source = "tiny twin (local)" if p.tiny else f"{p.hub_id} @ {p.revision}"
        source = source if p.tiny or p.hub_id else "parts named by its settings"  # a family's own (GILL)
        rows.append(f"{name:<20} {p.family:<10} {preset_owner(name):<16} {source}")
    return "\n".join(rows)


# OSErrors the user can fix (space, permissions, a file where a folder should be), not our bugs
_USER_FIXABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                 errno.EISDIR, errno.EEXIST}


def run_cli(fn: Callable[[], object], program: str | None = None, verb: str | None = None) -> int:
    """Run a command: a user error is one line on stderr and a non-zero exit, not a traceback.
    `program` (`nmm-charts`) and `verb` (`train`) are recorded in the status of the run folders it makes."""
    from nmm_core.runs import PROGRAM, VERB

    token, verb_token = PROGRAM.set(program), VERB.set(verb)
    try:
        return _run_cli(fn)
    finally:
        PROGRAM.reset(token)
        VERB.reset(verb_token)


def _run_cli(fn: Callable[[], object]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    silence_third_party_noise()
    try:
        fn()
    except Interrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    except NmmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in _USER_FIXABLE or exc.filename is None:
            raise
        # a full or read-only disk met mid-command: where, and what the system said
        print(f"error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        folder = getattr(exc, "run_folder", None)  # set where a run folder was marked interrupted
        start = "\n" if sys.stderr.isatty() else ""  # a progress bar or the terminal's ^C holds the line
        if folder is None:
            print(f"{start}interrupted (no run folder was marked to continue)", file=sys.stderr)
        else:
            from nmm_core.run_list import interrupted_line

            print(start + interrupted_line(folder), file=sys.stderr)
        return 130
    return 0


def closest_verb(message: str) -> str:
    """argparse's "invalid choice: 'trian' (choose from ...)" as "... (did you mean train?)" where one is close."""
    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    close = difflib.get_close_matches(found[1], re.findall(r"'([^']*)'", found[2]), n=1) if found else []
    return message[:found.start(2) - len("choose from ")] + f"did you mean {close[0]}?)" if close else message


class VerbParser(argparse.ArgumentParser):
    """A program's top-level parser: a mistyped verb gets the closest one, as a mistyped flag does."""

    def error(self, message: str) -> NoReturn:
        super().error(closest_verb(message))


class SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser that rejects an unknown flag itself, so the error shows its own usage."""

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 (argparse's signature)
        # argparse hands a subcommand's leftovers up to the top-level parser, whose usage says nothing
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._closest_flag(extras)}")
        return namespace, extras

    def _closest_flag(self, extras: list[str]) -> str:
        """' (did you mean --x?)' for the first unknown flag that is close to one of this command's."""
        known = [o for o in self._option_string_actions if o.startswith("--")]
        for extra in extras:
            if extra.startswith("--"):
                close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""

    def error(self, message: str) -> NoReturn:
        """A one-line usage and the error, not the whole usage: a verb's runs to dozens of lines."""
        self.exit(2, f"usage: {self.prog} [options]\n"
                     f"{self.prog}: error: {closest_verb(message)}; see `{self.prog} --help`\n")


def base_parser(prog: str, description: str, dist: str, *,
                model: str | None = "tiny-qwen2-vl") -> tuple[argparse.ArgumentParser, object]:
    """A parser with `--version` and an `info` subcommand; returns (parser, subparsers). `info --image`
    probes `model` unless told another; None: a program without image models, whose `info` has no --image."""
    parser = VerbParser(prog=prog, description=description, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"{dist} {_version(dist)}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=SubcommandParser)
    if model is None:
        sub.add_parser("info", help="version, installed libraries, presets, CUDA")
        return parser, sub
    info = sub.add_parser("info", help="version, installed libraries, presets, CUDA; with --image, a model's "
                                       "image tokens for that image size")
    info.add_argument("--model", "--model-model", dest="model", default=model,
                      help=f"preset name or model folder, for --image (default: {model})")
    info.add_argument("--model-family", default=None, help="family of a bare hub id")
    info.add_argument("--model-revision", default=None, help="commit of a bare hub id")
    info.add_argument("--model-max-image-tokens", type=int, default=None, help="the image-token budget's max")
    info.add_argument("--model-min-image-tokens", type=int, default=None, help="the image-token budget's min")
    info.add_argument("--image", metavar="WxH", default=None,
                      help="print how many image tokens an image of this size becomes, and the sequence length")
    info.add_argument("--question", default=None, help="the question for --image's sequence length")
    return parser, sub


def add_export_command(sub) -> None:
    """The `export` verb (core's and every VLM domain CLI's)."""
    from nmm_core.config import add_command
    from nmm_core.export import EXPORT_HELP, ExportConfig

    add_command(sub, "export", ExportConfig, help=EXPORT_HELP)


def export_from_parsed(ns: argparse.Namespace):
    """Run `export` with the parsed flags; the folder written."""
    from nmm_core.config import config_from_parsed
    from nmm_core.export import ExportConfig, run_export

    return run_export(config_from_parsed(ExportConfig, ns))


def add_convert_command(sub) -> None:
    """`nmm convert SRC OUT`: the tinyllava family's converter from TinyLLaVA_Factory checkpoints."""
    from nmm_core.config import add_command
    from nmm_core.families.tinyllava_convert import CONVERT_HELP, ConvertConfig
    from nmm_core.positionals import add_positional

    convert = add_command(sub, "convert", ConvertConfig, help=CONVERT_HELP)
    for name, (metavar, text, nargs) in ConvertConfig.positional.items():
        add_positional(convert, name, metavar, text, nargs=nargs)


def print_info(dist: str, ns: argparse.Namespace, *, presets: Mapping[str, Any] | None = None) -> None:
    """`info`: the installation (a domain's `presets`: those its `--model` takes); with `--image WxH`,
    what an image of that size costs the model."""
    size = None
    if getattr(ns, "image", None):
        from nmm_core.image_budget import parse_size

        size = parse_size(ns.image)  # a bad size fails before anything is printed
    print(info_text(dist, presets))
    if size is not None:
        from nmm_core.image_budget import PROBE_QUESTION, image_info

        print(image_info(ns.model, size, family=ns.model_family, revision=ns.model_revision,
                         min_tokens=ns.model_min_image_tokens, max_tokens=ns.model_max_image_tokens,
                         question=ns.question or PROBE_QUESTION))


def main(argv: list[str] | None = None) -> int:
    """`nmm`: the generic commands on any local or hub dataset in image/question/answer shape."""
    from nmm_core.config import add_command, config_from_parsed
    from nmm_core.run_list import RunsConfig, add_runs_command, run_runs
    from nmm_core.workflows import EvalConfig, TrainConfig

    parser, sub = base_parser("nmm", "Fine-tune and evaluate VLMs on a narrow domain.", "nmm-core")
    sub.add_parser("presets", help="list every installed model preset")
    add_command(sub, "train", TrainConfig, help="LoRA/QLoRA fine-tuning into a run folder")
    add_command(sub, "eval", EvalConfig, help="batched generation and scores")
    add_command(sub, "compare", EvalConfig, help="base vs fine-tuned on the same examples")
    add_export_command(sub)
    add_runs_command(sub)
    add_convert_command(sub)
    ns = parser.parse_args(argv)

    def dispatch() -> None:
        from nmm_core.task import short_answer_task
        from nmm_core.workflows import check_model_source, run_compare, run_eval, run_train

        if ns.command == "info":
            print_info("nmm-core", ns)
        elif ns.command == "presets":
            print(presets_text())
        elif ns.command == "runs":
            run_runs(config_from_parsed(RunsConfig, ns))
        elif ns.command == "train":
            cfg = config_from_parsed(TrainConfig, ns)
            check_model_source(cfg.model, None, cfg)
            print(run_train(cfg, short_answer_task()))
        elif ns.command == "export":
            print(export_from_parsed(ns))
        elif ns.command == "convert":
            from nmm_core.families.tinyllava_convert import ConvertConfig, run_convert
            from nmm_core.positionals import take_positionals

            take_positionals(ns, {"src": ("SRC", "--src"), "out": ("OUT", "--out")})
            run_convert(config_from_parsed(ConvertConfig, ns), cli="nmm")
        else:
            cfg = config_from_parsed(EvalConfig, ns)
            check_model_source(cfg.model)  # the adapter is checked against the loaded base
            print((run_eval if ns.command == "eval" else run_compare)(cfg, short_answer_task()))

    return run_cli(dispatch, "nmm", ns.command)


if __name__ == "__main__":
    sys.exit(main())
