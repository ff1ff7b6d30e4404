"""Core's generic text metrics: ROUGE, BLEU and VQA exact match, every one in [0, 1] (BLEU is
sacrebleu's score / 100), as functions and as `Metric` values a task declares. A domain's own
metrics (ChartQA's relaxed accuracy, PathVQA's closed accuracy) live in its package.

Every metric takes ``predictions`` (a list of str) and ``references`` (a list whose items
are a str or a list/tuple of accepted str answers); bad inputs raise ``ValueError``.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache

from nmm_core.metric import Metric

__all__ = [
    "BLEU",
    "EXACT_MATCH",
    "ROUGE",
    "ROUGE1",
    "ROUGE2",
    "ROUGE_KEYS",
    "ROUGE_L",
    "Reference",
    "bleu",
    "bleu_per_example",
    "check_references",
    "exact_match",
    "exact_match_per_example",
    "mean",
    "normalize_answer",
    "per_example_metric",
    "rouge",
    "rouge_metric",
    "rouge_per_example",
]

Reference = str | Sequence[str]

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")  # what `rouge` returns
_ASCII_PUNCT = frozenset(string.punctuation)
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def check_references(predictions: Sequence[str], references: Sequence[Reference]) -> list[list[str]]:
    """Validate the inputs and return every example's references as a list of str."""
    for name, value in (("predictions", predictions), ("references", references)):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ValueError(f"{name} must be a list, got {type(value).__name__}")
    if len(predictions) == 0:
        raise ValueError("predictions is empty: need at least one example")
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} references"
        )
    refs: list[list[str]] = []
    for i, (pred, ref) in enumerate(zip(predictions, references, strict=False)):
        if not isinstance(pred, str):
            raise ValueError(f"prediction {i} is {type(pred).__name__}, not str")
        options = [ref] if isinstance(ref, str) else ref
        if not isinstance(options, (list, tuple)):
            raise ValueError(
                f"reference {i} is {type(ref).__name__}, not str or list of str"
            )
        if len(options) == 0:
            raise ValueError(f"reference {i} is an empty list: need at least one answer")
        for j, option in enumerate(options):
            if not isinstance(option, str):
                raise ValueError(
                    f"reference {i} answer {j} is {type(option).__name__}, not str"
                )
        refs.append(list(options))
    return refs


def mean(values: Sequence[float]) -> float:
    """The mean of a non-empty list of per-example scores."""
    return sum(values) / len(values)


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, and collapse whitespace."""
    text = _THOUSANDS_COMMA.sub("", text.lower())
    out = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if not _is_punct(ch):
            out.append(ch)
            continue
        before = text[i - 1] if i > 0 else " "
        after = text[i + 1] if i < last else " "
        if ch == "." and before.isdigit() and after.isdigit():
            out.append(ch)  # a decimal point: "5.7" must not become "57"
        elif ch == "-" and after.isdigit() and not before.isalnum():
            out.append(ch)  # a minus sign: "-5" must not equal "5"
        else:
            # A space rather than nothing, so "yes,the" splits into "yes" and "the".
            out.append(" ")
    return " ".join(_ARTICLES.sub(" ", "".join(out)).split())


# ---------------------------------------------------------------- ROUGE / BLEU


def rouge_per_example(
    predictions: Sequence[str], references: Sequence[Reference]
) -> dict[str, list[float]]:
    """ROUGE-1/2/L F1 per example (best reference), keyed rouge1, rouge2, rougeL."""
    refs = check_references(predictions, references)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    out: dict[str, list[float]] = {key: [] for key in ROUGE_KEYS}
    for pred, options in zip(predictions, refs, strict=False):
        scores = scorer.score_multi(options, pred)
        for key in ROUGE_KEYS:
            out[key].append(float(scores[key].fmeasure))
    return out


def rouge(predictions: Sequence[str], references: Sequence[Reference]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 in [0, 1] (best reference per example)."""
    per = rouge_per_example(predictions, references)
    return {key: mean(values) for key, values in per.items()}


def _unit(percent: float) -> float:
    # sacrebleu's exp(log) rounding scores a perfect match 100.00000000000004
    return min(float(percent) / 100.0, 1.0)


def bleu(predictions: Sequence[str], references: Sequence[Reference]) -> float:
    """Corpus BLEU in [0, 1]: sacrebleu's default score over all references, divided by 100.

    Without effective order it is 0 whenever no prediction has a 4-gram, so it means nothing
    for one- to three-word answers: tasks with such answers do not report it.
    """
    refs = check_references(predictions, references)
    from sacrebleu.metrics import BLEU

    width = max(len(options) for options in refs)
    # sacrebleu drops None entries per segment, so padding with None leaves a short
    # example scored on its real references only; "" would count as an empty reference
    # and could pull the brevity penalty's closest reference length to zero.
    streams = [
        [options[k] if k < len(options) else None for options in refs] for k in range(width)
    ]
    return _unit(BLEU().corpus_score(list(predictions), streams).score)


def bleu_per_example(
    predictions: Sequence[str], references: Sequence[Reference]
) -> list[float]:
    """Sentence BLEU in [0, 1] per example (sacrebleu with effective order, divided by 100)."""
    refs = check_references(predictions, references)
    from sacrebleu.metrics import BLEU

    # Effective order stops a short sentence with no 4-gram match from scoring 0.
    metric = BLEU(effective_order=True)
    return [_unit(metric.sentence_score(p, options).score) for p, options in zip(predictions, refs, strict=False)]


# ---------------------------------------------------------------- VQA answers


def exact_match_per_example(
    predictions: Sequence[str], references: Sequence[Reference]
) -> list[float]:
    """1.0 where the normalised prediction equals a normalised reference, else 0.0."""
    refs = check_references(predictions, references)
    return [
        float(normalize_answer(p) in {normalize_answer(t) for t in options})
        for p, options in zip(predictions, refs, strict=False)
    ]


def exact_match(predictions: Sequence[str], references: Sequence[Reference]) -> float:
    """Share of predictions equal to a reference after ``normalize_answer``.

    Dropping punctuation makes it more lenient than `relaxed_accuracy` on "45%" vs "45" and
    "$5" vs "5" (equal here, wrong there), stricter on numbers within 5%.
    """
    return mean(exact_match_per_example(predictions, references))


# ---------------------------------------------------------------- Metric values


def per_example_metric(name: str, batch: Callable[[Sequence[str], Sequence[Reference]], list[float]],
                       **kwargs) -> Metric:
    """A `Metric` that is the mean of `batch`'s per-example scores (exact match, relaxed accuracy, ...)."""
    return Metric(name, per_example=lambda p, refs: batch([p], [list(refs)])[0],
                  corpus=lambda preds, refs: mean(batch(preds, refs)), **kwargs)


@lru_cache(maxsize=4)
def _rouge_means(predictions: tuple[str, ...], references: tuple[tuple[str, ...], ...]) -> dict[str, float]:
    # one scorer pass serves all three ROUGE keys of a task
    return rouge(list(predictions), [list(r) for r in references])


def rouge_metric(key: str, *, per_example: bool = False) -> Metric:
    """ROUGE `key` (rouge1, rouge2 or rougeL) as a `Metric`; `per_example` keeps it per example too."""
    if key not in ROUGE_KEYS:
        raise ValueError(f"unknown ROUGE key {key!r}: one of {ROUGE_KEYS}")

    def corpus(preds: Sequence[str], refs: Sequence[Reference]) -> float:
        check_references(preds, refs)
        return _rouge_means(tuple(preds), tuple((r,) if isinstance(r, str) else tuple(r) for r in refs))[key]

    one = (lambda p, refs: rouge_per_example([p], [list(refs)])[key][0]) if per_example else None
    return Metric(key, per_example=one, corpus=corpus)


EXACT_MATCH = per_example_metric("exact_match", exact_match_per_example)
ROUGE1, ROUGE2, ROUGE_L = (rouge_metric(key) for key in ROUGE_KEYS)
ROUGE = (ROUGE1, ROUGE2, ROUGE_L)  # all three, for tasks with sentence answers
# corpus-level: sacrebleu's corpus score is no mean of sentence scores
BLEU = Metric("bleu", corpus=bleu)
