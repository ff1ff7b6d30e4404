"""ChartQA's relaxed accuracy, as functions and as the `RELAXED_ACCURACY` metric a chart task declares."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nmm_core.metrics import Reference, check_references, mean, per_example_metric

__all__ = ["RELAXED_ACCURACY", "relaxed_accuracy", "relaxed_accuracy_per_example"]


def _to_float(text: str) -> float | None:
    try:
        value = float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None
    # "nan"/"inf" parse as floats but are words here; compare them as strings.
    return value if math.isfinite(value) else None


def _relaxed_correct(prediction: str, target: str, tolerance: float) -> bool:
    prediction, target = prediction.strip(), target.strip()
    pred_value, target_value = _to_float(prediction), _to_float(target)
    if pred_value is not None and target_value:
        return abs(pred_value - target_value) / abs(target_value) <= tolerance
    return prediction.lower() == target.lower()


def relaxed_accuracy_per_example(
    predictions: Sequence[str], references: Sequence[Reference], tolerance: float = 0.05
) -> list[float]:
    """ChartQA relaxed correctness (1.0 or 0.0) per example; `relaxed_accuracy` says how."""
    refs = check_references(predictions, references)
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    return [
        float(any(_relaxed_correct(p, t, tolerance) for t in options))
        for p, options in zip(predictions, refs, strict=False)
    ]


def relaxed_accuracy(
    predictions: Sequence[str], references: Sequence[Reference], tolerance: float = 0.05
) -> float:
    """ChartQA relaxed accuracy in [0, 1]: numbers within ``tolerance`` relative error, text exact.

    It is pix2struct's ``relaxed_correctness`` (ChartQA's published scores) but for two cases:
    text is compared stripped of surrounding whitespace (the reference scores " Yes" against
    "yes" wrong; numbers are stripped by both), and "nan"/"inf" are compared as text (the
    reference parses them as floats, so they never match anything, even themselves). Like the
    reference, "45%" reads as 0.45 and "$5" or "1,000" as text, so "45%" vs "45" and "$5" vs
    "5" score 0 here where `exact_match`, which drops punctuation, scores them 1.
    """
    return mean(relaxed_accuracy_per_example(predictions, references, tolerance))


RELAXED_ACCURACY = per_example_metric("relaxed_accuracy", relaxed_accuracy_per_example)
