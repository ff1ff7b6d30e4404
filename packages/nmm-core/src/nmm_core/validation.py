"""Validation during training: which settings fit together, the Trainer's own arguments for them,
and the callback that generates answers (the Trainer's eval loop only measures the loss)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nmm_core.errors import ConfigError
from nmm_core.metric import Metric

if TYPE_CHECKING:
    from nmm_core.records import Example
    from nmm_core.task import Task
    from nmm_core.train_settings import TrainSettings

# (model, validation examples, answer cap) -> (answers, each one's references): validation's generation by
# a model of a family's own trainee (GILL captions the image, scored against its caption)
Answer = Callable[[Any, "Sequence[Example]", "int | None"], "tuple[list[str], list[list[str]]]"]


def check_validation(s: TrainSettings) -> None:
    """A ConfigError naming the first validation setting that cannot work with the others."""
    if s.eval_steps is not None and s.eval_steps != "epoch" and s.eval_steps < 1:
        raise ConfigError(f"eval_steps must be at least 1 or 'epoch', got {s.eval_steps}")
    if s.eval_generate_limit < 0:
        raise ConfigError(f"eval_generate_limit must be 0 or more, got {s.eval_generate_limit}")
    if s.early_stopping_patience is not None and s.early_stopping_patience < 1:
        raise ConfigError(f"early_stopping_patience must be at least 1, got {s.early_stopping_patience}")
    if s.eval_steps is None:
        for name, unset in (("eval_generate_limit", 0), ("keep_best", None), ("early_stopping_patience", None)):
            if getattr(s, name) != unset:
                raise ConfigError(f"{name} needs eval_steps (--train-eval-steps N|epoch): it works on validations")
    if s.keep_best == "metric" and not s.eval_generate_limit:
        raise ConfigError("keep_best metric needs eval_generate_limit > 0 (the metric comes from generated answers)")
    if s.keep_best and isinstance(s.eval_steps, int) and s.save_steps % s.eval_steps:
        # the Trainer can only go back to a step it saved
        raise ConfigError(f"keep_best needs save_steps ({s.save_steps}) to be a multiple of eval_steps "
                          f"({s.eval_steps}): each validated step must have a checkpoint")


def evaluation_arguments(settings: TrainSettings, metric: Metric | str | None) -> dict[str, Any]:
    """The Trainer's own validation arguments for `settings` (none without `eval_steps`); `metric`
    is the task's primary (a name alone counts as higher-is-better, as every shipped one is)."""
    if settings.eval_steps is None:
        return {}
    by_epoch = settings.eval_steps == "epoch"
    out: dict[str, Any] = {"eval_strategy": "epoch" if by_epoch else "steps",
                           "per_device_eval_batch_size": settings.batch_size, "prediction_loss_only": True}
    if not by_epoch:
        out["eval_steps"] = settings.eval_steps
    if settings.keep_best or settings.early_stopping_patience:
        by_metric = settings.keep_best == "metric"
        name = metric.name if isinstance(metric, Metric) else metric
        higher = metric.higher_is_better if isinstance(metric, Metric) else True
        # the loss shrinks with quality; the metric says which way it goes
        out.update(metric_for_best_model=f"eval_{name}" if by_metric else "eval_loss",
                   greater_is_better=by_metric and higher)
    if settings.keep_best:
        out["load_best_model_at_end"] = True
    if settings.early_stopping_patience:
        out["restore_callback_states_from_checkpoint"] = True  # a resumed run keeps its count of bad validations
    return out


def generation_metric(processor, family, examples: Sequence[Example], *, task: Task, batch_size: int,
                      max_new_tokens: int | None = None, answer: Answer | None = None):
    """A callback that, after each validation loss, generates answers for `examples` with nmm's
    `evaluate` (the Trainer's eval loop does not generate), at most `max_new_tokens` each (None:
    evaluate's default), and logs `eval_<task.primary>`; added to the Trainer's metrics, keep-best
    and early stopping see it too. `answer`: a model's own generation (one that is not a chat VLM,
    GILL's), giving the answers and what each is scored against."""
    from transformers import TrainerCallback

    from nmm_core.evaluate import GenerationSettings, evaluate

    settings = GenerationSettings(batch_size=batch_size, max_new_tokens=max_new_tokens)
    key = f"eval_{task.primary}"

    class GenerationMetric(TrainerCallback):
        attach_trainer = True  # `make_trainer` sets `trainer`: it logs through the Trainer
        trainer = None

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            if answer is not None:
                said, references = answer(self.trainer.model, examples, max_new_tokens)
                scores = task.score([task.normalise(a) for a in said], references)
            else:
                scores = evaluate(self.trainer.model, processor, family, examples, task=task, settings=settings,
                                  name=f"step-{state.global_step}", progress=False).metrics
            value = float(scores[task.primary])
            if metrics is not None:
                metrics[key] = value
            self.trainer.log({key: value})

    return GenerationMetric()
