"""`compare-detector`: the VLM's yes/no answer vs the detector's boxes, on the same images and question.

Ground truth: an image shows a tumour when its YOLO label file has a box. The VLM says present
when the short answer of its reply is "yes" (a reply without yes/no counts as "absent" and is
counted as unanswered); the detector says present when it finds a box at or above `conf`.
Presence accuracy, precision and recall, and seconds per image, go to core's report
(Markdown + JSON + PNG); every image's two answers go to presence.jsonl.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nmm_core.errors import ConfigError, DataError
from nmm_core.evaluate import GenerationSettings
from nmm_core.workflows import ModelSettings
from nmm_pathology.detector import DetectValConfig

QUESTION = "Is there a tumour in this image?"


@dataclass
class CompareDetectorConfig(DetectValConfig):
    """`compare-detector`: presence scores and time per image, VLM vs detector (data, detector and output_dir
    as `detect val`'s)."""

    split: str = field(default="val", metadata={"help": "split of data.yaml to compare on"})
    question: str = QUESTION
    model: ModelSettings = field(default_factory=lambda: ModelSettings(model="tiny-llava-1.5"))
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder for the VLM"})
    generation: GenerationSettings = field(default_factory=lambda: GenerationSettings(max_new_tokens=16))
    conf: float = field(default=0.25, metadata={"help": "detector confidence for 'present'"})
    progress: bool = field(default=True, metadata={"help": "show progress bars (--no-progress: off)"})


def presence_scores(truth: list[bool], said: list[bool]) -> dict[str, float]:
    """Accuracy, precision and recall of 'tumour present' (precision 0 when nothing is called present)."""
    tp = sum(t and s for t, s in zip(truth, said, strict=True))
    fp = sum(s and not t for t, s in zip(truth, said, strict=True))
    fn = sum(t and not s for t, s in zip(truth, said, strict=True))
    correct = sum(t == s for t, s in zip(truth, said, strict=True))
    return {"presence_accuracy": correct / len(truth), "presence_precision": tp / (tp + fp) if tp + fp else 0.0,
            "presence_recall": tp / (tp + fn) if tp + fn else 0.0}


def compare_detector(cfg: CompareDetectorConfig) -> Path:
    """Run both on the same images; report in a run folder; returns its path."""
    from nmm_core.config import dump_yaml
    from nmm_core.evaluate import EvalResult, evaluate
    from nmm_core.lora import load_adapter
    from nmm_core.records import Example, validate
    from nmm_core.report import print_table, write_comparison
    from nmm_core.runs import RunDir, atomic_write_text
    from nmm_pathology.detector import (
        _check_model,
        dataset_records,
        images_of,
        label_of,
        predict_boxes,
        resolve_data_yaml,
    )
    from nmm_pathology.task import pathvqa_task

    _check_model(cfg.detector.model, trained="compare-detector")
    data = resolve_data_yaml(cfg.data)
    # ground truth: (image, has a labelled box) for every image of the split
    every = [(image, label_of(image).is_file() and bool(label_of(image).read_text().strip()))
             for image in images_of(data, cfg.split)]
    if not every:
        raise ConfigError(f"{data}: split {cfg.split!r} has no images")
    decoded = validate([Example(image, image, cfg.question, ()) for image, _ in every], require_answers=False)
    problems, readable = decoded.problems, {ex.id for ex in decoded.kept}
    rows = [(image, t) for image, t in every if image in readable]
    if not rows:
        raise DataError(f"{data}: no image of split {cfg.split!r} decodes (first: {problems[0]})")
    truth = [t for _, t in rows]
    with RunDir.create(cfg.output_dir, "compare-detector", Path(cfg.model.model).name) as run:
        dump_yaml(cfg, run.file("config.yaml"))
        records = dataset_records(len(rows), problems, run, "problems-images.jsonl")
        if problems:
            print(f"left out {len(problems)} unreadable images, listed in {run.final(run.file(records['listed_in']))}",
                  file=sys.stderr)
        task = pathvqa_task()
        examples = [Example(Path(p).stem, p, cfg.question, ("yes" if t else "no",)) for p, t in rows]
        loaded = cfg.model.load(padding_side="left")
        model = load_adapter(loaded, cfg.adapter, merge=not loaded.quantization) if cfg.adapter else loaded.model
        vlm = evaluate(model, loaded.processor, loaded.family, examples, task=task, settings=cfg.generation,
                       name="vlm", progress=cfg.progress)
        answers = [task.short_answer(r["raw_prediction"]) for r in vlm.predictions]
        vlm_said = [a == "yes" for a in answers]
        boxes, det_seconds = predict_boxes(cfg.detector.model, [p for p, _ in rows], conf=cfg.conf,
                                           settings=cfg.detector)
        det_said = [bool(b) for b in boxes]
        results = [EvalResult("vlm", presence_scores(truth, vlm_said), vlm.seconds_per_example, vlm.predictions),
                   EvalResult("detector", presence_scores(truth, det_said), det_seconds,
                              [{"boxes": b} for b in boxes])]
        atomic_write_text(run.file("presence.jsonl"), "".join(json.dumps({
            "image": p, "tumour": t, "vlm_raw": r["raw_prediction"], "vlm_answer": a, "vlm_present": v,
            "detector_present": d, "detector_boxes": b}) + "\n"
            for (p, t), r, a, v, d, b in zip(rows, vlm.predictions, answers, vlm_said, det_said, boxes, strict=True)))
        unanswered = sum(a not in ("yes", "no") for a in answers)
        write_comparison(results, run.path, title=f"Tumour presence: {cfg.model.model} vs YOLOv8",
                         primary="presence_accuracy",
                         context={"question": cfg.question, "data": str(data), "split": cfg.split,
                                  "images": len(rows), "with_tumour": sum(truth), "vlm": cfg.model.model,
                                  "adapter": cfg.adapter, "detector": cfg.detector.model, "conf": cfg.conf,
                                  "vlm_unanswered": unanswered},
                         records=records)
        print_table(results, title=f"tumour presence on {len(rows)} images")
        return run.complete(**{f"{r.name}.presence_accuracy": r.metrics["presence_accuracy"] for r in results})
