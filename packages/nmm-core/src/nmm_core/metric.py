"""`Metric`: one score as a value, declared by whoever defines it (core's generic ones, a domain's own)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

PerExample = Callable[[str, Sequence[str]], float]
Corpus = Callable[[Sequence[str], Sequence[Sequence[str]]], float]


@dataclass(frozen=True)
class Metric:
    """A named score of predictions against their accepted references.

    - `per_example(prediction, references)` scores one example; a task keeps it in
      predictions.jsonl and `compare` resamples it for the paired bootstrap. None for a
      corpus-level metric (BLEU), or one a task does not keep per example.
    - `corpus(predictions, references)` scores the whole set; None means the mean of
      `per_example`. Given beside `per_example` it must equal that mean (a faster path).
    - `scale`: the value a perfect set of answers scores; every value lies in [0, scale]
      (1.0 for every metric nmm ships, BLEU included, so reports draw them on one axis).
    - `higher_is_better` says which direction of a difference is a gain.
    """

    name: str
    per_example: PerExample | None = None
    corpus: Corpus | None = None
    scale: float = 1.0
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a metric needs a name")
        if self.per_example is None and self.corpus is None:
            raise ValueError(f"metric {self.name!r} needs per_example, corpus or both")
        if not self.scale > 0:
            raise ValueError(f"metric {self.name!r}: scale must be > 0, got {self.scale!r}")

    @property
    def is_corpus_level(self) -> bool:
        """True when no per-example score exists (nothing to resample in a paired bootstrap)."""
        return self.per_example is None

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        """The score over all examples (references: the accepted answers of each)."""
        if self.corpus is not None:
            return float(self.corpus(predictions, references))
        if len(predictions) == 0:
            raise ValueError(f"metric {self.name!r}: predictions is empty: need at least one example")
        assert self.per_example is not None
        return sum(float(self.per_example(p, r)) for p, r in zip(predictions, references, strict=True)) / len(
            predictions)

    def gain(self, before: float, after: float) -> float:
        """`after - before` signed so that a positive value is an improvement."""
        return after - before if self.higher_is_better else before - after
