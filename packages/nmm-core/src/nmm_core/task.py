"""A task: how a domain words its prompts, cleans its answers and scores them.

Domain packages subclass `Task` (or configure `ShortAnswerTask`) instead of touching the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nmm_core import metrics
from nmm_core.records import Example


@dataclass(frozen=True)
class Task:
    """Prompt wording, answer normalisation and the metrics to report (`primary` first)."""

    name: str = "vqa"
    instruction: str = ""  # appended to every question, e.g. a short-answer request
    metrics: tuple[str, ...] = ("exact_match", "relaxed_accuracy", "rouge", "bleu")
    primary: str = "exact_match"

    def prompt(self, example: Example) -> str:
        """The question as the model reads it."""
        return f"{example.prompt} {self.instruction}".strip() if self.instruction else example.prompt

    def normalise(self, prediction: str) -> str:
        """The prediction as it is scored (the raw text is kept in predictions.jsonl too)."""
        return prediction.strip()

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
        """Corpus-level scores, one float per metric key."""
        out: dict[str, float] = {}
        for name in self.metrics:
            value = getattr(metrics, name)(list(predictions), [list(r) for r in references])
            if isinstance(value, dict):
                out.update(value)
            else:
                out[name] = float(value)
        return out

    def score_one(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        """Per-example scores (the cheap, exact ones) for predictions.jsonl."""
        out = {}
        for name in self.metrics:
            if name in ("exact_match", "relaxed_accuracy", "closed_accuracy", "open_recall"):
                out[name] = getattr(metrics, f"{name}_per_example")([prediction], [list(references)])[0]
        return out


SHORT_ANSWER = "Answer with a single word or number."


def short_answer_task(name: str = "vqa") -> Task:
    """The generic VQA task: a short-answer instruction, exact match as the headline."""
    return Task(name=name, instruction=SHORT_ANSWER)
