"""A task: how a domain words its prompts, cleans its answers and scores them.

Domain packages subclass `Task` (or configure `ShortAnswerTask`) instead of touching the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nmm_core.metric import Metric
from nmm_core.metrics import EXACT_MATCH, ROUGE1, ROUGE_L
from nmm_core.records import Example


@dataclass(frozen=True)
class Task:
    """Prompt wording, answer normalisation and the `Metric` values to report (the first is the primary).

    `metrics` holds only the scores that mean something for the task's answers, each in [0, 1]:
    a task whose answers are a word or a number declares neither BLEU (corpus BLEU is 0 when
    no answer has 4 tokens) nor ROUGE-2 (0 for every one-word answer).
    """

    name: str = "vqa"
    instruction: str = ""  # appended to every question, e.g. a short-answer request
    metrics: tuple[Metric, ...] = (EXACT_MATCH, ROUGE1, ROUGE_L)

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError(f"task {self.name!r} declares no metric")
        for metric in self.metrics:
            if not isinstance(metric, Metric):
                raise ValueError(f"task {self.name!r} declares an unknown metric {metric!r}: "
                                 "pass Metric values (nmm_core.metrics.EXACT_MATCH, ...)")
        names = self.metric_names
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r} declares a metric twice: {names}")

    @property
    def primary_metric(self) -> Metric:
        """The headline metric: the first declared (compare's delta and interval are on it)."""
        return self.metrics[0]

    @property
    def primary(self) -> str:
        """The headline metric's name (the key in reports)."""
        return self.metrics[0].name

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The declared metrics' names, in order (the report's columns)."""
        return tuple(m.name for m in self.metrics)

    def prompt(self, example: Example) -> str:
        """The question as the model reads it."""
        return f"{example.prompt} {self.instruction}".strip() if self.instruction else example.prompt

    def normalise(self, prediction: str) -> str:
        """The prediction as it is scored (the raw text is kept in predictions.jsonl too)."""
        return prediction.strip()

    def normalise_reference(self, reference: str) -> str:
        """A reference as it is scored: a task that rewrites answers rewrites both sides alike."""
        return reference

    def _references(self, references: Sequence[Sequence[str] | str]) -> list[list[str]]:
        return [[self.normalise_reference(r) for r in ([refs] if isinstance(refs, str) else refs)]
                for refs in references]

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
        """Corpus-level scores in [0, 1], one float per metric key."""
        preds, refs = list(predictions), self._references(references)
        return {m.name: m.score(preds, refs) for m in self.metrics}

    def score_one(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        """Per-example scores (of the metrics that have one) for predictions.jsonl."""
        refs = self._references([references])[0]
        return {m.name: float(m.per_example(prediction, refs)) for m in self.metrics if m.per_example is not None}


SHORT_ANSWER = "Answer with a single word or number."


def short_answer_task(name: str = "vqa") -> Task:
    """The generic VQA task: a short-answer instruction, exact match as the headline."""
    return Task(name=name, instruction=SHORT_ANSWER)
