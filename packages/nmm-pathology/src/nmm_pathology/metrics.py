"""PathVQA's scores: yes/no (closed) accuracy and open-answer recall, as functions on answers."""

from __future__ import annotations

from collections.abc import Sequence

from nmm_core.metrics import Reference, check_references, mean, normalize_answer

__all__ = ["closed_accuracy", "closed_accuracy_per_example", "is_yes_no", "open_recall",
           "open_recall_per_example"]

_YES_NO = ("yes", "no")


def is_yes_no(text: str) -> bool:
    """True when ``text`` normalises to exactly "yes" or "no"."""
    return normalize_answer(text) in _YES_NO


def _yes_no_answer(prediction: str) -> str | None:
    # A leading yes/no is also the first standalone one, so one scan covers both rules.
    for token in normalize_answer(prediction).split():
        if token in _YES_NO:
            return token
    return None


def closed_accuracy_per_example(
    predictions: Sequence[str], references: Sequence[Reference]
) -> list[float]:
    """1.0 where the prediction's first yes/no word matches the yes/no reference."""
    refs = check_references(predictions, references)
    scores = []
    for i, (pred, options) in enumerate(zip(predictions, refs, strict=False)):
        targets = {normalize_answer(t) for t in options}
        if not targets <= set(_YES_NO):
            raise ValueError(f"reference {i} is not yes/no: {options!r}")
        scores.append(float(_yes_no_answer(pred) in targets))
    return scores


def closed_accuracy(predictions: Sequence[str], references: Sequence[Reference]) -> float:
    """Accuracy on yes/no questions, reading the prediction's first standalone yes/no word.

    "normal" or "note" is no "no" here, where LLaVA-Med's evaluator (its issue #12) finds one.
    """
    return mean(closed_accuracy_per_example(predictions, references))


def _recall(prediction_tokens: set[str], target: str) -> float:
    target_tokens = normalize_answer(target).split()
    if not target_tokens:
        # Nothing left after normalisation (e.g. "the"): only an equally empty answer fits.
        return float(not prediction_tokens)
    return sum(token in prediction_tokens for token in target_tokens) / len(target_tokens)


def open_recall_per_example(
    predictions: Sequence[str], references: Sequence[Reference]
) -> list[float]:
    """Share of the best reference's normalised tokens found in the prediction, per example."""
    refs = check_references(predictions, references)
    scores = []
    for pred, options in zip(predictions, refs, strict=False):
        tokens = set(normalize_answer(pred).split())
        scores.append(max(_recall(tokens, t) for t in options))
    return scores


def open_recall(predictions: Sequence[str], references: Sequence[Reference]) -> float:
    """Mean token recall of references in predictions (PathVQA/LLaVA-Med open questions)."""
    return mean(open_recall_per_example(predictions, references))
