"""`nmm-pathology`: PathVQA (`vqa train|eval|compare|predict`) and the YOLOv8 baseline (`detect ...`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from nmm_core.cli import add_export_command, base_parser, print_info, run_cli

DESCRIPTION = "PathVQA with LLaVA-1.5 QLoRA, and a YOLOv8 brain-tumour detection baseline."


def build_parser() -> argparse.ArgumentParser:
    """The full parser: `info`, `vqa ...`, `detect ...`, `compare-detector`."""
    from nmm_core.config import add_command
    from nmm_core.positionals import add_positional
    from nmm_pathology.coco import ConvertConfig
    from nmm_pathology.compare import CompareDetectorConfig
    from nmm_pathology.detector import DetectPredictConfig, DetectTrainConfig, DetectValConfig
    from nmm_pathology.mri import SyntheticMriConfig
    from nmm_pathology.vqa import VqaEvalConfig, VqaPredictConfig, VqaTrainConfig

    parser, sub = base_parser("nmm-pathology", DESCRIPTION, "nmm-pathology")
    vqa = sub.add_parser("vqa", help="PathVQA: train, eval, compare, predict").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add_command(vqa, "train", VqaTrainConfig, help="LoRA/QLoRA fine-tuning (default: synthetic set, tiny twin)")
    add_command(vqa, "eval", VqaEvalConfig, help="scores strict and normalised, review CSV")
    add_command(vqa, "compare", VqaEvalConfig, help="base vs fine-tuned, review CSV per model")
    vqa_predict = add_command(vqa, "predict", VqaPredictConfig, help="answer one question about one image")
    add_positional(vqa_predict, "image", "IMAGE", "image file (or --image)")
    add_positional(vqa_predict, "question", "QUESTION", "the question, quoted (or --question)")
    add_export_command(vqa)
    det = sub.add_parser("detect", help="YOLOv8 detector: convert, synth, train, val, predict").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add_command(det, "convert", ConvertConfig, help="COCO JSON (Roboflow export) -> YOLO images/ + labels/")
    add_command(det, "synth", SyntheticMriConfig, help="write the synthetic brain-MRI-like set (YOLO format)")
    add_command(det, "train", DetectTrainConfig, help="train YOLOv8 offline; mAP50 and mAP50-95 report")
    add_command(det, "val", DetectValConfig, help="validate weights; mAP50 and mAP50-95 report")
    det_predict = add_command(det, "predict", DetectPredictConfig, help="boxes for images, as JSON")
    add_positional(det_predict, "source", "IMAGE", "image file or folder (or --source)")
    add_command(sub, "compare-detector", CompareDetectorConfig,
                help="VLM yes/no vs detector boxes: presence accuracy/precision/recall, time per image")
    return parser


# predict's positionals: the setting each fills, as (metavar, its flag)
_POSITIONALS = {("vqa", "predict"): {"image": ("IMAGE", "--image"), "question": ("QUESTION", "--question")},
                ("detect", "predict"): {"source": ("IMAGE", "--source")}}


def _dispatch(ns: argparse.Namespace) -> Callable[[], object]:
    from nmm_core.config import config_from_parsed
    from nmm_core.positionals import take_positionals

    def run() -> None:
        if ns.command == "info":
            print_info("nmm-pathology", ns)
            return
        from nmm_core.export import ExportConfig, run_export
        from nmm_pathology import coco, compare, detector, mri, vqa

        table = {
            ("vqa", "train"): (vqa.VqaTrainConfig, vqa.vqa_train),
            ("vqa", "eval"): (vqa.VqaEvalConfig, vqa.vqa_eval),
            ("vqa", "compare"): (vqa.VqaEvalConfig, vqa.vqa_compare),
            ("vqa", "predict"): (vqa.VqaPredictConfig, vqa.vqa_predict),
            ("vqa", "export"): (ExportConfig, run_export),
            ("detect", "convert"): (coco.ConvertConfig, coco.convert_command),
            ("detect", "synth"): (mri.SyntheticMriConfig, mri.synth_command),
            ("detect", "train"): (detector.DetectTrainConfig, detector.detect_train),
            ("detect", "val"): (detector.DetectValConfig, detector.detect_val),
            ("detect", "predict"): (detector.DetectPredictConfig, detector.detect_predict),
        }
        table[("compare-detector", None)] = (compare.CompareDetectorConfig, compare.compare_detector)
        cls, fn = table[(ns.command, getattr(ns, "action", None))]
        take_positionals(ns, _POSITIONALS.get((ns.command, getattr(ns, "action", None)), {}))
        cfg = config_from_parsed(cls, ns)
        result = fn(cfg)
        if result is not None and not isinstance(result, dict):
            print(result)

    return run


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    ns = build_parser().parse_args(argv)
    return run_cli(_dispatch(ns))


if __name__ == "__main__":
    sys.exit(main())
