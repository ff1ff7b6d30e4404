"""A narrow domain declared as data; `domain_main` turns the declaration into its command line.

A domain names its task, default model, data (column names, a reader, a generated set) and its
own verbs; the kit gives every domain the same standard verbs with the same flags and help,
from one table: `{verb: (config class, function of the config, help)}`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, make_dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from nmm_core.competition import JudgeSettings
from nmm_core.errors import ConfigError
from nmm_core.evaluate import GenerationSettings
from nmm_core.export import EXPORT_HELP, ExportConfig, ExportModelSettings, run_export
from nmm_core.records import ValidationReport
from nmm_core.run_list import RUNS_HELP, RunsConfig, run_runs
from nmm_core.sources import SYNTHETIC, ColumnSource, DataSource, check_source
from nmm_core.task import Task
from nmm_core.train_settings import TrainSettings
from nmm_core.workflows import (
    DataSettings,
    EvalConfig,
    Finish,
    ModelSettings,
    RecommendsTwinRecipe,
    TrainConfig,
)

# (config class, function of the parsed config, help); a config class with a `positional` mapping
# ({setting: (METAVAR, help)}) takes those settings as positional arguments, their flags kept as
# aliases; a third item is argparse's nargs for it ("?": may be left out; None, "+": argparse requires it).
# A domain's verb with None for its class replaces a standard verb's function, not its flags;
# None for its function too keeps the standard verb and gives it the domain's help.
Verb = tuple[type | None, Callable[..., object] | None, str]
# `predict`'s inputs as a `positional` mapping; each input's flag stays as the positional's alias
PREDICT_INPUTS = {"image": ("IMAGE", "image file"), "question": ("QUESTION", "the question, quoted")}


@dataclass(frozen=True)
class SyntheticSet:
    """A domain's generated data set, the source `synthetic` (the default when it has one).

    `settings` is a dataclass (its fields are the `--synthetic-*` flags) with `sizes()`, the
    questions per split; `write(settings, folder, progress=...)` writes every split and `marker`
    last; `cached(settings, progress=...)` returns the shared cache's copy, built on first use.
    """

    settings: type
    write: Callable[..., Path]
    # None: under the cache root, keyed by the settings' `key()` if they have one, else by their values
    cached: Callable[..., Path] | None = None
    marker: str = "synthetic.json"

    def folder(self, domain: str, settings: Any, *, progress: bool = True) -> Path:
        """The generated set for `settings`, built once into the shared cache."""
        if self.cached is not None:
            return self.cached(settings, progress=progress)
        import hashlib
        import json

        from nmm_core.config import config_to_dict
        from nmm_core.files import cached_folder

        if hasattr(settings, "key"):
            key = settings.key()
        else:
            values = json.dumps(config_to_dict(settings), sort_keys=True).encode()
            key = f"synthetic-{hashlib.sha1(values).hexdigest()[:12]}"
        return cached_folder(domain.removeprefix("nmm-"), key,
                             lambda tmp: self.write(settings, tmp, progress=progress), marker=self.marker)


@dataclass(frozen=True)
class Domain:
    """Everything a narrow domain declares; the kit owns the rest (run folders, reports, CLI)."""

    name: str  # the distribution and program (`nmm-charts`)
    description: str
    task: Task | None = None  # None: not a VLM domain, so no standard verbs (only its own)
    model: str = "tiny-qwen2-vl"  # the default model: a preset name (offline default: a tiny twin)
    presets: tuple[Any, ...] = ()  # its ModelPresets (also announced via the `nmm.presets` entry point)
    # the model families its `--model` takes: their presets, folders and hub ids (empty: every family)
    families: tuple[str, ...] = ()
    twin_recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)  # data settings' defaults (its column names)
    data_settings: type = DataSettings  # its data settings' class, if not core's columns (`--data-*`)
    train: Mapping[str, Any] = field(default_factory=dict)  # TrainSettings defaults (its study's epochs)
    # GenerationSettings defaults of eval/compare; its `max_new_tokens` is predict's default too
    generation: Mapping[str, Any] = field(default_factory=dict)
    # settings groups a standard verb takes beside the kit's: {verb: {group: dataclass}} (`--gill-*`)
    extra_settings: Mapping[str, Mapping[str, type]] = field(default_factory=dict)
    splits: tuple[str, ...] = ("train", "test")  # what `data inspect` counts unless `--splits`
    predict_inputs: Mapping[str, tuple[str | None, ...]] = field(default_factory=lambda: PREDICT_INPUTS)
    synthetic: SyntheticSet | None = None
    # (data settings, the generated set's builder or None) -> its source; core's reads columns
    source: Callable[[Any, Callable[[], Path] | None], DataSource] = ColumnSource
    verbs: Mapping[str, Verb] = field(default_factory=dict)  # its own, and any standard verb it replaces
    group: str | None = None  # mount the standard verbs under this word (`nmm-pathology vqa train`)
    group_help: str = ""
    groups: Mapping[str, str] = field(default_factory=dict)  # help of its own verbs' groups (`detect`)
    # `data inspect`: the sample grid PNG it writes unless `--grid` names another (None: none), and
    # (resolved source, split, its report) -> the domain's own lines for that split (charts' answer types)
    inspect_grid: str | None = None
    inspect_lines: Callable[[DataSource, str, ValidationReport], list[str]] | None = None
    # (resolved source, run folder): extra files in an eval/compare run before it is complete
    after_eval: Callable[[DataSource, Path], dict[str, Any] | None] | None = None

    def source_of(self, cfg: Any) -> DataSource:
        """The resolved data source of a command's config (the generated set built if named)."""
        from nmm_core.seeds import resolve_seeds

        resolve_seeds(cfg)  # a generated set's or split's seed left unset is the run seed
        build = None
        if self.synthetic is not None and hasattr(cfg, "synthetic"):
            build = partial(self.synthetic.folder, self.name, cfg.synthetic)
        return self.source(cfg.data, build).resolve()


def _title(domain: Domain) -> str:
    return "".join(part.capitalize() for part in domain.name.removeprefix("nmm-").split("-"))


def _config(domain: Domain, verb: str, base: tuple[type, ...], doc: str, *, data: bool = True,
            model: bool = True, synthetic: bool = True, extra: tuple = (),
            namespace: Mapping[str, Any] | None = None, key: str = "") -> type:
    """A command's settings: `base` with the domain's data, model and synthetic-set defaults and the
    settings groups it adds to verb `key`."""
    fields: list[tuple] = []
    if data:
        defaults = {**({"source": SYNTHETIC} if domain.synthetic else {}), **domain.data}
        settings = domain.data_settings
        fields.append(("data", settings, field(default_factory=partial(settings, **defaults))))
    if model:
        model_settings = _model_settings(domain)
        fields.append(("model", model_settings, field(default_factory=partial(model_settings, model=domain.model))))
    if synthetic and domain.synthetic is not None:
        fields.append(("synthetic", domain.synthetic.settings, field(default_factory=domain.synthetic.settings)))
    own = tuple((name, cls, field(default_factory=cls)) for name, cls in domain.extra_settings.get(key, {}).items())
    return make_dataclass(f"{_title(domain)}{verb}Config", [*fields, *extra, *own], bases=base,
                          namespace={"__doc__": doc, "twin_recipes": domain.twin_recipes, **(namespace or {})})


def _model_settings(domain: Domain) -> type:
    """ModelSettings whose `--model` help names the presets the domain takes (core's where it names no families)."""
    if not domain.families:
        return ModelSettings
    from dataclasses import fields

    from nmm_core.domain_models import models_help

    _register_presets(domain)  # a downstream domain's own presets are among those named
    [model] = [f for f in fields(ModelSettings) if f.name == "model"]
    help = field(default=domain.model, metadata={**model.metadata, "help": models_help(domain.families)})
    return make_dataclass(f"{_title(domain)}ModelSettings", [("model", str, help)], bases=(ModelSettings,))


def run_domain_train(domain: Domain, cfg: TrainConfig) -> Path:
    """Core's `run_train` on the domain's resolved data; the completed run folder."""
    from nmm_core.model_checks import check_model_source
    from nmm_core.workflows import run_train

    check_model_source(cfg.model, None, cfg)  # with the parts a family's own trainee loads (GILL's)
    source = domain.source_of(cfg)
    return run_train(replace(cfg, data=source.settings), domain.task, source=source,
                     max_new_tokens=domain.generation.get("max_new_tokens"))  # validation answers as eval's


def run_domain_eval(domain: Domain, cfg: EvalConfig, *, compare: bool = False, kind: str = "compare",
                    seed: int | None = None, finish: Finish | None = None, judge: Finish | None = None) -> Path:
    """Core's `run_eval` (or `run_compare`: base vs merged adapter, a `kind` run) on the domain's resolved
    data; `finish` (default: the domain's `after_eval`) adds files to the run before it is complete,
    then `judge` (a competition) its own."""
    from nmm_core.model_checks import check_model_source
    from nmm_core.workflows import run_compare, run_eval

    if compare and not cfg.adapter:
        raise ConfigError(f"{kind} needs --adapter (the fine-tuned LoRA folder)")
    check_model_source(cfg.model, cfg.adapter)
    source = domain.source_of(cfg)
    if finish is None and domain.after_eval:
        finish = partial(domain.after_eval, source)
    if judge is not None:
        finish = partial(_finish_then_judge, finish, judge)
    data = replace(cfg, data=source.settings)
    if compare:
        return run_compare(data, domain.task, source=source, finish=finish, kind=kind, seed=seed)
    return run_eval(data, domain.task, source=source, finish=finish)


def _finish_then_judge(finish: Finish | None, judge: Finish, folder: Path) -> dict[str, Any]:
    """The domain's files in the run first (the judge appends to its report), then the judge's."""
    return {**((finish(folder) or {}) if finish else {}), **(judge(folder) or {})}


def run_domain_compete(domain: Domain, cfg: Any) -> Path:
    """`compare` as a `compete` run: its pairs.jsonl judged by the task's primary metric (per example)."""
    from nmm_core.competition import judge_run

    metric = domain.task.primary_metric
    if metric.per_example is None:
        raise ConfigError(f"compete: the task's primary metric {metric.name!r} has no per-example score "
                          "to judge pairs by")
    return run_domain_eval(domain, cfg, compare=True, kind="compete", seed=cfg.judge.seed,
                           judge=lambda folder: judge_run(folder, cfg.judge, metric=metric))


def run_domain_predict(domain: Domain, cfg: Any) -> str:
    """One normalised answer to one question about one image (adapter merged), printed."""
    from nmm_core.predict import predict_one

    raw, seconds = predict_one(cfg.model, cfg.adapter, cfg.image, cfg.question, task=domain.task,
                               max_new_tokens=cfg.max_new_tokens)
    answer = domain.task.normalise(raw)
    print(answer)
    print(f"({seconds:.3f} s to generate)", file=sys.stderr)
    return answer


def run_domain_synthesize(domain: Domain, cfg: Any) -> Path:
    """Write the generated set into `--out` (or the shared cache); print where and its sizes."""
    from nmm_core.files import synthesized

    made = domain.synthetic
    folder = synthesized(cfg.out, lambda tmp: made.write(cfg.synthetic, tmp, progress=cfg.progress),
                         lambda: made.folder(domain.name, cfg.synthetic, progress=cfg.progress), marker=made.marker,
                         program=domain.name)
    print(f"synthetic {domain.name.removeprefix('nmm-')} set: {folder}")
    for split, n in cfg.synthetic.sizes().items():
        print(f"  {split}: {n} questions")
    return folder


def run_domain_inspect(domain: Domain, cfg: Any) -> None:
    """Per split: kept of total, the first `--listed` skipped records named, references per record, a
    sample and the domain's own counts; with `--problems FILE` every skipped record as JSON lines, and
    with `--grid FILE` a PNG of the first kept records."""
    from collections import Counter

    from nmm_core.records import listed_lines, write_problems

    if cfg.grid and cfg.grid_size < 1:
        raise ConfigError(f"grid_size must be at least 1, got {cfg.grid_size}")
    source = domain.source_of(cfg)
    if str(getattr(source.settings, "source", "")).strip() != SYNTHETIC:  # still the set's name: it builds it
        check_source(source)  # the pre-flight train/eval/compare get from core's workflows, same message
    problems: dict[str, list] = {}
    first: list = []
    for split in cfg.splits:
        report = source.load(split)
        print(f"[{split}] {report.summary()}")
        shared = next((other for other in report.held_out if other in problems), None)
        if shared is not None and report.skipped:  # the same file's bad records, listed once
            print(f"  skipped the same {report.skipped} as [{shared}] (listed there)")
        else:
            problems[split] = report.problems
            for line in listed_lines(report.problems, cfg.listed):
                print(line)
        refs = Counter(len(ex.answers) for ex in report.kept)
        if refs:
            print("  references per record: " + ", ".join(f"{k}: {v}" for k, v in sorted(refs.items())))
        if report.kept:
            ex = report.kept[0]
            print(f"  e.g. {ex.id}: {ex.prompt!r} -> {ex.answers[0]!r}")
        for line in domain.inspect_lines(source, split, report) if domain.inspect_lines else ():
            print(line)
        first = first or report.kept
    if cfg.problems:
        write_problems(problems, cfg.problems)
    if cfg.grid:
        from nmm_core.report import sample_grid

        title = Path(str(getattr(source.settings, "source", ""))).name
        print(f"sample grid: {sample_grid(first[: cfg.grid_size], cfg.grid, title=title)}")


# the kit's own settings beside the domain's data, model and synthetic set: (name, type, field)
_INSPECT = (("problems", str | None, field(default=None, metadata={
                "help": "write every skipped record to this JSONL"})),
            ("listed", int, field(default=10, metadata={"help": "skipped records printed per split"})))


def _inspect(domain: Domain) -> tuple:
    """`data inspect`'s own settings: the splits, the skipped records' listing and the sample grid."""
    return (("splits", tuple[str, ...], field(default=domain.splits, metadata={"help": "splits to count"})),
            *_INSPECT,
            ("grid", str | None, field(default=domain.inspect_grid, metadata={"help": "sample grid PNG to write"})),
            ("grid_size", int, field(default=8, metadata={"help": "records in the grid"})))


_SYNTHESIZE = (("out", str, field(default="", metadata={"help": "folder to write (empty: the shared cache)"})),
               ("progress", bool, field(default=True)))


def _predict(domain: Domain) -> tuple:
    """`predict`'s own settings: the domain's inputs, the adapter, the answer's length."""
    inputs = tuple((name, str, field(default="")) for name in domain.predict_inputs)  # help: add_positional's
    return (*inputs, ("adapter", str | None, field(default=None, metadata={"help": "LoRA adapter folder (merged)"})),
            ("max_new_tokens", int | None, field(default=domain.generation.get("max_new_tokens"), metadata={
                "help": "longest answer in tokens (none: the preset's)", "aliases": ("--generation-max-new-tokens",)})))


def standard_verbs(domain: Domain) -> dict[str, Verb]:
    """The verbs every domain gets, with the same flags and help (one line each)."""
    train = _config(domain, "Train", (TrainConfig,), "`train`: LoRA/QLoRA fine-tuning into a run folder.",
                    extra=(("train", TrainSettings, field(default_factory=partial(TrainSettings, **domain.train))),),
                    key="train")
    generation = field(default_factory=partial(GenerationSettings, **domain.generation))
    evaluate = _config(domain, "Eval", (EvalConfig,), "`eval` / `compare`: greedy answers and scores.",
                       extra=(("generation", GenerationSettings, generation),), key="eval")
    compete = make_dataclass(f"{_title(domain)}CompeteConfig", [
        ("judge", JudgeSettings, field(default_factory=JudgeSettings))], bases=(evaluate,), namespace={
        "__doc__": "`compete`: base vs fine-tuned on the same held-out examples; blind pairs + automatic judging."})
    predict = _config(domain, "Predict", (), "`predict`: one answer for one image and question.", data=False,
                      synthetic=False, extra=_predict(domain), namespace={"positional": domain.predict_inputs},
                      key="predict")
    # no model of its own: the default model's recipe sizes the generated set, as for `train`
    inspect = _config(domain, "Inspect", (RecommendsTwinRecipe,), "`data inspect`: usable and skipped records "
                      "per split.", model=False, extra=_inspect(domain), namespace={"twin_model": domain.model},
                      key="data inspect")
    # likewise: it writes the set `train` and `data inspect` use unless flags say otherwise
    synthesize = _config(domain, "Synthesize", (RecommendsTwinRecipe,), "`data synthesize`: write the generated set.",
                         data=False, model=False, extra=_SYNTHESIZE, namespace={"twin_model": domain.model})
    verbs: dict[str, Verb] = {
        "train": (train, lambda cfg: print(run_domain_train(domain, cfg)), "LoRA/QLoRA fine-tuning into a run folder"),
        "eval": (evaluate, lambda cfg: print(run_domain_eval(domain, cfg)),
                 "predictions and the task's scores (with --adapter: merged)"),
        "compare": (evaluate, lambda cfg: print(run_domain_eval(domain, cfg, compare=True)),
                    "base vs merged fine-tuned adapter on the same examples (report, pairs.jsonl)"),
        "compete": (compete, lambda cfg: print(run_domain_compete(domain, cfg)),
                    "base vs fine-tuned on the same examples: blind pairs.jsonl, win rate with CI, ratings"),
        "predict": (predict, partial(run_domain_predict, domain), "answer one question about one image"),
        "data inspect": (inspect, partial(run_domain_inspect, domain), "usable and skipped records per split"),
        "data synthesize": (synthesize, partial(run_domain_synthesize, domain), "write the generated set"),
        "export": (ExportConfig, lambda cfg: print(run_export(cfg)), EXPORT_HELP),
        **_runs_verb(domain),
    }
    if domain.synthetic is None:
        del verbs["data synthesize"]
    return verbs


_UNGROUPED = {"runs"}  # about the run folders, not the group's task: `nmm-pathology runs`


def _runs_verb(domain: Domain) -> dict[str, Verb]:
    """What every domain gets, a task or not: `runs`, listing the runs its own CLI made."""
    return {"runs": (RunsConfig, partial(run_runs, program=domain.name), RUNS_HELP)}


def domain_verbs(domain: Domain) -> dict[str, Verb]:
    """The standard verbs (under the domain's group, if it has one; only `runs` without a task) and the domain's own."""
    prefix = f"{domain.group} " if domain.group else ""
    standard = {(verb if verb in _UNGROUPED else prefix + verb): spec
                for verb, spec in (standard_verbs(domain) if domain.task is not None else _runs_verb(domain)).items()}
    own = {verb: (cls or standard[verb][0], fn or standard[verb][1], text) for verb, (cls, fn, text) in
           domain.verbs.items()}
    return {**standard, **own}


_GROUP_HELP = {"data": "the generated set and dataset inspection"}


def domain_parser(domain: Domain, verbs: Mapping[str, Verb]):
    """`--version`, `info` and one subcommand per verb ("data synthesize": a group and its action)."""
    from nmm_core.cli import base_parser
    from nmm_core.config import add_command
    from nmm_core.positionals import add_positional

    # `info --image` probes the domain's default model; a domain without a task has no image model
    parser, sub = base_parser(domain.name, domain.description, domain.name,
                              model=domain.model if domain.task is not None else None)
    if domain.families:
        from nmm_core.domain_models import models_help

        parser.epilog = f"--model takes {models_help(domain.families)}"
    groups: dict[str, Any] = {}
    for verb, (cls, _, text) in verbs.items():
        *path, leaf = verb.split()
        where = sub
        for depth, word in enumerate(path):
            key = " ".join(path[: depth + 1])
            if key not in groups:
                help = domain.group_help if word == domain.group else {**_GROUP_HELP, **domain.groups}.get(word, "")
                group = where.add_parser(word, help=help)
                groups[key] = group.add_subparsers(dest=f"{key.replace(' ', '_')}_command", required=True,
                                                   metavar="ACTION")
            where = groups[key]
        command = add_command(where, leaf, cls, help=text)
        for name, (metavar, help, *nargs) in getattr(cls, "positional", {}).items():
            required = nargs[:1] in ([None], ["+"])  # by argparse: its flag alone does not do
            add_positional(command, name, metavar, help if required else f"{help} (or {_flag(name)})",
                           nargs=nargs[0] if nargs else "?")
        command.set_defaults(nmm_verb=verb)
    return parser


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def verb_config(cls: type, ns: Any) -> Any:
    """A verb's settings from its parsed arguments, each positional moved into its setting first."""
    from nmm_core.config import config_from_parsed
    from nmm_core.positionals import take_positionals

    positional = getattr(cls, "positional", {})
    take_positionals(ns, {name: (metavar, _flag(name)) for name, (metavar, *_) in positional.items()},
                     optional={name for name, (_, _, *nargs) in positional.items() if nargs[:1] == ["?"]})
    return config_from_parsed(cls, ns)


def domain_main(domain: Domain, argv: list[str] | None = None) -> int:
    """Parse `argv` into one of the domain's verbs and run it (user errors: one line, exit 2)."""
    from nmm_core.cli import print_info, run_cli

    verbs = domain_verbs(domain)
    ns = domain_parser(domain, verbs).parse_args(argv)

    def dispatch() -> None:
        from nmm_core.domain_models import check_domain_model, presets_for

        _register_presets(domain)
        if ns.command == "info":
            if getattr(ns, "image", None):
                check_domain_model(domain.name, domain.families, ns.model, ns.model_family)
            print_info(domain.name, ns, presets=presets_for(domain.families) if domain.families else None)
            return
        cls, fn, _ = verbs[ns.nmm_verb]
        fn(_checked_config(domain, cls, ns))

    return run_cli(dispatch, domain.name, getattr(ns, "nmm_verb", None))


def _checked_config(domain: Domain, cls: type, ns: Any) -> Any:
    """A verb's settings, its model refused first unless the domain takes it (`Domain.families`)."""
    from nmm_core.domain_models import check_domain_model

    check = partial(check_domain_model, domain.name, domain.families)
    model = getattr(cls, "__dataclass_fields__", {}).get("model")
    takes_model = model is not None and callable(model.default_factory) and isinstance(
        model.default_factory(), (ModelSettings, ExportModelSettings))
    if takes_model and vars(ns).get("model.model"):  # the flag's: before its recipe is logged as recommended
        check(vars(ns)["model.model"], vars(ns).get("model.family"))
    cfg = verb_config(cls, ns)
    if takes_model and cfg.model.model:  # the YAML's or the default (export's empty: the adapter's base)
        check(cfg.model.model, cfg.model.family)
    if getattr(cfg, "resume", None):
        from nmm_core.resume import refuse_other_program

        refuse_other_program(cfg.resume)  # before the verb loads or generates its data
    return cfg


def _register_presets(domain: Domain) -> None:
    """A downstream domain's presets that no `nmm.presets` entry point announced."""
    if not domain.presets:
        return
    from nmm_core.presets import all_presets, register

    installed = all_presets()
    register([p for p in domain.presets if p.name not in installed], owner=domain.name)
