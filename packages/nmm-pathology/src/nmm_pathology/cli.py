"""`nmm-pathology`: PathVQA (the kit's verbs under `vqa`) and the YOLOv8 baseline (`detect ...`), declared.

The VQA defaults are the generated PathVQA-like set and core's tiny LLaVA-1.5 twin, so every command
runs offline; a GPU user passes `--model llava-1.5-7b` and `--data-source flaviagiammarino/path-vqa`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from nmm_core.domain import Domain, SyntheticSet, domain_main
from nmm_pathology.coco import ConvertConfig, convert_coco
from nmm_pathology.compare import CompareDetectorConfig, compare_detector
from nmm_pathology.data import PathVqaSource, SyntheticSettings, synthetic_folder, write_synthetic
from nmm_pathology.detector import (
    DetectPredictConfig,
    DetectTrainConfig,
    DetectValConfig,
    detect_predict,
    detect_train,
    detect_val,
)
from nmm_pathology.mri import SyntheticMriConfig, write_synthetic_mri
from nmm_pathology.presets import TWIN_RECIPES
from nmm_pathology.review import review_run
from nmm_pathology.task import pathvqa_task


def vqa_predict(cfg: Any) -> dict[str, str]:
    """Answer one question about one image; prints and returns {question, raw, answer}."""
    from nmm_core.workflows import predict_one

    task = pathvqa_task()
    raw, _ = predict_one(cfg.model, cfg.adapter, cfg.image, cfg.question, task=task,
                         max_new_tokens=cfg.max_new_tokens)
    out = {"question": cfg.question.strip(), "raw": raw, "answer": task.short_answer(raw)}
    print(json.dumps(out, ensure_ascii=False))
    return out


def _printed(fn: Callable[[Any], object]) -> Callable[[Any], None]:
    return lambda cfg: print(fn(cfg))  # the folder or file a command wrote


PATHOLOGY = Domain(
    name="nmm-pathology",
    description="PathVQA with LLaVA-1.5 QLoRA, and a YOLOv8 brain-tumour detection baseline.",
    group="vqa",
    group_help="PathVQA: train, eval, compare, compete, predict, export, data (strict and normalised scores, "
               "review CSVs)",
    groups={"detect": "YOLOv8 detector: convert, synth, train, val, predict"},
    task=pathvqa_task(),
    after_eval=review_run,
    source=PathVqaSource,
    data={"val_split": "validation"},  # PathVQA's and the generated set's validation split
    synthetic=SyntheticSet(SyntheticSettings, write=write_synthetic, cached=synthetic_folder, marker="test.jsonl"),
    model="tiny-llava-1.5",
    train={"epochs": 3.0},  # the study's 3 epochs (the twin's recipe has its own)
    families=("llava",),  # LLaVA-1.5 (7B, 13B) and its tiny twin
    twin_recipes=TWIN_RECIPES,
    verbs={
        "vqa predict": (None, vqa_predict, "answer one question about one image (JSON: question, raw, answer)"),
        "detect convert": (ConvertConfig, _printed(convert_coco),
                           "COCO JSON (Roboflow export) -> YOLO images/ + labels/"),
        "detect synth": (SyntheticMriConfig, _printed(write_synthetic_mri),
                         "write the synthetic brain-MRI-like set (YOLO format)"),
        "detect train": (DetectTrainConfig, _printed(detect_train), "train YOLOv8 offline; mAP50 and mAP50-95 report"),
        "detect val": (DetectValConfig, _printed(detect_val), "validate weights; mAP50 and mAP50-95 report"),
        "detect predict": (DetectPredictConfig, _printed(detect_predict), "boxes for images, as JSON"),
        "compare-detector": (CompareDetectorConfig, _printed(compare_detector),
                             "VLM yes/no vs detector boxes: presence accuracy/precision/recall, time per image"),
    },
)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    return domain_main(PATHOLOGY, argv)


if __name__ == "__main__":
    sys.exit(main())
