"""The domain's commands as functions of one config dataclass each (the CLI parses them with
`nmm_core.config`; tests and notebooks call them directly)."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np

from nmm_connectome.data import Cohort, Policy, load_any, summarize
from nmm_connectome.evaluate import score, to_edges
from nmm_connectome.fc import HCP_REST, HCP_TASK
from nmm_connectome.methods import METHODS
from nmm_connectome.settings import BridgeSettings, RidgeSettings, Sd15Settings
from nmm_connectome.synthetic import SyntheticSpec, synthesize
from nmm_core.config import dump_yaml, load_yaml_config
from nmm_core.errors import ConfigError, DataError
from nmm_core.files import atomic_write_json, atomic_write_npz
from nmm_core.records import listed_lines, write_problems
from nmm_core.runs import RunDir
from nmm_core.seeds import part_seed, resolve_seeds, seed_run

log = logging.getLogger(__name__)

MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]  # the flag's choices: the table's rows


@dataclass(frozen=True, kw_only=True)
class SynthesizeConfig(SyntheticSpec):
    """`data synthesize`: write the seeded synthetic cohort to a cohort folder."""

    out: str = field(metadata={"help": "cohort folder to write (replaced if it is one)"})


@dataclass
class InspectConfig:
    """`data inspect`: check a cohort or FC folder and summarise it."""

    data: str = field(metadata={"help": "cohort folder or folder of FC matrices"})
    on_bad: Literal["skip", "stop"] = field(default="skip", metadata={"help": "skip bad subjects or stop"})
    problems: str | None = field(default=None, metadata={"help": "write every skipped subject to this JSONL"})
    listed: int = field(default=20, metadata={"help": "skipped subjects printed"})


@dataclass
class BuildFcConfig:
    """`data build-fc`: FC per subject from HCP CIFTI files, time series or FC matrices."""

    source: str = field(metadata={"help": "HCP root (subject folders) or a folder of arrays"})
    out: str = field(metadata={"help": "cohort folder to write"})
    input: Literal["cifti", "timeseries", "fc"] = field(
        default="cifti", metadata={"help": "dtseries + parcellation, parcellated time series, or FC"})
    parcellation: str | None = field(default=None, metadata={"help": "dlabel or NIfTI labels (cifti)"})
    rest_pattern: str = field(default=HCP_REST, metadata={"help": "glob under source, with {subject}"})
    task_pattern: str = field(default=HCP_TASK, metadata={"help": "glob under source, with {subject}"})
    subjects: list[str] = field(default_factory=list, metadata={"help": "only these (default: all)"})
    estimator: Literal["empirical", "ledoit_wolf"] = "empirical"
    fisher_z: bool = field(default=False, metadata={"help": "store Fisher z instead of r"})
    kind: Literal["correlation", "fisher_z"] = field(
        default="correlation", metadata={"help": "what precomputed FC files hold (input fc)"})
    mat_key: str | None = field(default=None, metadata={"help": "variable in .mat files"})
    on_bad: Literal["skip", "stop"] = "skip"


@dataclass
class SplitSettings:
    """Which subjects are held out: the same settings give the same split for every command."""

    test_fraction: float = field(default=0.2, metadata={"help": "share of subjects held out"})
    seed: int | None = field(default=None, metadata={"help": "the split's permutation (default: the run seed)"})
    on_bad: Literal["skip", "stop"] = field(default="skip", metadata={"help": "bad subjects: skip or stop"})

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"split.test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclass
class TrainConfig:
    """`train`: fit one method on the training subjects into a run folder."""

    data: str = field(metadata={"help": "cohort folder (data synthesize / data build-fc)"})
    method: MethodName = "bridge"
    split: SplitSettings = field(default_factory=SplitSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    ridge: RidgeSettings = field(default_factory=RidgeSettings)
    sd15: Sd15Settings = field(default_factory=Sd15Settings)
    output_dir: str = "runs"
    name: str = field(default="", metadata={"help": "run name (default: the method)"})
    seed: int = field(default=0, metadata={"help": "the run seed: every random draw (per-part seeds left unset "
                                                   "take it)"})
    deterministic: bool = field(default=False, metadata={
        "help": "the framework's deterministic algorithms (transformers' enable_full_determinism)"})
    resume: str | None = field(default=None, metadata={"help": "an interrupted sd15 run folder: continue from "
                                                                  "its last checkpoint"})


@dataclass
class PredictConfig:
    """`predict`: a trained run's task FC predictions for the held-out (or all) subjects."""

    run: str = field(metadata={"help": "a train run folder"})
    data: str = field(default="", metadata={"help": "cohort folder (default: the run's)"})
    subjects: Literal["test", "all"] = "test"
    output_dir: str = "runs"


@dataclass
class EvalConfig:
    """`eval`: every given run and the baselines on the same held-out subjects; the report."""

    data: str = field(metadata={"help": "cohort folder"})
    runs: list[str] = field(default_factory=list, metadata={"help": "train run folders to compare"})
    split: SplitSettings = field(default_factory=SplitSettings)
    ridge: RidgeSettings = field(default_factory=RidgeSettings)
    one_step: bool = field(default=True, metadata={"help": "also score bridge runs' one-step endpoint"})
    output_dir: str = "runs"
    name: str = "connectome"
    seed: int = field(default=0, metadata={"help": "the run seed (per-part seeds left unset take it)"})


# -- data ---------------------------------------------------------------------------------------

def _write_cohort(cohort: Cohort, out: str | Path, problems, kind: str) -> Path:
    """Write into a temporary sibling, then swap it in (replacing only a `kind` cohort written before)."""
    from nmm_core.files import write_folder

    def build(tmp: Path) -> None:
        cohort.save(tmp)
        if problems:
            write_problems(problems, tmp / "problems.jsonl")

    return write_folder(out, build, marker="cohort.json", maker={"program": "nmm-connectome", "kind": kind})


def run_synthesize(cfg: SynthesizeConfig) -> Path:
    from nmm_core.files import interrupt_leaves_nothing

    spec = SyntheticSpec(**{f.name: getattr(cfg, f.name) for f in fields(SyntheticSpec)})  # no `out` in its meta
    with interrupt_leaves_nothing(cfg.out):
        cohort = synthesize(spec)
    out = _write_cohort(cohort, cfg.out, [], "synthetic")
    print(f"synthetic cohort: {len(cohort)} subjects, {cohort.n_regions} regions -> {out}")
    return out


def run_build_fc(cfg: BuildFcConfig) -> Path:
    if cfg.input == "cifti":
        from nmm_connectome.fc import build_cohort_from_cifti

        if not cfg.parcellation:
            raise ConfigError("--input cifti needs --parcellation (a .dlabel.nii or NIfTI label file)")
        cohort, problems = build_cohort_from_cifti(
            cfg.source, cfg.parcellation, rest_pattern=cfg.rest_pattern, task_pattern=cfg.task_pattern,
            subjects=cfg.subjects or None, estimator=cfg.estimator, fisher=cfg.fisher_z, policy=cfg.on_bad)
    else:
        from nmm_connectome.data import load_array_folder

        cohort, problems = load_array_folder(cfg.source, content=cfg.input, kind=cfg.kind, policy=cfg.on_bad,
                                             mat_key=cfg.mat_key, estimator=cfg.estimator, fisher=cfg.fisher_z)
        if cfg.subjects:
            cohort = cohort.subset([s for s in cfg.subjects if s in set(cohort.subjects)])
    _print_skipped(len(cohort), problems)
    out = _write_cohort(cohort, cfg.out, problems, "cohort")
    print(f"cohort: {len(cohort)} subjects, {cohort.n_regions} regions ({cohort.kind}) -> {out}")
    return out


def _print_skipped(kept: int, problems: list, where: str = "") -> None:
    """How many subjects were left out, and the first ten of them, on stderr."""
    print(f"{where}{summarize(kept, problems)}", file=sys.stderr)
    for p in problems[:10]:
        print(f"  skipped: {p}", file=sys.stderr)


def load_data(path: str, policy: Policy) -> tuple[Cohort, list]:
    """The cohort at `path` and the subjects left out of it, summarised on stderr."""
    if not path:
        raise ConfigError("no data folder given: pass --data")
    cohort, problems = load_any(path, policy=policy)
    if problems:
        _print_skipped(len(cohort), problems, f"[{path}] ")
    return cohort, problems


def run_inspect(cfg: InspectConfig) -> dict:
    cohort, problems = load_any(cfg.data, policy=cfg.on_bad)
    rest, task = to_edges(cohort.rest), to_edges(cohort.task)
    paired_r = float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(rest, task, strict=True)]))
    info = {
        "subjects": len(cohort), "regions": cohort.n_regions, "edges": rest.shape[1], "kind": cohort.kind,
        "networks": sorted(set(cohort.networks)) if cohort.networks else None,
        "source": cohort.meta.get("source"), "skipped": summarize(len(cohort), problems),
        "mean rest edge": round(float(rest.mean()), 4), "mean task edge": round(float(task.mean()), 4),
        "mean r(rest, task) within subject": round(paired_r, 4),
        "min eigenvalue (rest, task)": [round(float(np.linalg.eigvalsh(m.astype(np.float64)).min()), 4)
                                        for m in (cohort.rest.mean(0), cohort.task.mean(0))],
    }
    for key, value in info.items():
        print(f"{key:<36} {value}")
    for line in listed_lines(problems, cfg.listed):
        print(line)
    if cfg.problems:
        write_problems(problems, cfg.problems)
    return info


# -- split, train, predict ------------------------------------------------------------------------

def split_subjects(subjects: list[str], settings: SplitSettings) -> tuple[list[str], list[str]]:
    """(train, test): a seeded permutation of the sorted ids, the first `test_fraction` held out."""
    ids = sorted(subjects)
    n_test = max(1, round(settings.test_fraction * len(ids)))
    if len(ids) - n_test < 4:
        raise DataError(f"{len(ids)} subjects are too few to hold out {n_test} and train on the rest")
    order = np.random.default_rng(part_seed(settings.seed)).permutation(len(ids))
    test = sorted(ids[i] for i in order[:n_test])
    train = sorted(ids[i] for i in order[n_test:])
    return train, test


def run_train(cfg: TrainConfig) -> Path:
    seeds = resolve_seeds(cfg)
    seed_run(cfg.seed, deterministic=cfg.deterministic)
    cohort, _ = load_data(cfg.data, cfg.split.on_bad)
    train_ids, test_ids = split_subjects(cohort.subjects, cfg.split)
    train = cohort.subset(train_ids)
    method = METHODS[cfg.method]
    if cfg.resume and method.resume_may_change is None:
        resumable = " or ".join(name for name, m in METHODS.items() if m.resume_may_change is not None)
        raise ConfigError(f"--resume continues an {resumable} run from its checkpoints; {cfg.method} trains in "
                          "seconds and keeps none: start it again")
    if cfg.resume:
        from nmm_core.resume import open_resumed

        # what the method does not read (the other methods' settings, the run's name) may differ
        others = tuple(name for name in METHODS if name != cfg.method)
        run = open_resumed(cfg, cfg.resume, "train", may_change=(*method.resume_may_change, *others, "name"))
    else:
        run = RunDir.create(cfg.output_dir, "train", cfg.name or cfg.method,
                            resumes=method.resume_may_change is not None)
    with run:
        dump_yaml(cfg, run.file("config.yaml"))
        atomic_write_json(run.file("split.json"), {
            "data": str(Path(cfg.data).resolve()), "regions": cohort.regions, "kind": cohort.kind,
            "train": train_ids, "test": test_ids})
        start = time.perf_counter()
        summary: dict = {"method": cfg.method, "train_subjects": len(train_ids)}
        summary.update(method.save(method.fit(cfg, train, run), run))
        summary["seconds"] = round(time.perf_counter() - start, 2)
        summary["seeds"] = seeds
        test = cohort.subset(test_ids)
        pred = predict_edges(run.path, to_edges(test.rest))
        held_out = score(cfg.method, pred, to_edges(test.task), to_edges(train.task).mean(0), test_ids).summary()
        summary["held_out"] = {k: round(v, 4) for k, v in held_out.items()}
        print(f"{cfg.method}: trained on {len(train_ids)} subjects in {summary['seconds']} s; held-out "
              f"r {held_out['r']:.3f}, subject-specific r {held_out['r_subject']:.3f}")
        path = run.complete(**summary)
    print(path)
    return path


def run_config(run_dir: str | Path) -> TrainConfig:
    run = Path(run_dir)
    missing = [name for name in ("config.yaml", "split.json") if not (run / name).is_file()]
    if missing:
        raise ConfigError(f"{run}: not a connectome train run (it has no {' or '.join(missing)})")
    return load_yaml_config(TrainConfig, run / "config.yaml")


def predict_edges(run_dir: str | Path, rest: np.ndarray, *, one_step: bool = False) -> np.ndarray:
    """Predicted task edges (n, E) from a train run's model; `one_step`: the bridge endpoint."""
    method = METHODS[run_config(run_dir).method]
    return (method.one_step if one_step else method.predict)(Path(run_dir) / "model", rest)


def _split_of(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "split.json").read_text(encoding="utf-8"))


def run_predict(cfg: PredictConfig) -> Path:
    split = _split_of(cfg.run) if run_config(cfg.run) else {}
    cohort, _ = load_data(cfg.data or split["data"], "skip")
    if cohort.regions != split["regions"]:
        raise DataError(f"{cfg.data}: its regions differ from those {cfg.run} was trained on")
    ids = split["test"] if cfg.subjects == "test" else cohort.subjects
    cohort = cohort.subset([s for s in ids if s in set(cohort.subjects)])
    with RunDir.create(cfg.output_dir, "predict", Path(cfg.run).name) as run:
        dump_yaml(cfg, run.file("config.yaml"))
        pred = predict_edges(cfg.run, to_edges(cohort.rest))
        from nmm_connectome.evaluate import from_edges

        diagonal = 1.0 if cohort.kind == "correlation" else 0.0
        atomic_write_npz(run.file("predictions.npz"), compressed=True, subjects=np.array(cohort.subjects),
                         task_pred=from_edges(pred, diagonal).astype(np.float32), regions=np.array(cohort.regions))
        path = run.complete(subjects=len(cohort), source_run=str(cfg.run))
    print(f"{len(cohort)} predictions -> {path / 'predictions.npz'}")
    return path


# -- eval -------------------------------------------------------------------------------------------

def _method_name(run_dir: str, cfg: TrainConfig, taken: set[str]) -> str:
    name = METHODS[cfg.method].label(cfg)
    if name in taken or cfg.name:
        name = f"{name} [{cfg.name or Path(run_dir).name}]"
    return name


def run_eval(cfg: EvalConfig) -> Path:
    from nmm_connectome.baselines import PcaRidge, group_mean, rest_fc
    from nmm_connectome.report import table, write_report
    from nmm_core.report import records_line

    resolve_seeds(cfg)
    seed_run(cfg.seed)
    cohort, problems = load_data(cfg.data, cfg.split.on_bad)
    train_ids, test_ids = split_subjects(cohort.subjects, cfg.split)
    train, test = cohort.subset(train_ids), cohort.subset(test_ids)
    tr_rest, tr_task = to_edges(train.rest), to_edges(train.task)
    rest, truth = to_edges(test.rest), to_edges(test.task)
    g = tr_task.mean(0)
    with RunDir.create(cfg.output_dir, "eval", cfg.name) as run:
        dump_yaml(cfg, run.file("config.yaml"))
        listed = "problems-data.jsonl" if problems else None
        if problems:
            write_problems(problems, run.file(listed))
        # the same counts as core's reports: subjects used, skipped and the file listing the skipped
        records = {"used": len(cohort), "total": len(cohort) + len(problems), "skipped": len(problems),
                   "listed_in": listed}
        ridge = PcaRidge.fit(tr_rest, tr_task, n_components=cfg.ridge.components, alphas=cfg.ridge.alphas)
        preds = {"rest FC": rest_fc(rest), "group mean": group_mean(tr_task, len(test_ids)),
                 f"ridge (PCA {len(ridge.components)})": ridge.predict(rest)}  # the components it kept
        context: dict = {"data": cfg.data, "held-out subjects": len(test_ids),
                          "training subjects": len(train_ids), "regions": cohort.n_regions, "FC": cohort.kind,
                          "split seed": cfg.split.seed, "runs": ", ".join(cfg.runs) or "none (baselines only)",
                          "records": records_line(records)}
        round_trips: dict = {}
        for run_dir in cfg.runs:
            train_cfg, split = run_config(run_dir), _split_of(run_dir)
            if split["regions"] != cohort.regions:
                raise ConfigError(f"{run_dir} was trained on other regions than {cfg.data}")
            if sorted(split["test"]) != test_ids or set(split["train"]) & set(test_ids):
                raise ConfigError(f"{run_dir} was trained with another split than this eval's held-out "
                                  f"subjects: pass the same --split-* settings as its train run")
            name = _method_name(run_dir, train_cfg, set(preds))
            preds[name] = predict_edges(run_dir, rest)
            method = METHODS[train_cfg.method]
            if method.round_trip is not None:
                trip = round_trips[name] = method.round_trip(Path(run_dir) / "model")
                context[f"{name}: matrix -> image -> matrix round trip (training task FC)"] = "; ".join(
                    f"{k}: MAE {v['mae']:.4f}, r {v['r']:.3f}" for k, v in trip.items())
            if method.one_step is not None and cfg.one_step:
                preds[f"{name}, 1-step endpoint"] = predict_edges(run_dir, rest, one_step=True)
        scores = [score(name, p, truth, g, test_ids) for name, p in preds.items()]
        example = int(np.argsort([s for s in scores[0].r_subject])[len(test_ids) // 2])  # a typical subject
        diagonal = 1.0 if cohort.kind == "correlation" else 0.0
        shown = {k: v[example] for k, v in preds.items()}
        write_report(run.path, scores, subject=test_ids[example], rest=rest[example], true=truth[example],
                     predictions=shown, group_mean=g, title="Rest FC -> motor-task FC", context=context,
                     diagonal=diagonal, extra={"ridge_alpha": ridge.alpha, "round_trips": round_trips,
                            "records": records})
        atomic_write_npz(run.file("predictions.npz"), compressed=True, subjects=np.array(test_ids),
                         methods=np.array(list(preds)), edges=np.stack(list(preds.values())).astype(np.float32),
                         truth=truth.astype(np.float32))
        print(table(scores))
        path = run.complete(**{s.method: round(s.summary()["r_subject"], 4) for s in scores})
    print(path)
    return path
