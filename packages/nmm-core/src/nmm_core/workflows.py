"""The shared commands (train, eval, compare) as functions of one config dataclass each.

Domain CLIs call these with their own `Task` and defaults; nothing here knows a domain.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from nmm_core.config import dump_yaml
from nmm_core.data import ColumnMap, check_limit, check_val_fraction, holdout
from nmm_core.errors import ConfigError, DataError
from nmm_core.evaluate import (
    EvalResult,
    GenerationSettings,
    answer_length,
    evaluate,
    previous_answers,
    scored,
    write_predictions,
)
from nmm_core.image_budget import BUDGET_HELP, check_budget
from nmm_core.lora import LoraSettings, apply_lora, load_adapter, mark_adapter, save_adapter
from nmm_core.model_checks import budget_for, model_image_limits
from nmm_core.model_checks import check_model_source as check_model_source  # its old home, still imported here
from nmm_core.models import LoadedModel, load_model, resolve_source
from nmm_core.pairs import make_pairs, write_pairs
from nmm_core.predict import predict_one as predict_one  # its old home: nmm-pathology imports it here
from nmm_core.records import Example, ImageLimits, within_limits
from nmm_core.report import breakdown_by, delta_lines, plot_loss, print_table, record_counts, write_comparison
from nmm_core.resume import open_resumed
from nmm_core.runs import RunDir
from nmm_core.seeds import resolve_seeds, seed_run
from nmm_core.sources import ColumnSource, check_source, load_columns
from nmm_core.task import Task
from nmm_core.train import train
from nmm_core.train_settings import TrainSettings
from nmm_core.validation import Answer

log = logging.getLogger(__name__)

# A domain's extra outputs (review files, problem lists, report sections), written into the run
# folder before it is marked complete, so a finished-looking run never lacks them. What it
# returns (if anything) joins the run's completion summary in status.json.
Finish = Callable[[Path], dict[str, Any] | None]

if TYPE_CHECKING:
    from nmm_core.sources import DataSource


@dataclass
class DataSettings:
    """Where the examples come from and how their columns map to records."""

    source: str = field(default="", metadata={"help": "hub dataset id or local file/folder",
                                              "aliases": ("--data",)})
    split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: str = field(default="test", metadata={"help": "split to evaluate on"})
    revision: str | None = field(default=None, metadata={"help": "hub dataset revision (pin it)"})
    id_column: str = "id"
    image_column: str = "image"
    prompt_column: str = "question"
    answers_column: str = "answer"
    image_root: str | None = field(default=None, metadata={"help": "folder for relative image paths"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N records"})
    on_bad_record: Literal["skip", "stop"] = field(
        default="skip", metadata={"help": "skip bad records (counted, listed) or stop at them"}
    )
    val_split: str = field(default="", metadata={"help": "validation split of --train-eval-steps (empty: a "
                                                         "seeded holdout of the training split)"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of the training split held out (drawn "
                                                               "with the run seed) where there is no validation split"})

    def __post_init__(self) -> None:
        check_limit(self.limit)
        check_val_fraction(self.val_fraction)

    def columns(self) -> ColumnMap:
        return ColumnMap(id=self.id_column, image=self.image_column,
                         prompt=self.prompt_column, answers=self.answers_column)


@dataclass
class ModelSettings:
    """Which model, on which device, in which precision."""

    model: str = field(default="tiny-qwen2-vl", metadata={"help": "preset name or model folder",
                                                          "aliases": ("--model",)})
    family: str | None = field(default=None, metadata={"help": "family of a bare hub id"})
    revision: str | None = field(default=None, metadata={"help": "commit of a bare hub id (pin it; presets "
                                                                 "carry their own)"})
    dtype: str = field(default="auto", metadata={"help": "auto | bfloat16 | float32 | float16"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda[:N]"})
    quantization: Literal["auto", "none", "4bit", "8bit"] = field(
        default="auto", metadata={"help": "4-bit nf4 (QLoRA), 8-bit, none; auto: the preset's default"}
    )
    quant_storage: Literal["uint8", "bfloat16", "float16", "float32"] = field(
        default="uint8", metadata={"help": "dtype 4-bit weights are packed in: uint8 (bitsandbytes' default), "
                                           "bfloat16 for QLoRA under FSDP (configs/accelerate/fsdp2-qlora.yaml)"}
    )
    max_image_tokens: int | None = field(default=None, metadata={"help": BUDGET_HELP.format("at most")})
    min_image_tokens: int | None = field(default=None, metadata={"help": BUDGET_HELP.format("at least")})

    def __post_init__(self) -> None:
        check_budget(self.min_image_tokens, self.max_image_tokens)

    def load(self, *, padding_side: str = "right") -> LoadedModel:
        return load_model(self.model, family=self.family, dtype=self.dtype, device=self.device,
                          quantization=None if self.quantization == "none" else self.quantization,
                          padding_side=padding_side, revision=self.revision,
                          image_tokens=(self.min_image_tokens, self.max_image_tokens),
                          quant_storage=self.quant_storage)


class RecommendsTwinRecipe:
    """A command config whose unset settings take a tiny twin's recipe (its preset's, then the domain's)."""

    # a domain's recipes for the twins, over the presets' own: {preset: {dotted setting: value}}
    twin_recipes: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    # whose recipe a command without a model of its own takes (`data inspect`: the domain's default)
    twin_model: ClassVar[str] = ""

    @classmethod
    def recommended_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The recipe for `settings["model.model"]` (called by `config_from_parsed`)."""
        from nmm_core.presets import recommended_settings

        return recommended_settings(str(settings.get("model.model", cls.twin_model)), cls.twin_recipes)


@dataclass
class TrainConfig(RecommendsTwinRecipe):
    """`train`: LoRA/QLoRA fine-tuning into a run folder."""

    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    output_dir: str = field(default="runs", metadata={"help": "where run folders are made"})
    resume: str | None = field(default=None, metadata={"help": "run folder to continue"})


@dataclass
class EvalConfig(RecommendsTwinRecipe):
    """`eval` / `compare`: batched generation and scores, optionally with an adapter."""

    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder"})
    merge: bool = field(default=True, metadata={"help": "merge the adapter for inference"})
    output_dir: str = "runs"
    seed: int = field(default=0, metadata={"help": "the run seed: bootstrap intervals, the pairs' sides, any "
                                                   "sampling (per-part seeds left unset take it)"})
    resume: str | None = field(default=None, metadata={"help": "run folder of an interrupted eval/compare: "
                                                                  "keep its answers, generate the rest"})
    progress: bool = field(default=True, metadata={"help": "show progress bars (--no-progress: off)"})


def load_split(data: Any, split: str, run: RunDir | None, *, limits: ImageLimits | None = None,
               source: DataSource | None = None) -> list[Example]:
    """Load one split from `source` (None: `data`'s columns), summarise it on stderr and list its skipped
    records in the run; images the model's processor would refuse (`limits`) are skipped (or stop) with the rest."""
    return checked_split(data, split, run, limits=limits, source=source)[0]


def checked_split(data: Any, split: str, run: RunDir | None, *, limits: ImageLimits | None = None,
                  source: DataSource | None = None) -> tuple[list[Example], dict[str, Any]]:
    """`load_split`'s records, and how many were used and skipped (`record_counts`) for the report."""
    loaded = source.load(split) if source is not None else load_columns(data, split)
    report = within_limits(loaded, limits, getattr(data, "on_bad_record", "skip"))
    print(f"[{split}] {report.summary()}", file=sys.stderr)
    listed = run.file(f"problems-{split}.jsonl") if report.problems and run is not None else None
    if listed is not None:
        report.write_problems(listed)
    if not report.kept:
        raise DataError(f"split {split!r} of {getattr(data, 'source', '?')}: no usable records ({report.summary()})"
                        + (f"; each problem is listed in {listed}" if listed else ""))
    return report.kept, record_counts(report, listed.name if listed else None)


def _eval_split(cfg: EvalConfig, run: RunDir, examples: list[Example] | None, records: dict[str, Any] | None,
                source: DataSource | None = None) -> tuple[list[Example], dict[str, Any] | None]:
    """The examples an eval/compare scores: the domain's own (with its `records` counts), or the eval
    split loaded and checked."""
    if examples is not None:
        return examples, records
    return checked_split(cfg.data, cfg.data.eval_split, run, limits=model_image_limits(cfg.model), source=source)


def _check_data(cfg: Any, examples: list[Example] | None, source: DataSource | None) -> None:
    """Before any run folder: a data source that is not there is the user's to fix, not a failed run."""
    if examples is None:
        check_source(source if source is not None else ColumnSource(cfg.data))


def _finished(finish: Finish | None, run: RunDir) -> dict[str, Any]:
    """Run the domain's `finish` in the still-incomplete run; its extra summary fields, if any."""
    return (finish(run.path) or {}) if finish is not None else {}


def _process_state(model: ModelSettings):
    """accelerate's process state, created once and before the Trainer's.

    The state is a process-wide singleton: made without `cpu=True` on a CPU machine it would
    ignore the launcher's WORLD_SIZE, and every rank would train alone.
    """
    from accelerate import PartialState

    from nmm_core.devices import pick_device

    return PartialState(cpu=pick_device(model.device).type == "cpu")


def _distributed_run_dir(state, create) -> RunDir:
    """Rank 0 makes the run folder; under `accelerate launch` every rank gets its path."""
    from accelerate.utils import broadcast_object_list

    holder = [str(create().path) if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(holder)
    return RunDir(holder[0]) if not state.is_main_process else RunDir.open(holder[0])


@dataclass
class Trainee:
    """What `run_train` trains: the adapted model, how it is batched, and how it is saved."""

    model: Any
    processor: Any
    family: Any
    save: Callable[[Path], Any]  # writes the adapter folder (atomically) at the given path
    device: Any
    bf16: bool
    collator: Any = None  # None: the chat collator with answer-only labels
    settings: TrainSettings | None = None  # None: the config's
    answer: Answer | None = None  # validation's generated answers where the model is not a chat VLM (GILL's)


def lora_trainee(cfg: TrainConfig) -> Trainee:
    """The preset/folder model with fresh LoRA adapters, saved as a peft adapter."""
    loaded = cfg.model.load()
    peft_model = apply_lora(loaded, cfg.lora, gradient_checkpointing=cfg.train.gradient_checkpointing)
    low, high = loaded.family.image_token_range(loaded.processor)  # the budget it trains at, as the processor has it
    return Trainee(peft_model, loaded.processor, loaded.family,
                   save=lambda path: save_adapter(peft_model, path, base_name=cfg.model.model,
                                                  family=loaded.family.name,
                                                  image_tokens={"min": low, "max": high}),
                   device=next(loaded.model.parameters()).device,
                   bf16=str(loaded.model.dtype) == "torch.bfloat16")


def family_trainee(model: ModelSettings) -> Callable[[TrainConfig], Trainee]:
    """What trains `model`: its family's own trainee where it names one, else core's LoRA trainee."""
    from nmm_core.families import get_family
    from nmm_core.presets import all_presets

    preset = all_presets().get(model.model)
    family = model.family or (preset.family if preset is not None else None)
    return (get_family(family).own_trainee() if family else None) or lora_trainee


def run_train(cfg: TrainConfig, task: Task, *, examples: list[Example] | None = None,
              finish: Finish | None = None, trainee: Callable[[TrainConfig], Trainee] | None = None,
              source: DataSource | None = None, kind: str = "train", max_new_tokens: int | None = None) -> Path:
    """Fine-tune and save the adapter; returns the completed run folder (`<stamp>-<kind>-<model>`).

    `trainee` builds what is trained (default: the model's family's own, such as GILL's with its
    collator and save, else core's LoRA trainee); `source` (resolved, its settings those of
    `cfg.data`) reads a domain's own data (its skips listed in the run folder); the run folder,
    resume, multi-process and reporting stay here. `max_new_tokens`: the answer length of the
    domain's `eval`, for validation's generated metric (none: the preset's, as `eval` decides).
    """
    _check_data(cfg, examples, source)
    state = _process_state(cfg.model)
    main = state.is_main_process
    seeds = resolve_seeds(cfg)
    if cfg.resume:
        run = open_resumed(cfg, cfg.resume, kind, may_change=TRAIN_MAY_CHANGE, reopen=main)
    else:
        run = _distributed_run_dir(
            state, lambda: RunDir.create(cfg.output_dir, kind, Path(cfg.model.model).name)
        )
    try:
        if main:
            dump_yaml(cfg, run.file("config.yaml"))
        train_set = examples if examples is not None else load_split(
            cfg.data, cfg.data.split, run, limits=model_image_limits(cfg.model), source=source)
        train_set, val_set, validation = validation_set(cfg, train_set, run, source=source)
        # before anything random is drawn: adapters and new parts are initialised here, before
        # the Trainer seeds (which it does again, with the same seed)
        seed_run(cfg.train.seed, deterministic=cfg.train.deterministic)
        built = (trainee or family_trainee(cfg.model))(cfg)
        answer_cap = None
        if (built.settings or cfg.train).eval_generate_limit:  # validation's answers as long as `eval`'s
            source_model = resolve_source(cfg.model.model, family=cfg.model.family, revision=cfg.model.revision)
            answer_cap = answer_length(max_new_tokens, source_model.preset)
        outcome = train(built.model, built.processor, built.family, train_set, task=task,
                        settings=built.settings or cfg.train, run_dir=run.path, resume=bool(cfg.resume),
                        bf16=built.bf16, use_cpu=built.device.type == "cpu", collator=built.collator,
                        eval_examples=val_set, max_new_tokens=answer_cap, answer=built.answer)
        state.wait_for_everyone()
        if not main:
            return run.final_path
        built.save(run.file("adapter"))
        mark_adapter(run.file("adapter"), weights=outcome.weights)
        plot_loss(run.file("metrics.jsonl"), run.file("loss.png"))
        if validation is not None:
            validation.update(stopped_early=outcome.stopped_early)
            if answer_cap is not None:
                validation.update(max_new_tokens=answer_cap)
        return run.complete(global_step=outcome.global_step, train_loss=outcome.train_loss,
                            examples=len(train_set), weights=outcome.weights, validation=validation,
                            resumed_from=outcome.resumed_from and str(run.final(outcome.resumed_from)),
                            seeds=seeds, deterministic=cfg.train.deterministic,
                            feature_cache=outcome.feature_cache, world_size=state.num_processes,
                            train_batch_size=outcome.batch_size,
                            **_finished(finish, run))
    except BaseException as exc:
        if main:
            run.fail(exc)
        raise


def validation_set(cfg: TrainConfig, train_set: list[Example], run: RunDir, *,
                   source: DataSource | None = None) -> tuple[list[Example], list[Example], dict[str, Any] | None]:
    """(training examples, validation examples, what the validation set is) for `--train-eval-steps`:
    the data's validation split where it names one, else a seeded holdout of the training split."""
    if cfg.train.eval_steps is None:
        return train_set, [], None
    data = cfg.data
    if getattr(data, "val_split", ""):
        val_set = load_split(data, data.val_split, run, limits=model_image_limits(cfg.model), source=source)
        return train_set, val_set, {"split": data.val_split, "examples": len(val_set)}
    seed, fraction = cfg.train.seed, getattr(data, "val_fraction", 0.1)  # the run seed draws the holdout too
    kept, held = holdout(train_set, fraction, seed=seed)
    print(f"[validation] {len(held)} of the {len(train_set)} training records held out "
          f"(fraction {fraction}, seed {seed})", file=sys.stderr)
    return kept, held, {"split": f"holdout of {getattr(data, 'split', 'train')}", "fraction": fraction,
                        "seed": seed, "examples": len(held)}


def evaluate_model(cfg: EvalConfig, task: Task, examples: list[Example], *, adapter: str | None,
                   name: str, out_file: Path | None) -> EvalResult:
    """Load the model (plus merged adapter) and evaluate it on `examples`; with `cfg.resume`, keep
    the answers `out_file` or its log already hold (no model is loaded if they are all there)."""
    resume = bool(cfg.resume) and out_file is not None
    if resume:
        done = previous_answers(out_file, examples)
        if len(done) == len(examples):
            log.info("%s: all %d answers are in %s", name, len(done), out_file.name)
            result = scored(examples, done, task=task, name=name)
            write_predictions(result, out_file)
            return result
    from transformers.utils import logging as transformers_logging

    bars_were_on = transformers_logging.is_progress_bar_enabled()
    if not cfg.progress:  # transformers' own "Loading weights" bar too
        transformers_logging.disable_progress_bar()
    try:
        loaded = cfg.model.load(padding_side="left")
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()
    model = loaded.model
    if adapter:
        t0 = time.perf_counter()
        model = load_adapter(loaded, adapter, merge=cfg.merge and not loaded.quantization)
        log.info("adapter attached in %.2f s", time.perf_counter() - t0)
    settings = replace(cfg.generation, max_new_tokens=answer_length(cfg.generation.max_new_tokens,
                                                                   loaded.source.preset))
    return evaluate(model, loaded.processor, loaded.family, examples, task=task,
                    settings=settings, name=name, out_file=out_file, resume=resume, progress=cfg.progress)


def _eval_run(cfg: EvalConfig, kind: str, into: Path | None = None) -> RunDir:
    """A new run folder, or with `cfg.resume` the interrupted one, if `kind` made it with these settings
    (or `into`, another run's folder); every RNG seeded with the run seed."""
    resolve_seeds(cfg)
    seed_run(cfg.seed)
    if into is not None:
        return RunDir(into)  # its config.yaml and completion are that run's
    if cfg.resume:
        return open_resumed(cfg, cfg.resume, kind, may_change=EVAL_MAY_CHANGE)
    run = RunDir.create(cfg.output_dir, kind, Path(cfg.model.model).name)
    dump_yaml(cfg, run.file("config.yaml"))
    return run


# what an eval/compare may change on resume: how fast it goes, not its answers
EVAL_MAY_CHANGE = ("generation.batch_size", "generation.pixels_on_device", "progress")
# ... and a train run: how often it logs and saves and how it loads data, not what it learns
TRAIN_MAY_CHANGE = ("train.num_workers", "train.logging_steps", "train.save_steps", "train.save_total_limit")


def run_eval(cfg: EvalConfig, task: Task, *, examples: list[Example] | None = None,
             finish: Finish | None = None, records: dict[str, Any] | None = None,
             source: DataSource | None = None) -> Path:
    """Evaluate one model; predictions.jsonl + report in a run folder (`records`: the counts behind
    `examples`, for the report)."""
    _check_data(cfg, examples, source)
    cfg = replace(cfg, model=budget_for(cfg.model, cfg.adapter))
    with _eval_run(cfg, "eval") as run:
        test, records = _eval_split(cfg, run, examples, records, source)
        name = "fine-tuned" if cfg.adapter else "base"
        result = evaluate_model(cfg, task, test, adapter=cfg.adapter, name=name,
                                out_file=run.file("predictions.jsonl"))
        write_comparison([result], run.path, title=f"{task.name}: {cfg.model.model}",
                         primary=task.primary_metric, seed=cfg.seed, records=records)
        print_table([result], title=f"{task.name} on {len(test)} examples")
        return run.complete(**result.metrics, seeds=resolve_seeds(cfg), **_finished(finish, run))


def run_compare(cfg: EvalConfig, task: Task, *, examples: list[Example] | None = None,
                finish: Finish | None = None, kind: str = "compare",
                seed: int | None = None, records: dict[str, Any] | None = None,
                source: DataSource | None = None, into: Path | None = None, breakdown: str | None = None) -> Path:
    """Base vs base + adapter on the same examples and settings; report with both, and pairs.jsonl.

    `kind` names the run folder (`<stamp>-<kind>-<model>`); `seed` (None: the run seed) shuffles the
    pairs' sides and draws the bootstrap's resamples; `into`: the still-incomplete folder of another
    run to write into instead (a train run's `finish`: one folder for both), left for it to complete;
    `breakdown`: the examples' `meta` key the report breaks the primary metric down by.
    """
    if not cfg.adapter:
        raise ConfigError(f"{kind} needs --adapter (the fine-tuned LoRA folder)")
    _check_data(cfg, examples, source)
    cfg = replace(cfg, model=budget_for(cfg.model, cfg.adapter))  # base and fine-tuned see the same images
    with _eval_run(cfg, kind, into) as run:
        seed = cfg.seed if seed is None else seed
        test, records = _eval_split(cfg, run, examples, records, source)
        results = [
            evaluate_model(cfg, task, test, adapter=None, name="base",
                           out_file=run.file("predictions-base.jsonl")),
            evaluate_model(cfg, task, test, adapter=cfg.adapter, name="fine-tuned",
                           out_file=run.file("predictions-fine-tuned.jsonl")),
        ]
        write_pairs(make_pairs(test, *results, folder=run.path, task=task.name, seed=seed),
                    run.file("pairs.jsonl"))
        kinds = [str(example.meta.get(breakdown)) for example in test] if breakdown else []
        write_comparison(results, run.path, title=f"{task.name}: base vs fine-tuned", primary=task.primary_metric,
                         context={"model": cfg.model.model, "data": cfg.data.source,
                                  # with `into`, relative to the report: that run's folder is renamed on completion
                                  "adapter": cfg.adapter if into is None else os.path.relpath(cfg.adapter, into)},
                         seed=seed, records=records,
                         breakdown={r.name: breakdown_by(r, kinds, task.primary) for r in results} if kinds else None)
        print_table(results, title=f"{task.name}: base vs fine-tuned on {len(test)} examples")
        for line in delta_lines(results, task.primary_metric, seed=seed):
            print(f"{task.primary}: {line}")
        if into is not None:
            return run.path
        return run.complete(**{f"{r.name}.{task.primary}": r.metrics[task.primary] for r in results},
                            seeds=resolve_seeds(cfg), **_finished(finish, run))
