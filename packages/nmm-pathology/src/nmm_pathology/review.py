"""The clinician's review file: every prediction that is not a literal match of its reference.

One CSV row per disagreement, with the image path, question, reference(s), the raw reply and
the short answer extracted from it, how each scored, and two empty columns for the clinician
(`clinician_verdict`: correct / wrong / unsure, `clinician_note`).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from nmm_core.data import save_example_image
from nmm_core.records import Example
from nmm_core.runs import atomic_write_json, atomic_write_text, read_jsonl
from nmm_core.sources import DataSource
from nmm_pathology.task import PathVqaTask, pathvqa_task

COLUMNS = ("id", "kind", "image", "question", "reference", "raw_prediction", "normalised_prediction",
           "correct_strict", "correct_norm", "clinician_verdict", "clinician_note")


def _image_path(example: Example, folder: Path) -> str:
    """The image's own path when it has one; otherwise saved under the run folder."""
    if isinstance(example.image, (str, os.PathLike)) and os.path.isfile(example.image):
        return os.path.abspath(example.image)
    saved = save_example_image(example, folder, split="review", image_dir="review-images")
    return saved or ""


def write_review(predictions_file: Path, examples: Sequence[Example], task: PathVqaTask,
                 out_file: Path) -> dict[str, int]:
    """Write the review CSV for one predictions file; returns counts (rows, disagreements, by kind)."""
    by_id = {ex.id: ex for ex in examples}
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    counts = {"rows": 0, "disagreements": 0, "closed": 0, "open": 0, "rescued_by_normalisation": 0}
    for row in read_jsonl(predictions_file):
        counts["rows"] += 1
        raw = row["raw_prediction"] if "raw_prediction" in row else row["prediction"]
        scores = task.score_one(raw, row["references"])
        if scores["exact_match_strict"] == 1.0:
            continue
        example = by_id[row["id"]]
        kind = "closed" if scores["closed"] else "open"
        counts["disagreements"] += 1
        counts[kind] += 1
        counts["rescued_by_normalisation"] += int(scores["accuracy_norm"] > scores["accuracy_strict"])
        writer.writerow([row["id"], kind, _image_path(example, out_file.parent), example.prompt,
                         " | ".join(row["references"]), raw, task.short_answer(raw),
                         int(scores["accuracy_strict"]), int(scores["accuracy_norm"]), "", ""])
    atomic_write_text(out_file, buffer.getvalue())
    return counts


def review_run(source: DataSource, run: Path) -> None:
    """A review CSV beside each predictions*.jsonl of an eval/compare run (before it is complete), and
    `review.json` with the counts; its eval split is read again for the images and questions."""
    files = sorted(run.glob("predictions*.jsonl"))
    scored = {row["id"] for row in read_jsonl(files[0])}  # the records the model's image limits allowed
    examples = [ex for ex in source.load(source.settings.eval_split).kept if ex.id in scored]
    kinds = {"closed": sum(ex.meta["kind"] == "closed" for ex in examples)}
    kinds["open"] = len(examples) - kinds["closed"]
    print(f"{kinds['closed']} closed (yes/no) questions, {kinds['open']} open", file=sys.stderr)
    out: dict[str, dict[str, int]] = {}
    for file in files:
        name = file.stem.replace("predictions", "review")
        c = out[name] = write_review(file, examples, pathvqa_task(), run / f"{name}.csv")
        print(f"{name}.csv: {c['disagreements']} of {c['rows']} answers to review "
              f"({c['rescued_by_normalisation']} right only after normalisation)", file=sys.stderr)
    atomic_write_json(run / "review.json", {"examples": len(examples), "questions": kinds, "reviews": out})
