"""The chart QA task: ChartQA-style short answers, scored with relaxed accuracy first."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nmm_charts.metrics import RELAXED_ACCURACY
from nmm_core.metric import Metric
from nmm_core.metrics import EXACT_MATCH, ROUGE1, ROUGE_L
from nmm_core.task import Task

INSTRUCTION = "Answer the question with a single word or number."
_LEAD = re.compile(r"^\s*(the\s+answer\s+is|answer)\s*[:\-]?\s*", re.IGNORECASE)
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?%?$")
_QUOTES = "\"'`*"


def plain_number(text: str) -> str:
    """A number without its thousands commas ("1,216.5" as "1216.5", "-1,216%" as "-1216%"); other text as is."""
    text = text.strip()
    # relaxed accuracy parses floats, which reject commas: a prediction and a reference both
    # written "1,216.5" would otherwise be compared as text, and "1,216" vs "1,200" never within 5%
    return text.replace(",", "") if _THOUSANDS.match(text) else text


@dataclass(frozen=True)
class ChartTask(Task):
    """ChartQA prompting and scoring: relaxed accuracy (primary), exact match, ROUGE-1 and ROUGE-L.

    No BLEU or ROUGE-2: chart answers are a word or a number, where a right answer scores 0 on both.
    """

    name: str = "chartqa"
    instruction: str = INSTRUCTION
    metrics: tuple[Metric, ...] = (RELAXED_ACCURACY, EXACT_MATCH, ROUGE1, ROUGE_L)

    def normalise(self, prediction: str) -> str:
        """First line, no "The answer is", quotes or final full stop; "1,234" as "1234"."""
        lines = prediction.strip().splitlines()
        text = _LEAD.sub("", lines[0] if lines else "").strip().strip(_QUOTES).strip()
        if text.endswith("."):  # a sentence's full stop ("42." is 42), never a decimal point
            text = text[:-1].rstrip()
        return plain_number(text)

    def normalise_reference(self, reference: str) -> str:
        """The reference's number written as `normalise` writes the prediction's ("1,234" as "1234")."""
        return plain_number(reference)


def chart_task() -> ChartTask:
    """The task every chart command uses."""
    return ChartTask()
