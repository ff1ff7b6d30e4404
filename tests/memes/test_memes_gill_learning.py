"""The offline GILL twin learns: `train --model tiny-gill` with its recipe captions better than untrained parts,
and its captions, images and retrieval scores depend on their inputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from nmm_core.metrics import rouge
from nmm_memes.cli import main
from nmm_memes.synthetic import TEMPLATES

CAPTIONED = 8  # test memes captioned by each model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One default tiny-gill train run: (run folder, its config.yaml, the test records of its synthetic set)."""
    out = tmp_path_factory.mktemp("gill-learning")
    assert main(["train", "--model", "tiny-gill", "--output-dir", str(out)]) == 0
    (run,) = out.iterdir()
    config = yaml.safe_load((run / "config.yaml").read_text())
    folder = Path(config["data"]["source"])
    records = json.loads((folder / "memes-test.json").read_text())[:CAPTIONED]
    return run, config, [(str(folder / "images" / r["img_fname"]), r["img_captions"][0]) for r in records]


def _captions(capsys, images: list[str], adapter: list[str]) -> list[str]:
    out = []
    for image in images:
        capsys.readouterr()
        assert main(["predict", "--model", "tiny-gill", *adapter, image]) == 0
        out.append(capsys.readouterr().out.strip())
    return out


@pytest.mark.slow
def test_gill_default_records_its_recipe(trained):
    _, config, _ = trained
    assert (config["train"]["lr"], config["train"]["epochs"]) == (3e-3, 3.0)


@pytest.mark.slow
def test_gill_trained_captions_beat_untrained_parts(trained, capsys):
    run, _, memes = trained
    images, truth = [m[0] for m in memes], [[m[1]] for m in memes]
    tuned = _captions(capsys, images, ["--adapter", str(run / "adapter")])
    untrained = _captions(capsys, images, [])
    tuned_rouge, untrained_rouge = rouge(tuned, truth)["rougeL"], rouge(untrained, truth)["rougeL"]
    assert tuned_rouge >= untrained_rouge + 0.3, (tuned, untrained)
    # the scene (sunny, storm, fire, ghost) is read off the image, not always the commonest one
    scenes = {t.name for t in TEMPLATES}

    def scene(text: str) -> str | None:
        return next((w for w in text.split() if w in scenes), None)

    right = sum(scene(c) == scene(t[0]) for c, t in zip(tuned, truth, strict=True)) / len(truth)
    commonest = Counter(scene(t[0]) for t in truth).most_common(1)[0][1] / len(truth)
    assert right > commonest, (tuned, truth)
    assert len(set(tuned)) > 1  # captions depend on the image


@pytest.mark.slow
def test_gill_generate_and_retrieve_depend_on_the_caption(trained, tmp_path, capsys):
    run, _, memes = trained
    adapter = ["--model", "tiny-gill", "--adapter", str(run / "adapter")]
    pixels = []
    for i, caption in enumerate((memes[0][1], "A fire scene with the words COFFEE and RAGE.")):
        out = tmp_path / f"gen{i}.png"
        assert main(["generate", *adapter, "--steps", "2", "--out", str(out), caption]) == 0
        with Image.open(out) as png:
            pixels.append(png.tobytes())
    assert pixels[0] != pixels[1]  # same seed, different caption: a different image

    scores = []
    images = [m[0] for m in memes[:4]]
    for caption in ("A sunny scene with the words PIZZA and NICE.", "A storm scene with the words EXAMS and WHY."):
        capsys.readouterr()
        assert main(["retrieve", *adapter, "--top", "4", caption, *images]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        scores.append({line.split(maxsplit=1)[1]: float(line.split()[0]) for line in lines})
    assert scores[0] != scores[1]  # the ranking scores follow the caption
