"""Text metrics for evaluation: ROUGE, BLEU, ChartQA relaxed accuracy, VQA exact match,
yes/no accuracy and open-answer recall, every one in [0, 1] (BLEU is sacrebleu's score / 100).

Every metric takes ``predictions`` (a list of str) and ``references`` (a list whose items
are a str or a list/tuple of accepted str answers); bad inputs raise ``ValueError``.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Sequence

__all__ = [
    "ROUGE_KEYS",
    "Reference",
    "bleu",
    "bleu_per_example",
    "closed_accuracy",
    "closed_accuracy_per_example",
    "exact_match",
    "exact_match_per_example",
    "is_yes_no",
    "normalize_answer",
    "open_recall",
    "open_recall_per_example",
    "relaxed_accuracy",
    "relaxed_accuracy_per_example",
    "rouge",
    "rouge_per_example",
]

Reference = str | Sequence[str]

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")  # what `rouge` returns
_ASCII_PUNCT = frozenset(string.punctuation)
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_YES_NO = ("yes", "no")


def _check(predictions: Sequence[str], references: Sequence[Reference]) -> list[list[str]]:
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


def _mean(values: Sequence[float]) -> float:
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


def is_yes_no(text: str) -> bool:
    """True when ``text`` normalises to exactly "yes" or "no"."""
    return normalize_answer(text) in _YES_NO


# ---------------------------------------------------------------- ROUGE / BLEU


def rouge_per_example(
    predictions: Sequence[str], references: Sequence[Reference]
) -> dict[str, list[float]]:
    """ROUGE-1/2/L F1 per example (best reference), keyed rouge1, rouge2, rougeL."""
    refs = _check(predictions, references)
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
    return {key: _mean(values) for key, values in per.items()}


def _unit(percent: float) -> float:
    # sacrebleu's exp(log) rounding scores a perfect match 100.00000000000004
    return min(float(percent) / 100.0, 1.0)


def bleu(predictions: Sequence[str], references: Sequence[Reference]) -> float:
    """Corpus BLEU in [0, 1]: sacrebleu's default score over all references, divided by 100.

    Without effective order it is 0 whenever no prediction has a 4-gram, so it means nothing
    for one- to three-word answers: tasks with such answers do not report it.
    """
    refs = _check(predictions, references)
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
    refs = _check(predictions, references)
    from sacrebleu.metrics import BLEU

    # Effective order stops a short sentence with no 4-gram match from scoring 0.
    metric = BLEU(effective_order=True)
    return [_unit(metric.sentence_score(p, options).score) for p, options in zip(predictions, refs, strict=False)]


# ---------------------------------------------------------------- relaxed accuracy


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
    refs = _check(predictions, references)
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
    return _mean(relaxed_accuracy_per_example(predictions, references, tolerance))


# ---------------------------------------------------------------- VQA answers


def exact_match_per_example(
    predictions: Sequence[str], references: Sequence[Reference]
) -> list[float]:
    """1.0 where the normalised prediction equals a normalised reference, else 0.0."""
    refs = _check(predictions, references)
    return [
        float(normalize_answer(p) in {normalize_answer(t) for t in options})
        for p, options in zip(predictions, refs, strict=False)
    ]


def exact_match(predictions: Sequence[str], references: Sequence[Reference]) -> float:
    """Share of predictions equal to a reference after ``normalize_answer``.

    Dropping punctuation makes it more lenient than `relaxed_accuracy` on "45%" vs "45" and
    "$5" vs "5" (equal here, wrong there), stricter on numbers within 5%.
    """
    return _mean(exact_match_per_example(predictions, references))


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
    refs = _check(predictions, references)
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
    return _mean(closed_accuracy_per_example(predictions, references))


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
    refs = _check(predictions, references)
    scores = []
    for pred, options in zip(predictions, refs, strict=False):
        tokens = set(normalize_answer(pred).split())
        scores.append(max(_recall(tokens, t) for t in options))
    return scores


def open_recall(predictions: Sequence[str], references: Sequence[Reference]) -> float:
    """Mean token recall of references in predictions (PathVQA/LLaVA-Med open questions)."""
    return _mean(open_recall_per_example(predictions, references))
