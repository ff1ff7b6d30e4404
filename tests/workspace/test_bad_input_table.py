"""Every CLI verb with bad input: exit code 2, no traceback, a last stderr line saying what and where.

The commands run in-process (`main(argv)`), so a traceback here is an exception that fails the test.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from nmm_charts.cli import main as charts_main
from nmm_connectome.cli import main as connectome_main
from nmm_core.cli import main as core_main
from nmm_core.presets import get_preset
from nmm_core.twins import twin_path
from nmm_demo.cli import main as demo_main
from nmm_memes.cli import main as memes_main
from nmm_pathology.cli import main as pathology_main

MAINS: dict[str, Callable[[list[str]], int]] = {
    "nmm": core_main, "nmm-charts": charts_main, "nmm-memes": memes_main,
    "nmm-connectome": connectome_main, "nmm-pathology": pathology_main, "nmm-demo": demo_main,
}
# `nmm` on the charts set: its columns are query/label
COLUMNS = "--data-prompt-column query --data-answers-column label"
CHARTS = f"--data {{charts}} {COLUMNS}"
ONE_STEP = "--train-max-steps 1 --output-dir {tmp}/runs"


@dataclass(frozen=True)
class Bad:
    """One bad input: the CLI, its arguments ({placeholders} from the workspace) and what the last line says."""

    cli: str
    args: str
    says: tuple[str, ...]
    setup: Callable[[pytest.MonkeyPatch, dict[str, str]], None] | None = None


def _read_only(folder_key: str):
    """Make every mkdir under the workspace's `folder_key` fail as on a read-only disk (root ignores chmod)."""
    def setup(monkeypatch: pytest.MonkeyPatch, ws: dict[str, str]) -> None:
        mkdir = os.mkdir
        root = Path(ws[folder_key])

        def refuse(path, *args, **kwargs):
            if root in Path(path).parents:
                raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
            return mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", refuse)
    return setup


CASES: dict[str, Bad] = {
    # -- section 2 of issue 19: tracebacks before
    "nmm train: image beyond Qwen2-VL's aspect ratio, stop": Bad(
        "nmm", f"train --data {{wide}} {COLUMNS} {ONE_STEP} --data-on-bad-record stop",
        ("record 'train-0'", "field 'image'", "3000x5", "aspect ratio")),
    "nmm eval: image beyond Qwen2-VL's aspect ratio, stop": Bad(
        "nmm", f"eval --data {{wide}} {COLUMNS} --data-on-bad-record stop --output-dir {{tmp}}/runs",
        ("record 'train-0'", "3000x5", "aspect ratio")),
    "charts predict: image beyond the aspect ratio": Bad(
        "nmm-charts", "predict {wide}/images/wide.png 'How many bars?'", ("wide.png", "3000x5", "aspect ratio")),
    "nmm train: --output-dir is a file": Bad(
        "nmm", f"train {CHARTS} --train-max-steps 1 --output-dir {{file}}", ("--output-dir", "{file}", "is a file")),
    "nmm train: --output-dir under a file": Bad(
        "nmm", f"train {CHARTS} --train-max-steps 1 --output-dir {{file}}/runs",
        ("--output-dir", "{file}", "is a file")),
    "nmm eval: --output-dir read-only": Bad(
        "nmm", f"eval {CHARTS} --output-dir {{readonly}}/runs", ("--output-dir", "{readonly}", "not writable"),
        setup=_read_only("readonly")),
    "charts train: --output-dir is a file": Bad(
        "nmm-charts", "train --data {charts} --train-max-steps 1 --output-dir {file}", ("--output-dir", "is a file")),
    "pathology detect train: --output-dir under a file": Bad(
        "nmm-pathology", "detect train --epochs 1 --output-dir {file}/x", ("--output-dir", "{file}", "is a file")),
    "connectome train: --output-dir is a file": Bad(
        "nmm-connectome", "train --data {cohort} --output-dir {file}", ("--output-dir", "{file}", "is a file")),
    "charts data synthesize: --out is a file": Bad(
        "nmm-charts", "data synthesize --out {file} --no-progress", ("--out", "{file}", "is a file")),
    "memes data synthesize: --out is a file": Bad(
        "nmm-memes", "data synthesize --out {file} --no-progress", ("--out", "{file}", "is a file")),
    "connectome data synthesize: --out is a file": Bad(
        "nmm-connectome", "data synthesize --out {file}", ("--out", "{file}", "is a file")),
    "charts data synthesize: --out read-only": Bad(
        "nmm-charts", "data synthesize --out {readonly}/set --no-progress", ("--out", "not writable"),
        setup=_read_only("readonly")),
    "nmm train: --train-lr nan": Bad("nmm", f"train {CHARTS} {ONE_STEP} --train-lr nan", ("--train-lr", "nan")),
    "nmm train: --train-lr -1": Bad("nmm", f"train {CHARTS} {ONE_STEP} --train-lr -1", ("lr", "positive")),
    "nmm train: --model-quant-storage without 4-bit": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model-quantization none --model-quant-storage bfloat16",
        ("--model-quant-storage bfloat16", "4-bit", "none")),
    "nmm train: --lora-targets nonexistent_proj": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --lora-targets nonexistent_proj",
        ("--lora-targets", "nonexistent_proj", "q_proj", "down_proj")),
    "pathology detect train: --epochs 0": Bad(
        "nmm-pathology", "detect train --epochs 0 --output-dir {tmp}/runs", ("--epochs", "0")),
    "pathology detect convert: truncated _annotations.coco.json": Bad(
        "nmm-pathology", "detect convert --source {coco} --output {tmp}/yolo",
        ("_annotations.coco.json", "line 1", "invalid JSON")),
    # -- section 3: messages that misled
    "nmm eval: --data-limit -3": Bad(
        "nmm", f"eval {CHARTS} --data-limit -3 --output-dir {{tmp}}/runs", ("--data-limit", "at least 1", "-3")),
    "nmm eval: --data-limit 0": Bad(
        "nmm", f"eval {CHARTS} --data-limit 0 --output-dir {{tmp}}/runs", ("--data-limit", "at least 1", "0")),
    "memes train: --data-limit 0": Bad(
        "nmm-memes", "train --data-limit 0 --output-dir {tmp}/runs", ("--data-limit", "at least 1")),
    "nmm train: empty train.jsonl": Bad(
        "nmm", f"train --data {{empty}} {ONE_STEP}", ("{empty}/train.jsonl", "no records")),
    "nmm train: every record unusable": Bad(
        "nmm", f"train --data {{allbad}} {COLUMNS} {ONE_STEP}", ("no usable records", "problems-train.jsonl")),
    "nmm train: a line that is not UTF-8": Bad(
        "nmm", f"train --data {{badutf}} {ONE_STEP}", ("{badutf}/train.jsonl line 2", "not UTF-8")),
    "memes eval: a MemeCap file that is not UTF-8": Bad(
        "nmm-memes", "eval --data-source {memes_badutf} --data-images {memes_badutf} --output-dir {tmp}/runs",
        ("memes-test.json line 2", "not UTF-8")),
    "nmm train: twin folder with the wrong --model-family": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model {{twin}} --model-family idefics3",
        ("{twin}", "nmm.json", "qwen2_vl", "idefics3")),
    "nmm train: model folder with a damaged config.json": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model {{tmp}}/damaged-model", ("damaged-model/config.json",)),
    "nmm train: bare hub id without --model-family": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model Qwen/Qwen2-VL-2B-Instruct",
        ("Qwen/Qwen2-VL-2B-Instruct", "hub id", "--model-family")),
    "charts train: bare hub id without --model-family": Bad(
        "nmm-charts", "train --model Qwen/Qwen2-VL-2B-Instruct --output-dir {tmp}/runs",
        ("Qwen/Qwen2-VL-2B-Instruct", "--model-family")),
    "nmm train: --model-device cuda without CUDA": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model-device cuda", ("--model-device cuda", "use --model-device cpu"),
        setup=lambda monkeypatch, ws: monkeypatch.setattr("torch.cuda.is_available", lambda: False)),
    "nmm train: --model-device gpu": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model-device gpu", ("--model-device gpu", "not a device")),
    "pathology detect train: --detector-imgsz 100": Bad(
        "nmm-pathology", "detect train --detector-imgsz 100 --output-dir {tmp}/runs",
        ("--detector-imgsz", "100", "multiple of 32")),
    "pathology compare-detector: --detector-imgsz 100": Bad(
        "nmm-pathology", "compare-detector --detector-imgsz 100 --output-dir {tmp}/runs",
        ("--detector-imgsz", "multiple of 32")),
    "demo: --output-dir is a file": Bad(
        "nmm-demo", "--train-size 8 --test-size 4 --output-dir {file} --no-progress", ("--output-dir", "is a file")),
    "demo: --lr nan": Bad("nmm-demo", "--lr nan", ("--lr", "nan")),
    "demo: --train-size 0": Bad("nmm-demo", "--train-size 0", ("train_size", "at least 1")),
    "demo: unknown preset": Bad(
        "nmm-demo", "--model no-such-model --train-size 8 --test-size 4 --output-dir {tmp}/runs --no-progress",
        ("no-such-model",)),
    # -- handled before: must stay so
    "nmm train: missing data file": Bad("nmm", f"train --data {{tmp}}/nope.jsonl {ONE_STEP}", ("nope.jsonl",)),
    "nmm train: missing column": Bad(
        "nmm", f"train --data {{charts}} --data-prompt-column nope {ONE_STEP}", ("'nope'", "query")),
    "nmm train: unreadable image, stop": Bad(
        "nmm", f"train --data {{broken}} {COLUMNS} {ONE_STEP} --data-on-bad-record stop",
        ("record 'train-1'", "field 'image'")),
    "nmm train: unknown preset": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model qwen-nonexistent", ("qwen-nonexistent", "tiny-qwen2-vl")),
    "nmm train: --train-batch-size 0": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --train-batch-size 0", ("batch_size", "0")),
    "nmm train: --model-max-image-tokens 0": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model-max-image-tokens 0",
        ("--model-max-image-tokens", "at least 1, got 0")),
    "nmm train: --model-min-image-tokens negative": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model-min-image-tokens -4",
        ("--model-min-image-tokens", "got -4")),
    "nmm eval: --model-min-image-tokens above the max": Bad(
        "nmm", f"eval {CHARTS} --model-min-image-tokens 64 --model-max-image-tokens 16 --output-dir {{tmp}}/runs",
        ("--model-min-image-tokens (64)", "--model-max-image-tokens (16)")),
    "nmm train: LLaVA's image tokens are fixed": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --model tiny-llava-1.5 --model-max-image-tokens 8",
        ("llava", "fixed 16 image tokens")),
    "nmm info: --image not WxH": Bad("nmm", "info --image 640", ("--image", "WIDTHxHEIGHT", "'640'")),
    "nmm train: --train-epochs abc": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --train-epochs abc", ("--train-epochs", "'abc'")),
    "nmm train: unknown YAML setting": Bad(
        "nmm", f"train {CHARTS} {ONE_STEP} --config {{yaml}}", ("learning_rate",)),
    "nmm eval: adapter of another family": Bad(
        "nmm", f"eval {CHARTS} --model tiny-smolvlm --adapter {{adapter}} --output-dir {{tmp}}/runs",
        ("trained for", "tiny-qwen2-vl")),
    "nmm eval: damaged adapter_config.json": Bad(
        "nmm", f"eval {CHARTS} --adapter {{adapter}} --output-dir {{tmp}}/runs", ("adapter", "{adapter}", "peft_type")),
    "nmm: unknown command": Bad("nmm", "no-such-command", ("invalid choice", "no-such-command")),
    "charts eval: unknown preset": Bad(
        "nmm-charts", "eval --model no-such-model --output-dir {tmp}/runs", ("unknown preset 'no-such-model'",)),
    "charts compare: no adapter": Bad("nmm-charts", "compare --data {charts}", ("--adapter",)),
    "charts predict: unreadable image": Bad(
        "nmm-charts", "predict {broken}/images/b.png 'How many bars?'", ("b.png", "image")),
    "charts predict: empty question": Bad("nmm-charts", "predict {charts}/images/c0.png '  '", ("question", "empty")),
    "charts data synthesize: negative size": Bad(
        "nmm-charts", "data synthesize --out {tmp}/neg --synthetic-train-size -1 --no-progress", ("n=-1",)),
    "memes compete: no adapter": Bad("nmm-memes", "compete --output-dir {tmp}/runs", ("--adapter",)),
    "memes eval: unknown preset": Bad(
        "nmm-memes", "eval --model no-such-model --output-dir {tmp}/runs", ("unknown preset 'no-such-model'",)),
    "memes train: unknown preset": Bad(
        "nmm-memes", "train --model no-such-model --output-dir {tmp}/runs", ("no-such-model",)),
    "connectome data inspect: no cohort": Bad("nmm-connectome", "data inspect --data {tmp}/nothing", ("nothing",)),
    "connectome data synthesize: too few regions": Bad(
        "nmm-connectome", "data synthesize --out {tmp}/z --regions 5", ("regions must be at least",)),
    "connectome data build-fc: cifti without parcellation": Bad(
        "nmm-connectome", "data build-fc --source {tmp} --out {tmp}/fc", ("--parcellation",)),
    "pathology vqa predict: missing image": Bad(
        "nmm-pathology", "vqa predict --image {tmp}/none.png --question 'what is present?'", ("none.png",)),
    "pathology vqa predict: missing image, positional": Bad(
        "nmm-pathology", "vqa predict {tmp}/none.png 'what is present?'", ("none.png",)),
    "pathology vqa predict: neither IMAGE nor --image": Bad(
        "nmm-pathology", "vqa predict", ("missing IMAGE", "--image")),
    "pathology vqa predict: no QUESTION": Bad(
        "nmm-pathology", "vqa predict {charts}/images/c0.png", ("missing QUESTION", "--question")),
    "pathology vqa predict: IMAGE and --image": Bad(
        "nmm-pathology", "vqa predict {charts}/images/c0.png 'is it?' --image {charts}/images/c1.png",
        ("IMAGE given twice", "--image")),
    "pathology detect predict: neither IMAGE nor --source": Bad(
        "nmm-pathology", "detect predict", ("missing IMAGE", "--source")),
    "pathology detect predict: no such IMAGE": Bad(
        "nmm-pathology", "detect predict {tmp}/none.png --detector-model {tmp}/w.pt", ("IMAGE", "none.png")),
    "pathology detect predict: IMAGE and --source": Bad(
        "nmm-pathology", "detect predict {tmp} --source {tmp}", ("IMAGE given twice", "--source")),
    # a bad flag is the subcommand's error (its prog and usage), not the top level's
    "nmm train: unknown flag": Bad("nmm", "train --bogus 1", ("nmm train: error:", "--bogus")),
    "charts data inspect: unknown flag": Bad(
        "nmm-charts", "data inspect --bogus", ("nmm-charts data inspect: error:",)),
    "pathology vqa eval: unknown flag": Bad("nmm-pathology", "vqa eval --bogus", ("nmm-pathology vqa eval: error:",)),
    "memes eval: unknown flag": Bad("nmm-memes", "eval --bogus", ("nmm-memes eval: error:", "--bogus")),
    "connectome train: unknown flag": Bad("nmm-connectome", "train --bogus", ("nmm-connectome train: error:",)),
    "pathology detect convert: no source folder": Bad(
        "nmm-pathology", "detect convert --source {tmp}/nothing --output {tmp}/yolo", ("--source", "nothing")),
    "memes convert: no SRC folder": Bad(
        "nmm-memes", "convert {tmp}/nothing {tmp}/converted", ("SRC", "nothing", "no such folder")),
    "nmm convert: no SRC folder": Bad("nmm", "convert {tmp}/nothing {tmp}/converted", ("SRC", "no such folder")),
    "nmm train: --train-epochs 0 names its flag": Bad(
        "nmm", f"train {CHARTS} --train-epochs 0 --output-dir {{tmp}}/runs", ("--train-epochs", "got 0")),
    # -- issue 21, section 3: export
    "nmm export: missing adapter": Bad(
        "nmm", "export --adapter {tmp}/no-adapter --out {tmp}/exported", ("--adapter", "no-adapter", "no such folder")),
    "nmm export: --out is a file": Bad(
        "nmm", "export --adapter {adapter} --out {file}", ("--out", "{file}", "is a file")),
    "nmm export: adapter for another base": Bad(
        "nmm", "export --model tiny-smolvlm --adapter {adapter} --out {tmp}/exported",
        ("trained for", "tiny-qwen2-vl")),
    "nmm export: --dtype int8": Bad(
        "nmm", "export --adapter {adapter} --out {tmp}/exported --dtype int8", ("--dtype", "int8", "bfloat16")),
    "nmm export: --report without a report.json": Bad(
        "nmm", "export --adapter {adapter} --out {tmp}/exported --report {charts}", ("--report", "no report.json")),
    "charts export: --out holds other files": Bad(
        "nmm-charts", "export --adapter {adapter} --out {charts}", ("--out", "{charts}", "holds other files")),
    "pathology vqa export: missing adapter": Bad(
        "nmm-pathology", "vqa export --adapter {tmp}/no-adapter --out {tmp}/exported", ("--adapter", "no-adapter")),
    "memes export: no --adapter": Bad("nmm-memes", "export --out {tmp}/exported", ("--adapter",)),
    # -- a data source that is not there: train's pre-flight and message, the flag the parser shows
    **{f"{cli} {args}": Bad(cli, args, ("error: --data-source {tmp}/nothing: no such file or folder",))
       for cli, args in (("nmm-charts", "data inspect --data {tmp}/nothing"),
                         ("nmm-charts", "train --data {tmp}/nothing --output-dir {tmp}/runs"),
                         ("nmm-memes", "data inspect --data-source {tmp}/nothing"),
                         ("nmm-pathology", "vqa data inspect --data {tmp}/nothing"))},
    "pathology detect train: weights not local": Bad(
        "nmm-pathology", "detect train --detector-model yolov8n.pt --output-dir {tmp}/runs", ("not found locally",)),
    # -- validation during training (issue 21, section 1); the charts set's 4 records hold none out at 0.1
    **{f"nmm train: {flags}": Bad("nmm", f"train {CHARTS} {ONE_STEP} {flags}", says) for flags, says in (
        ("--train-eval-steps -1", ("eval_steps", "at least 1", "-1")),
        ("--data-val-fraction 1.5", ("--data-val-fraction", "between 0 and 1")),
        ("--train-eval-steps 1", ("4 training records", "--data-val-fraction")),
        ("--train-eval-steps 1 --data-val-split nope", ("nope",)))},
    "charts train: --train-keep-best metric without a generate limit": Bad(
        "nmm-charts", "train --train-eval-steps 10 --train-keep-best metric --output-dir {tmp}/runs",
        ("keep_best metric", "eval_generate_limit")),
    "pathology vqa train: patience without eval steps": Bad(
        "nmm-pathology", "vqa train --train-early-stopping-patience 3 --output-dir {tmp}/runs",
        ("early_stopping_patience needs eval_steps",)),
    "memes train: keep-best with save steps not a multiple of eval steps": Bad(
        "nmm-memes", "train --train-eval-steps 30 --train-keep-best loss --output-dir {tmp}/runs",
        ("save_steps", "multiple of eval_steps (30)")),
}


def _charts_set(folder: Path, *, wide: bool = False, broken: bool = False) -> Path:
    """Four chart-like records in `nmm`'s column names query/label (one wide or one broken image on demand)."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(4):
        Image.new("RGB", (64, 48), (30 * i, 90, 160)).save(folder / "images" / f"c{i}.png")
        rows.append({"id": f"train-{i}", "image": f"images/c{i}.png", "query": "How many bars?", "label": str(i)})
    if wide:
        Image.new("RGB", (3000, 5), "white").save(folder / "images" / "wide.png")
        rows[0]["image"] = "images/wide.png"
    if broken:
        (folder / "images" / "b.png").write_bytes(b"not a png")
        rows[1]["image"] = "images/b.png"
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, str]:
    """The workspace every case's placeholders point into."""
    root = tmp_path_factory.mktemp("bad-input")
    (root / "a-file").write_text("not a folder\n")
    (root / "w.pt").write_bytes(b"")  # weights that exist, for checks made before they are read
    (root / "readonly").mkdir()
    _charts_set(root / "charts")
    _charts_set(root / "wide", wide=True)
    broken = _charts_set(root / "broken", broken=True)
    (root / "coco" / "train").mkdir(parents=True)
    (root / "coco" / "train" / "_annotations.coco.json").write_text('{"images": [{"id": 1, "file_na')
    (root / "bad.yaml").write_text("train:\n  learning_rate: 0.1\n")
    (root / "empty").mkdir()
    (root / "empty" / "train.jsonl").write_text("")
    (root / "badutf").mkdir()
    (root / "badutf" / "train.jsonl").write_bytes(b'{"id": "a", "question": "q", "answer": "a"}\n'
                                                  b'{"id": "b", "question": "\xff", "answer": "a"}\n')
    (root / "memes-badutf").mkdir()
    (root / "memes-badutf" / "memes-test.json").write_bytes(b'[\n {"post_id": "\xff"}\n]\n')
    (root / "damaged-model").mkdir()
    (root / "damaged-model" / "config.json").write_text('{"model_type": "qwen2')
    allbad = _charts_set(root / "allbad")
    for image in (allbad / "images").iterdir():
        image.write_bytes(b"not a png")
    cohort = root / "cohort"
    assert connectome_main(["data", "synthesize", "--out", str(cohort), "--subjects", "6", "--regions", "24"]) == 0
    adapter = root / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "nmm_adapter.json").write_text(json.dumps({"base": "tiny-qwen2-vl", "family": "qwen2_vl"}))
    return {"tmp": str(root), "file": str(root / "a-file"), "readonly": str(root / "readonly"),
            "charts": str(root / "charts"), "wide": str(root / "wide"), "broken": str(broken),
            "coco": str(root / "coco"), "yaml": str(root / "bad.yaml"), "cohort": str(cohort),
            "adapter": str(adapter), "empty": str(root / "empty"), "badutf": str(root / "badutf"),
            "allbad": str(allbad), "memes_badutf": str(root / "memes-badutf"),
            "twin": str(twin_path(get_preset("tiny-qwen2-vl")))}


def _last_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_ends_in_one_line(name, ws, capsys, monkeypatch):
    case = CASES[name]
    if case.setup is not None:
        case.setup(monkeypatch, ws)
    argv = shlex.split(case.args.format(**ws))
    try:
        code = MAINS[case.cli](argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    last = _last_line(err)
    assert code == 2, f"exit {code}; stderr ends: {err[-2000:]}"
    assert "Traceback" not in err
    assert "error:" in last, last
    for part in case.says:
        assert part.format(**ws) in last, f"{part!r} not in {last!r}"


@pytest.mark.parametrize("cli, target", [
    ("nmm-charts", "nmm_charts.data.make_charts"),
    ("nmm-memes", "nmm_memes.synthetic.make_memes"),
    ("nmm-connectome", "nmm_connectome.commands.synthesize"),
])
def test_interrupted_synthesize_leaves_nothing_and_offers_no_resume(cli, target, tmp_path, capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupt)
    out = tmp_path / "set"
    code = MAINS[cli](["data", "synthesize", "--out", str(out)])
    last = _last_line(capsys.readouterr().err)
    assert code == 130
    assert last.startswith("interrupted: ") and str(out) in last and "--resume" not in last
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary sibling


@pytest.mark.parametrize("cli, size", [("nmm-charts", "--synthetic-train-size"),
                                       ("nmm-memes", "--synthetic-trainval-size")])
def test_synthesize_with_an_invalid_size_leaves_nothing(cli, size, tmp_path, capsys):
    assert MAINS[cli](["data", "synthesize", "--out", str(tmp_path / "set"), size, "-1", "--no-progress"]) == 2
    assert "-1" in _last_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cli, verb, preset", [("nmm-charts", ["export"], "tiny-gill"),
                                                ("nmm-memes", ["export"], "tiny-qwen2-vl"),
                                                ("nmm-pathology", ["vqa", "export"], "tiny-gill")])
def test_a_domains_export_refuses_another_domains_preset_and_writes_nothing(cli, verb, preset, ws, tmp_path, capsys):
    out = tmp_path / "exported"
    assert MAINS[cli]([*verb, "--adapter", ws["adapter"], "--out", str(out), "--model", preset]) == 2
    last = _last_line(capsys.readouterr().err)
    assert last.startswith(f"error: --model {preset} is a preset of nmm-") and f", not of {cli} (its presets: " in last
    assert list(tmp_path.iterdir()) == []


def test_an_uncached_hub_dataset_offline_is_refused_before_any_run_folder(tmp_path, capsys, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")  # empty
    runs = tmp_path / "runs"
    assert charts_main(["train", "--data-source", "HuggingFaceM4/nosuch", "--output-dir", str(runs)]) == 2
    last = _last_line(capsys.readouterr().err)
    assert last.startswith("error: --data-source HuggingFaceM4/nosuch: not in the local datasets cache")
    assert not runs.exists()


def test_info_counts_the_presets_it_shows_against_all_installed(capsys):
    assert core_main(["presets"]) == 0
    installed = len(capsys.readouterr().out.strip().splitlines()) - 1  # less the header
    assert core_main(["info"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("presets of nmm-core")]
    assert f"of the {installed} installed" in line and "nmm presets" in line


def test_a_typoed_flag_gets_two_lines_naming_the_closest_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        pathology_main(["vqa", "train", "--train-epoks", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.splitlines() == [
        "usage: nmm-pathology vqa train [options]",
        "nmm-pathology vqa train: error: unrecognized arguments: --train-epoks 1 (did you mean --train-epochs?); "
        "see `nmm-pathology vqa train --help`"]


def test_a_typoed_verb_gets_the_closest_verb_at_every_level(capsys):
    for main, argv, line in (
            (charts_main, ["trian"], "nmm-charts: error: argument COMMAND: invalid choice: 'trian' "
             "(did you mean train?)"),
            (pathology_main, ["vqa", "data", "inspct"], "nmm-pathology vqa data: error: argument ACTION: invalid "
             "choice: 'inspct' (did you mean inspect?); see `nmm-pathology vqa data --help`")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == line
    with pytest.raises(SystemExit):  # nothing close: the choices, as before
        charts_main(["zzzz"])
    assert "(choose from 'info', 'train'," in capsys.readouterr().err


class _Parsed(Exception):
    """Raised in place of parsing, carrying the whole parser tree a CLI built."""


def _option_strings(parser, path: str):
    """(command path, option strings) of every flag under `parser`, its subcommands' included."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _option_strings(sub, f"{path} {name}")
        elif action.option_strings:
            yield path, action.option_strings


@pytest.mark.parametrize("cli", [c for c in MAINS if c != "nmm-demo"])
def test_no_flag_is_shown_by_a_doubled_name(cli, monkeypatch):
    """`--model`, not `--model-model`: usage shows the first option string, so it is the one users type."""
    import argparse

    def capture(self, args=None, namespace=None):
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed) as parsed:
        MAINS[cli](["info"])
    flags = list(_option_strings(parsed.value.args[0], cli))
    assert any("--model-model" in strings for _, strings in flags) or cli == "nmm-connectome"
    doubled = [(path, strings) for path, strings in flags
               if (words := strings[0][2:].split("-")) and len(words) % 2 == 0
               and words[:len(words) // 2] == words[len(words) // 2:]]
    assert doubled == []

