"""The chart QA task: ChartQA-style short answers, scored with relaxed accuracy first."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nmm_core.task import Task

INSTRUCTION = "Answer the question with a single word or number."
_LEAD = re.compile(r"^\s*(the\s+answer\s+is|answer)\s*[:\-]?\s*", re.IGNORECASE)
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?%?$")
_QUOTES = "\"'`*"


@dataclass(frozen=True)
class ChartTask(Task):
    """ChartQA prompting and scoring: relaxed accuracy (primary), exact match, ROUGE, BLEU."""

    name: str = "chartqa"
    instruction: str = INSTRUCTION
    metrics: tuple[str, ...] = ("relaxed_accuracy", "exact_match", "rouge", "bleu")
    primary: str = "relaxed_accuracy"

    def normalise(self, prediction: str) -> str:
        """First line, no "The answer is", quotes or final full stop; "1,234" as "1234"."""
        lines = prediction.strip().splitlines()
        text = _LEAD.sub("", lines[0] if lines else "").strip().strip(_QUOTES).strip()
        if text.endswith("."):  # a sentence's full stop ("42." is 42), never a decimal point
            text = text[:-1].rstrip()
        if _THOUSANDS.match(text):
            text = text.replace(",", "")  # relaxed accuracy parses floats, which reject commas
        return text


def chart_task() -> ChartTask:
    """The task every chart command uses."""
    return ChartTask()
