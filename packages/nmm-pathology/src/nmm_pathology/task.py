"""The PathVQA task: a short-answer prompt, short-answer extraction, and scores strict and normalised.

The study's 67% could not be trusted because a verbose but right reply ("Yes, the image shows
an embolus.") failed exact match. So every score is reported twice: *strict* on the model's raw
reply, and *norm* on the short answer `extract_short_answer` pulls out of it. Core's evaluator
passes `normalise(raw)` to `score`; here `normalise` only strips, so `score` sees the raw reply
and computes both sets itself (predictions.jsonl keeps `raw_prediction` either way).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nmm_core import metrics
from nmm_core.task import Task

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


def _closed_refs(references: Sequence[Sequence[str]]) -> list[bool]:
    return [bool(refs) and all(metrics.is_yes_no(r) for r in refs) for refs in references]


def _mean(values: list[float]) -> float:
    # An empty group (no open questions in a tiny set) scores 0.0 rather than failing the run;
    # the counts in the pathology summary show that it was empty.
    return sum(values) / len(values) if values else 0.0


def _per_example(prediction: str, refs: Sequence[str], closed: bool) -> dict[str, float]:
    em = metrics.exact_match_per_example([prediction], [list(refs)])[0]
    if closed:
        correct = metrics.closed_accuracy_per_example([prediction], [list(refs)])[0]
        return {"exact_match": em, "closed_accuracy": correct, "accuracy": correct}
    recall = metrics.open_recall_per_example([prediction], [list(refs)])[0]
    return {"exact_match": em, "open_recall": recall, "open_exact_match": em, "accuracy": em}


@dataclass(frozen=True)
class PathVqaTask(Task):
    """PathVQA: closed accuracy, open recall and exact match, overall accuracy; strict and norm."""

    name: str = "pathvqa"
    instruction: str = INSTRUCTION
    metrics: tuple[str, ...] = tuple(f"{m}_{v}" for v in ("strict", "norm") for m in METRIC_NAMES)
    primary: str = "accuracy_norm"

    def normalise(self, prediction: str) -> str:
        """Only stripped: `score` needs the raw reply for the strict scores."""
        return prediction.strip()

    def short_answer(self, prediction: str) -> str:
        """The normalised prediction (what the *_norm scores read)."""
        return extract_short_answer(prediction)

    def score_one(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        """Per-example strict and normalised scores (keys as in `score`), plus `closed` 1/0."""
        closed = _closed_refs([references])[0]
        out: dict[str, float] = {"closed": float(closed)}
        for variant, text in (("strict", prediction), ("norm", self.short_answer(prediction))):
            out.update({f"{k}_{variant}": v for k, v in _per_example(text, references, closed).items()})
        return out

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
        """Closed accuracy, open recall and exact match, overall exact match and accuracy, each strict and norm.

        Overall accuracy counts a closed question right by its yes/no word and an open one by
        exact match, as the PathVQA literature does; exact_match applies to every question.
        """
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        closed = _closed_refs(refs)
        out: dict[str, float] = {}
        for variant in ("strict", "norm"):
            texts = list(predictions) if variant == "strict" else [self.short_answer(p) for p in predictions]
            rows = [_per_example(t, r, c) for t, r, c in zip(texts, refs, closed, strict=True)]
            for name in METRIC_NAMES:
                out[f"{name}_{variant}"] = _mean([row[name] for row in rows if name in row])
        return {name: out[name] for name in self.metrics}


def pathvqa_task() -> PathVqaTask:
    """The task every `nmm-pathology vqa` command uses."""
    return PathVqaTask()
