"""`data synthesize --out` replaces only a set the same program generated there before: a user's own data
folder or another domain's set is refused (exit 2, one line naming --out) and left untouched."""

from __future__ import annotations

import json
from pathlib import Path

from nmm_core.files import GENERATED_MARKER

CHARTS = ["--synthetic-seed", "1", "--synthetic-train-size", "4", "--synthetic-val-size", "2",
          "--synthetic-test-size", "2", "--synthetic-image-size", "64", "--no-progress"]
MEMES = ["--synthetic-seed", "1", "--synthetic-trainval-size", "6", "--synthetic-test-size", "2",
         "--synthetic-image-size", "32", "--no-progress"]
PATHOLOGY = ["--synthetic-train-size", "4", "--synthetic-test-size", "2", "--synthetic-image-size", "32",
             "--no-progress"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_users_split_jsonl_folder_survives_pathology_synthesize(tmp_path, capsys):
    from nmm_pathology.cli import main

    mine = tmp_path / "mydata"
    (mine / "images").mkdir(parents=True)
    (mine / "images" / "a.png").write_bytes(b"not really a png")
    for split in ("train", "test"):  # the README's local-folder layout: test.jsonl was the old marker
        (mine / f"{split}.jsonl").write_text(json.dumps({"image": "a.png", "question": "q?", "answer": "yes"}) + "\n")
    (mine / "NOTES.md").write_text("my own notes\n")
    before = _snapshot(mine)
    assert main(["vqa", "data", "synthesize", *PATHOLOGY, "--out", str(mine)]) == 2
    line = _error_line(capsys)
    assert "--out" in line and str(mine) in line and "nmm-pathology did not generate" in line
    assert "NOTES.md" in line and "choose another --out or remove it" in line
    assert _snapshot(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydata"]  # no temporary sibling left


def test_memes_synthesize_refuses_a_charts_set_and_charts_can_still_read_it(tmp_path, capsys):
    from nmm_charts.cli import main as charts
    from nmm_memes.cli import main as memes

    out = tmp_path / "charts-synth"
    assert charts(["data", "synthesize", *CHARTS, "--out", str(out)]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert memes(["data", "synthesize", *MEMES, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "--out" in line and str(out) in line and "synthetic set nmm-charts generated, not nmm-memes" in line
    assert _snapshot(out) == before
    assert charts(["data", "inspect", "--data-source", str(out)]) == 0


def test_synthesize_replaces_its_own_earlier_output(tmp_path, capsys):
    from nmm_memes.cli import main

    out = tmp_path / "memes-synth"
    assert main(["data", "synthesize", *MEMES, "--out", str(out)]) == 0
    assert json.loads((out / GENERATED_MARKER).read_text()) == {"program": "nmm-memes", "kind": "synthetic"}
    first = json.loads((out / "memes-test.json").read_text())
    bigger = [*MEMES[:4], "--synthetic-test-size", "3", *MEMES[6:]]
    assert main(["data", "synthesize", *bigger, "--out", str(out)]) == 0
    assert len(json.loads((out / "memes-test.json").read_text())) == 3 != len(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memes-synth"]


def test_connectome_synthesize_refuses_a_cohort_built_from_real_scans(tmp_path, capsys):
    import numpy as np

    from nmm_connectome.cli import main

    src, out = tmp_path / "fc", tmp_path / "cohort"
    rng = np.random.default_rng(0)
    for cond in ("rest", "task"):
        (src / cond).mkdir(parents=True)
        for subject in ("a", "b", "c"):
            np.save(src / cond / f"{subject}.npy", np.corrcoef(rng.standard_normal((6, 100))))
    build = ["data", "build-fc", "--source", str(src), "--input", "fc", "--out", str(out)]
    assert main(build) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["data", "synthesize", "--out", str(out), "--subjects", "8", "--regions", "24"]) == 2
    line = _error_line(capsys)
    assert "--out" in line and str(out) in line and "holds a cohort set nmm-connectome generated" in line
    assert _snapshot(out) == before
    assert main(build) == 0  # build-fc still replaces its own earlier cohort
