"""The meme captioning task: image + post title -> what the meme means, scored against every meme caption."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nmm_core import metrics
from nmm_core.metric import Metric
from nmm_core.metrics import BLEU, ROUGE_KEYS, rouge_metric
from nmm_core.records import Example
from nmm_core.task import Task

# Worded like MemeCap's own prompt (title given, "what is the meme poster trying to convey");
# core renders it into TinyLLaVA's phi chat template with the image first.
QUESTION = 'The title of the post is "{title}". What is the meaning of this meme?'


@dataclass(frozen=True)
class MemeTask(Task):
    """Meme meaning from image and title: ROUGE-L (primary), ROUGE-1/2 and BLEU over all references."""

    name: str = "memecap"
    # ROUGE kept per example: the competition and compare's paired bootstrap read it per meme
    metrics: tuple[Metric, ...] = (rouge_metric("rougeL", per_example=True),
                                   *(rouge_metric(k, per_example=True) for k in ROUGE_KEYS if k != "rougeL"),
                                   BLEU)

    def prompt(self, example: Example) -> str:
        """The question about one meme, with its post title."""
        return QUESTION.format(title=example.prompt)

    def normalise(self, prediction: str) -> str:
        """The first line: a caption is one sentence."""
        lines = prediction.strip().splitlines()
        return lines[0].strip() if lines else ""

    def score_one(self, prediction: str, references: Sequence[str]) -> dict[str, float]:
        """Per-example ROUGE-1/2/L (best reference) for predictions.jsonl and the competition."""
        per = metrics.rouge_per_example([prediction], [list(references)])
        return {key: values[0] for key, values in per.items()}


def meme_task() -> MemeTask:
    """The task every meme command uses."""
    return MemeTask()
