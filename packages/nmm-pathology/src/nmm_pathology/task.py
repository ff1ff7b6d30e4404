"""The PathVQA task: a short-answer prompt, short-answer extraction, and scores strict and normalised.

The study's 67% could not be trusted because a verbose but right reply ("Yes, the image shows
an embolus.") failed exact match. So every score is reported twice: *strict* on the model's raw
reply, and *norm* on the short answer `extract_short_answer` pulls out of it. Core's evaluator
passes `normalise(raw)` to `score`; here `normalise` only strips, so each metric sees the raw reply
and a *norm* metric extracts the short answer itself (predictions.jsonl keeps `raw_prediction`
either way).

Overall accuracy counts a closed question right by its yes/no word and an open one by exact
match, as the PathVQA literature does; exact_match applies to every question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nmm_core import metrics
from nmm_core.metric import Metric
from nmm_core.task import Task
from nmm_pathology.metrics import closed_accuracy_per_example, is_yes_no, open_recall_per_example

INSTRUCTION = "Answer with a single word or short phrase."
# Lead-ins a chatty model puts before the answer; removed repeatedly from the front.
_LEAD_INS = re.compile(
    r"^(?:(?:the\s+)?(?:short\s+)?answer\s+(?:is|would\s+be)\b|answer\s*:|"
    r"(?:in\s+)?(?:this|the)\s+(?:image|picture|slide|section|micrograph)\s*,?\s*(?:shows|depicts|"
    r"demonstrates|reveals|contains|is\s+of|is)?\b|it\s+(?:is|appears\s+to\s+be|looks\s+like|shows)\b|"
    r"(?:this|that)\s+(?:is|appears\s+to\s+be|shows)\b|there\s+(?:is|are)\b|(?:these|they)\s+are\b|"
    r"i\s+(?:see|think|believe)\b|(?:it\s+is\s+)?likely\b|probably\b|assistant\s*:)\s*[:,]?\s*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<!\d)[.;!\n](?!\d)|,\s")
METRIC_NAMES = ("closed_accuracy", "open_recall", "open_exact_match", "exact_match", "accuracy")


def extract_short_answer(reply: str) -> str:
    """The short answer inside a verbose reply: a leading yes/no, else the first clause without lead-ins."""
    text = reply.strip()
    if "ASSISTANT:" in text:  # a reply that echoes the chat turn
        text = text.rsplit("ASSISTANT:", 1)[1].strip()
    words = metrics.normalize_answer(text).split()
    if words and words[0] in ("yes", "no"):
        return words[0]
    text = _SENTENCE_END.split(_strip_lead_ins(text), maxsplit=1)[0]
    return _strip_lead_ins(text).strip(" \"'`*:").strip()


def _strip_lead_ins(text: str) -> str:
    previous = None
    while previous != text:
        previous, text = text, _LEAD_INS.sub("", text, count=1).strip()
    return text


def _mean(values: list[float]) -> float:
    # An empty group (no open questions in a tiny set) scores 0.0 rather than failing the run;
    # the counts in the pathology summary show that it was empty.
    return sum(values) / len(values) if values else 0.0


def _per_example(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """One answer's scores: closed_accuracy for a closed question (every reference yes or no), else
    open_recall and open_exact_match; exact_match and accuracy for both."""
    refs = list(references)
    em = metrics.exact_match_per_example([prediction], [refs])[0]
    if refs and all(is_yes_no(r) for r in refs):
        correct = closed_accuracy_per_example([prediction], [refs])[0]
        return {"exact_match": em, "closed_accuracy": correct, "accuracy": correct}
    recall = open_recall_per_example([prediction], [refs])[0]
    return {"exact_match": em, "open_recall": recall, "open_exact_match": em, "accuracy": em}


def pathvqa_metric(name: str, variant: str) -> Metric:
    """PathVQA score `name` (one of METRIC_NAMES) on the raw reply (`strict`) or its short answer (`norm`).

    closed_accuracy, open_recall and open_exact_match average over their own questions only, so
    they have no per-example score over the whole set; exact_match and accuracy have one.
    """
    read = extract_short_answer if variant == "norm" else str

    def scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
        """The score of every question it applies to."""
        rows = (_per_example(read(p), [r] if isinstance(r, str) else r)
                for p, r in zip(predictions, references, strict=True))
        return [row[name] for row in rows if name in row]

    one = (lambda p, refs: scores([p], [refs])[0]) if name in ("exact_match", "accuracy") else None
    return Metric(f"{name}_{variant}", per_example=one, corpus=lambda p, refs: _mean(scores(p, refs)))


_ALL = {f"{m}_{v}": pathvqa_metric(m, v) for v in ("strict", "norm") for m in METRIC_NAMES}


@dataclass(frozen=True)
class PathVqaTask(Task):
    """PathVQA: overall accuracy on the short answer (primary); closed accuracy, open recall and
    exact match, overall accuracy; strict and norm."""

    name: str = "pathvqa"
    instruction: str = INSTRUCTION
    metrics: tuple[Metric, ...] = (_ALL["accuracy_norm"], *(m for k, m in _ALL.items() if k != "accuracy_norm"))

    def normalise(self, prediction: str) -> str:
        """Only stripped: `score` needs the raw reply for the strict scores."""
        return prediction.strip()

    def short_answer(self, prediction: str) -> str:
        """The normalised prediction (what the *_norm scores read)."""
        return extract_short_answer(prediction)

    def score_one(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        """Per-example strict and normalised scores (keys as in `score`), plus `closed` 1/0."""
        strict, norm = _per_example(prediction, references), _per_example(self.short_answer(prediction), references)
        return {"closed": float("closed_accuracy" in strict), **{f"{k}_strict": v for k, v in strict.items()},
                **{f"{k}_norm": v for k, v in norm.items()}}


def pathvqa_task() -> PathVqaTask:
    """The task every `nmm-pathology vqa` command uses."""
    return PathVqaTask()
