"""The detector part: synthetic brain-MRI-like set, COCO -> YOLO conversion, offline YOLOv8 training."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from nmm_core.errors import DataError
from nmm_pathology.cli import main
from nmm_pathology.coco import ConvertConfig, convert_coco
from nmm_pathology.mri import SyntheticMriConfig, write_synthetic_mri


def _labels(folder):
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.txt"))}


def test_pathology_synthetic_mri_is_yolo_and_seeded(tmp_path):
    a = write_synthetic_mri(SyntheticMriConfig(output=str(tmp_path / "a"), train_size=12, val_size=4, seed=1))
    write_synthetic_mri(SyntheticMriConfig(output=str(tmp_path / "b"), train_size=12, val_size=4, seed=1))
    data = yaml.safe_load(a.read_text())
    assert data["train"] == "images/train" and data["val"] == "images/val" and data["names"] == {0: "tumour"}
    la, lb = _labels(tmp_path / "a" / "labels" / "train"), _labels(tmp_path / "b" / "labels" / "train")
    assert la == lb and len(la) == 12
    assert (tmp_path / "a/images/train/mri-train-0000.png").read_bytes() == \
        (tmp_path / "b/images/train/mri-train-0000.png").read_bytes()
    boxes = [line.split() for text in la.values() for line in text.splitlines()]
    assert boxes and any(not text for text in la.values())  # lesions, and negatives too
    for cls, *xywh in boxes:
        assert cls == "0" and all(0 < float(v) <= 1 for v in xywh)
    # a lesion is brighter than the brain around it
    stem, text = next((s, t) for s, t in la.items() if t)
    img = np.asarray(Image.open(tmp_path / "a" / "images" / "train" / f"{stem}.png"), dtype=float)
    cx, cy = (float(v) * 128 for v in text.split()[1:3])
    assert img[int(cy), int(cx)] > img[64, 64] - 1 or img[int(cy), int(cx)] > 120


def _coco_export(root, *, extra_annotation=None, drop_width=False):
    """A Roboflow-style export: train/ and valid/ with _annotations.coco.json beside the images."""
    for split in ("train", "valid"):
        (root / split).mkdir(parents=True)
    Image.new("RGB", (100, 80), (40, 40, 40)).save(root / "train" / "a.jpg")
    Image.fromarray(np.arange(100 * 80, dtype=np.uint16).reshape(80, 100) * 8).save(root / "train" / "b16.png")
    Image.new("L", (50, 50), 10).save(root / "valid" / "v.png")
    cats = [{"id": 0, "name": "tumors", "supercategory": "none"}, {"id": 1, "name": "negative"},
            {"id": 2, "name": "positive"}]
    train_images = [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
                    {"id": 2, "file_name": "b16.png", "width": 100, "height": 80},
                    {"id": 3, "file_name": "gone.jpg", "width": 100, "height": 80}]
    if drop_width:
        del train_images[0]["width"]
    anns = [
        {"id": 10, "image_id": 1, "category_id": 2, "bbox": [10, 20, 30, 40]},  # ok
        {"id": 11, "image_id": 1, "category_id": 1, "bbox": [90, 70, 20, 20]},  # partly outside: clipped
        {"id": 12, "image_id": 1, "category_id": 2, "bbox": [5, 5, 0, 10]},  # empty
        {"id": 13, "image_id": 2, "category_id": 2, "bbox": [200, 200, 10, 10]},  # wholly outside
        {"id": 14, "image_id": 99, "category_id": 2, "bbox": [1, 1, 2, 2]},  # no such image
    ]
    if extra_annotation:
        anns.append(extra_annotation)
    (root / "train" / "_annotations.coco.json").write_text(json.dumps(
        {"images": train_images, "annotations": anns, "categories": cats}))
    (root / "valid" / "_annotations.coco.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "v.png", "width": 50, "height": 50}],
         "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 25, 50]}], "categories": cats}))


def test_pathology_convert_coco_to_yolo_validates_and_counts(tmp_path):
    _coco_export(tmp_path / "src")
    out = tmp_path / "yolo"
    data = yaml.safe_load(convert_coco(ConvertConfig(source=str(tmp_path / "src"), output=str(out))).read_text())
    # the parent category 0 has no annotations and is dropped; 1 -> 0, 2 -> 1; valid -> val
    assert data["names"] == {0: "negative", 1: "positive"} and data["val"] == "images/val"
    lines = [line.split() for line in (out / "labels/train/a.txt").read_text().splitlines()]
    assert lines[0] == ["1", "0.250000", "0.500000", "0.300000", "0.500000"]  # (10+15)/100, (20+20)/80
    assert lines[1] == ["0", "0.950000", "0.937500", "0.100000", "0.125000"]  # clipped to 90..100, 70..80
    assert len(lines) == 2
    assert (out / "labels/train/b16.txt").read_text() == ""  # its only box was outside: a negative
    assert (out / "labels/val/v.txt").read_text().split() == ["0", "0.250000", "0.500000", "0.500000", "1.000000"]
    converted = Image.open(out / "images/train/b16.png")
    assert converted.mode == "RGB" and max(converted.getextrema()[0]) > 200  # scaled, not clipped white
    counts = json.loads((out / "convert-report.json").read_text())["counts"]
    assert counts["boxes ok"] == 2 and counts["boxes clipped"] == 1
    assert counts["boxes empty"] == 1 and counts["boxes outside"] == 1
    assert counts["annotations without image (skipped)"] == 1
    assert counts["images missing on disk (skipped)"] == 1 and counts["images"] == 3
    assert [k for k in counts if k.startswith("converted from I")]  # the 16-bit PNG


def test_pathology_convert_unknown_category_names_record_and_field(tmp_path):
    _coco_export(tmp_path / "src", extra_annotation={"id": 77, "image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]})
    with pytest.raises(DataError, match=r"annotation 77 field 'category_id'"):
        convert_coco(ConvertConfig(source=str(tmp_path / "src"), output=str(tmp_path / "out")))


def test_pathology_convert_bad_image_record_is_one_line(tmp_path, capsys):
    _coco_export(tmp_path / "src", drop_width=True)
    code = main(["detect", "convert", "--source", str(tmp_path / "src"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "image record 1 field 'width': missing" in err and "Traceback" not in err


def test_pathology_detector_refuses_to_download_weights(tmp_path, capsys):
    code = main(["detect", "train", "--detector-model", "yolov8n.pt", "--output-dir", str(tmp_path)])
    assert code == 2 and "not found locally" in capsys.readouterr().err


@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt and DNS lookup is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1] if len(args) > 1 else args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(None, a[0]))
    return attempts


@pytest.mark.slow
def test_pathology_yolo_trains_offline_far_above_its_untrained_self(tmp_path, no_network, capsys, monkeypatch):
    data = write_synthetic_mri(SyntheticMriConfig(output=str(tmp_path / "mri"), train_size=64, val_size=16))
    runs = tmp_path / "runs"
    monkeypatch.chdir(tmp_path)  # the default --output-dir is relative: "runs"
    assert main(["detect", "train", "--data", str(data), "--epochs", "10", "--detector-batch", "4", "--lr0", "0.005",
                 "--output-dir", "runs"]) == 0
    [run] = runs.glob("*-detect-train-yolov8n")
    report = json.loads((run / "report.json").read_text())
    [result] = report["results"]
    # 0 epochs: `detect val` of the architecture itself, its random initial weights
    assert main(["detect", "val", "--data", str(data), "--output-dir", str(tmp_path / "untrained")]) == 0
    [untrained] = json.loads(next((tmp_path / "untrained").glob("*/report.json")).read_text())["results"]
    # from scratch, 10 epochs on CPU: about 0.4 on this set, where the untrained net scores about 0
    assert result["mAP50"] >= untrained["mAP50"] + 0.2, (result, untrained)
    assert 0 < result["mAP50-95"] <= result["mAP50"]
    assert (run / "report.md").read_text().count("mAP50") >= 2 and (run / "metrics.png").is_file()
    assert "- **records**: 64 of 64 used" in (run / "report.md").read_text()  # the 64 train images
    weights = run / "ultralytics" / "weights" / "best.pt"
    assert weights.is_file()
    assert Path(report["context"]["weights"]).resolve() == weights.resolve()  # relative to the cwd, as given
    for path in run.rglob("*"):  # every path written into the run names the completed folder
        if path.suffix in (".json", ".md", ".yaml", ".jsonl", ".csv"):
            assert ".incomplete" not in path.read_text(), path

    assert main(["detect", "val", "--data", str(data), "--detector-model", str(weights),
                 "--output-dir", str(runs)]) == 0
    [val] = runs.glob("*-detect-val-best")
    [again] = json.loads((val / "report.json").read_text())["results"]
    assert again["mAP50"] == pytest.approx(result["mAP50"], abs=1e-6)

    assert main(["detect", "predict", "--source", str(tmp_path / "mri/images/val"), "--detector-model",
                 str(weights), "--output-dir", str(runs)]) == 0
    [pred] = runs.glob("*-detect-predict-best")
    images = json.loads((pred / "predictions.json").read_text())["images"]
    assert len(images) == 16 and any(img["boxes"] for img in images)

    # the same images and question for the VLM (the tiny twin) and the detector
    assert main(["compare-detector", "--data", str(data), "--detector-model", str(weights), "--output-dir", str(runs),
                 "--generation-max-new-tokens", "4"]) == 0
    [cmp] = runs.glob("*-compare-detector-tiny-llava-1.5")
    vlm, det = json.loads((cmp / "report.json").read_text())["results"]
    assert "- **records**: 16 of 16 used" in (cmp / "report.md").read_text()
    assert (vlm["name"], det["name"]) == ("vlm", "detector") and vlm["n"] == det["n"] == 16
    rows = [json.loads(line) for line in (cmp / "presence.jsonl").read_text().splitlines()]
    truth = [r["tumour"] for r in rows]
    said = [r["detector_present"] for r in rows]
    assert det["presence_accuracy"] == pytest.approx(sum(t == s for t, s in zip(truth, said, strict=True)) / 16)
    # balanced accuracy: an always-"present" (or always-"absent") detector scores 0.5
    positives = [s for t, s in zip(truth, said, strict=True) if t]
    negatives = [not s for t, s in zip(truth, said, strict=True) if not t]
    assert positives and negatives
    balanced = (sum(positives) / len(positives) + sum(negatives) / len(negatives)) / 2
    assert balanced >= 0.65, (truth, said)
    assert det["presence_recall"] == pytest.approx(sum(positives) / len(positives)) and det["seconds_per_example"] > 0
    assert (cmp / "report.md").is_file() and (cmp / "metrics.png").is_file()
    assert no_network == []  # nothing reached for the network: settings, fonts, AMP, hub, pip


def test_pathology_presence_scores_by_hand():
    from nmm_pathology.compare import presence_scores

    s = presence_scores([True, True, False, False], [True, False, True, False])
    assert s == {"presence_accuracy": 0.5, "presence_precision": 0.5, "presence_recall": 0.5}
    assert presence_scores([True], [False])["presence_precision"] == 0.0


def test_pathology_yolo_dataset_check_counts_and_names_bad_lines(tmp_path, capsys):
    from nmm_pathology.detector import check_yolo_dataset

    data = write_synthetic_mri(SyntheticMriConfig(output=str(tmp_path), train_size=6, val_size=2))
    (tmp_path / "labels/train/orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "labels/train/mri-train-0000.txt").unlink()
    counts = check_yolo_dataset(data)
    assert counts["images"] == 8 and counts["labels without images"] == 1
    assert counts["images without labels"] == 1
    assert (counts["train images"], counts["val images"]) == (6, 2)  # each split's share of the 8
    assert counts["train boxes"] + counts["val boxes"] == counts["boxes"]
    (tmp_path / "labels/val/mri-val-0001.txt").write_text("0 0.95 0.5 0.2 0.1\n")  # right edge at 1.05
    code = main(["detect", "train", "--data", str(data), "--output-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "mri-val-0001.txt line 1 field 'box'" in err


def test_pathology_yolo_dataset_check_names_a_truncated_image(tmp_path, capsys):
    from nmm_pathology.detector import check_yolo_dataset

    data = write_synthetic_mri(SyntheticMriConfig(output=str(tmp_path), train_size=6, val_size=2))
    image = tmp_path / "images/train/mri-train-0002.png"
    image.write_bytes(image.read_bytes()[:200])  # cut short, as an interrupted copy leaves it
    unreadable = []
    counts = check_yolo_dataset(data, unreadable)
    assert counts["images"] == 7 and counts["images unreadable (left out)"] == 1
    [problem] = unreadable
    assert problem.id == str(image) and problem.field == "image"


def test_pathology_detect_val_report_counts_and_lists_the_unreadable_images(tmp_path, no_network, capsys):
    """The records line counts the split the command uses: `detect val` the val images it scored, `detect
    train` the train images it trained on, each with that split's left-out images (it counted both)."""
    data = write_synthetic_mri(SyntheticMriConfig(output=str(tmp_path / "mri"), train_size=4, val_size=4))
    image = tmp_path / "mri/images/val/mri-val-0001.png"
    image.write_bytes(image.read_bytes()[:200])  # cut short
    train_image = tmp_path / "mri/images/train/mri-train-0002.png"
    train_image.write_bytes(train_image.read_bytes()[:200])
    # the architecture's random weights: no training needed to see the report's records line
    assert main(["detect", "val", "--data", str(data), "--detector-imgsz", "64",
                 "--output-dir", str(tmp_path / "runs")]) == 0
    # the printed check says what it counted: both splits, then each split's share
    assert "dataset (train and val): 6 images, " in capsys.readouterr().out
    [run] = (tmp_path / "runs").glob("*-detect-val-*")
    check = json.loads((run / "dataset-check.json").read_text())
    assert (check["images"], check["train images"], check["val images"]) == (6, 3, 3)
    assert "- **records**: 3 of 4 used; 1 skipped, listed in problems-dataset.jsonl" in (run / "report.md").read_text()
    assert json.loads((run / "report.json").read_text())["records"]["skipped"] == 1
    [listed] = [json.loads(line) for line in (run / "problems-dataset.jsonl").read_text().splitlines()]
    assert listed["id"] == str(image)
    assert main(["detect", "train", "--data", str(data), "--detector-imgsz", "64", "--epochs", "1",
                 "--detector-batch", "4", "--output-dir", str(tmp_path / "runs")]) == 0
    [run] = (tmp_path / "runs").glob("*-detect-train-*")
    assert "- **records**: 3 of 4 used; 1 skipped, listed in problems-dataset.jsonl" in (run / "report.md").read_text()
    [listed] = [json.loads(line) for line in (run / "problems-dataset.jsonl").read_text().splitlines()]
    assert listed["id"] == str(train_image)
