"""A task: how a domain words its prompts, cleans its answers and scores them.

Domain packages subclass `Task` (or configure `ShortAnswerTask`) instead of touching the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nmm_core import metrics
from nmm_core.records import Example

# Scores cheap and exact enough to keep per example in predictions.jsonl.
PER_EXAMPLE = ("exact_match", "relaxed_accuracy", "closed_accuracy", "open_recall")
CORPUS = (*PER_EXAMPLE, *metrics.ROUGE_KEYS, "rouge", "bleu")  # "rouge" stands for all three ROUGE keys


@dataclass(frozen=True)
class Task:
    """Prompt wording, answer normalisation and the metrics to report (`primary` first).

    `metrics` names only the scores that mean something for the task's answers, each in [0, 1]:
    a task whose answers are a word or a number declares neither BLEU (corpus BLEU is 0 when
    no answer has 4 tokens) nor ROUGE-2 (0 for every one-word answer).
    """

    name: str = "vqa"
    instruction: str = ""  # appended to every question, e.g. a short-answer request
    metrics: tuple[str, ...] = ("exact_match", "relaxed_accuracy", "rouge1", "rougeL")
    primary: str = "exact_match"

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
        out: dict[str, float] = {}
        rouge: dict[str, float] | None = None
        for name in self.metrics:
            if name not in CORPUS:
                raise ValueError(f"task {self.name!r} declares an unknown metric {name!r}: one of {CORPUS}")
            if name == "rouge" or name in metrics.ROUGE_KEYS:
                rouge = rouge or metrics.rouge(preds, refs)  # one pass serves every ROUGE key
                out.update(rouge if name == "rouge" else {name: rouge[name]})
            else:
                out[name] = float(getattr(metrics, name)(preds, refs))
        return out

    def score_one(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        """Per-example scores (the cheap, exact ones) for predictions.jsonl."""
        refs = self._references([references])
        return {name: getattr(metrics, f"{name}_per_example")([prediction], refs)[0]
                for name in self.metrics if name in PER_EXAMPLE}


SHORT_ANSWER = "Answer with a single word or number."


def short_answer_task(name: str = "vqa") -> Task:
    """The generic VQA task: a short-answer instruction, exact match as the headline."""
    return Task(name=name, instruction=SHORT_ANSWER)
