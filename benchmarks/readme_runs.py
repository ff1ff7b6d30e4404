"""Run a README walkthrough as a user types it and record it: every command, what it printed (the tail), its
seconds and the commit, in benchmarks/results/readme-<name>-cpu-<cores>cores.json. Offline (HF_HUB_OFFLINE=1,
UV_OFFLINE=1: packages come from uv's cache), in a scratch folder.

    uv run python benchmarks/readme_runs.py demo   # the top-level README's demo: first run, then warm
    uv run python benchmarks/readme_runs.py gill   # memes' tiny-gill: train, captions of 8 test memes, ROUGE-L
    uv run python benchmarks/readme_runs.py connectome   # its README's synthetic-cohort commands
    uv run python benchmarks/readme_runs.py detect       # pathology's `detect synth` and `detect val`
    uv run python benchmarks/readme_runs.py charts       # charts' `data synthesize --out` and `data inspect`
    uv run python benchmarks/readme_runs.py charts-train # the top-level README's charts train + compare
    uv run python benchmarks/readme_runs.py vqa          # pathology's `vqa train` + `vqa compare`
    uv run python benchmarks/readme_runs.py memes        # memes' `train` + `compete`
    uv run python benchmarks/readme_runs.py detect-train # pathology's `detect synth` + `detect train` (30 epochs)
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from nmm_bench.provenance import machine, provenance

REPO = Path(__file__).resolve().parents[1]
GILL_MEMES = 8  # the test memes tests/memes/test_memes_gill_learning.py captions


def run(command: str, cwd: Path, env: dict[str, str]) -> dict:
    """One command as typed, timed; the last lines of its stdout and of its stderr (progress bars reduced to
    their last state)."""
    t0 = time.perf_counter()
    done = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = round(time.perf_counter() - t0, 1)
    row = {"command": command, "seconds": seconds, "exit_code": done.returncode}
    for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        lines = [line.split("\r")[-1].rstrip() for line in text.splitlines()]
        row[f"{stream}_tail"] = [line for line in lines if line.strip()][-14:]
    print(json.dumps(row, indent=1), flush=True)
    row["stdout"] = done.stdout.strip()  # for the caller; only captions keep it
    if done.returncode:
        sys.exit(f"{command!r} failed with exit code {done.returncode}")
    return row


def demo(scratch: Path, env: dict[str, str]) -> dict:
    """`uv run nmm-demo` in a fresh clone of this commit (a new .venv from uv's cache, an empty NMM_CACHE: the
    first run builds the twin and trains its tokenizer), then the same command again (warm)."""
    clone = scratch / "nmm"
    commit = provenance("smoke", repo=REPO)["commit"]
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", commit], check=True)
    env = {**env, "NMM_CACHE": str(scratch / "nmm-cache")}
    rows = [run("uv run nmm-demo", clone, env), run("uv run nmm-demo", clone, env)]
    for row in rows:
        row.pop("stdout")
    return {"steps": rows, "summary": {"first_run_seconds": rows[0]["seconds"], "warm_run_seconds": rows[1]["seconds"]}}


def gill(scratch: Path, env: dict[str, str]) -> dict:
    """memes README's GILL twin: the generated set written out (its images are the memes to caption), `train
    --model tiny-gill`, then `predict` on the first test memes with the adapter and without (untrained parts)."""
    from nmm_core.metrics import rouge

    env = {**env, "UV_PROJECT": str(REPO), "NMM_CACHE": str(scratch / "nmm-cache")}
    rows = [run("uv run nmm-memes data synthesize --out memes-synth --no-progress", scratch, env),
            run("uv run nmm-memes train --model tiny-gill", scratch, env)]
    for row in rows:
        row.pop("stdout")
    [train_run] = (scratch / "runs").glob("*-train-*")
    memes = json.loads((scratch / "memes-synth" / "memes-test.json").read_text())[:GILL_MEMES]
    truth = [[m["img_captions"][0]] for m in memes]
    captions: dict[str, list[str]] = {}
    for name, adapter in (("trained", f" --adapter runs/{train_run.name}/adapter"), ("untrained", "")):
        said = [run(f"uv run nmm-memes predict --model tiny-gill{adapter} memes-synth/images/{m['img_fname']}",
                    scratch, env) for m in memes]
        captions[name] = [row.pop("stdout") for row in said]
        rows += said
    scores = {name: round(rouge(said, truth)["rougeL"], 3) for name, said in captions.items()}
    return {"steps": rows, "captions": {**captions, "references": [t[0] for t in truth]},
            "summary": {f"rougeL_{name}": v for name, v in scores.items()} | {"memes": len(memes)}}


# walkthroughs that are a list of commands, as their README gives them (runs/<train-run> as the shell finds it)
TRAIN_RUN = "runs/????????-??????-train-*"
COMMANDS = {
    "connectome": ["uv run nmm-connectome data synthesize --out cohort",
                   "uv run nmm-connectome train --data cohort",
                   "uv run nmm-connectome train --data cohort --no-bridge-condition-on-x0 --bridge-sigma 0.2 "
                   "--name bridge-unconditioned",
                   "uv run nmm-connectome eval --data cohort --runs runs/????????-??????-train-bridge*"],
    "charts": ["uv run nmm-charts data synthesize --out charts-synth",
               "uv run nmm-charts data inspect --data charts-synth"],
    "detect": ["uv run nmm-pathology detect synth", "uv run nmm-pathology detect val --data synthetic-mri/data.yaml"],
    # the learning walkthroughs: train on the defaults, then score base against the adapter
    "charts-train": ["uv run nmm-charts train",
                     f"uv run nmm-charts compare --adapter {TRAIN_RUN}/adapter"],
    "vqa": ["uv run nmm-pathology vqa train",
            f"uv run nmm-pathology vqa compare --adapter {TRAIN_RUN}/adapter"],
    "memes": ["uv run nmm-memes train",
              f"uv run nmm-memes compete --adapter {TRAIN_RUN}/adapter"],
    "detect-train": ["uv run nmm-pathology detect synth",
                     "uv run nmm-pathology detect train --data synthetic-mri/data.yaml"],
}


def commands(name: str, scratch: Path, env: dict[str, str]) -> dict:
    """Each of the walkthrough's commands in turn, in the scratch folder."""
    env = {**env, "UV_PROJECT": str(REPO), "NMM_CACHE": str(scratch / "nmm-cache")}
    rows = [run(command, scratch, env) for command in COMMANDS[name]]
    for row in rows:
        row.pop("stdout")
    return {"steps": rows, "summary": {"seconds": round(sum(row["seconds"] for row in rows), 1)}}


def main() -> None:
    """Run the walkthrough named on the command line and write its result file."""
    walkthroughs = {"demo": demo, "gill": gill} | {n: partial(commands, n) for n in COMMANDS}
    if len(sys.argv) != 2 or sys.argv[1] not in walkthroughs:
        sys.exit(f"usage: readme_runs.py {{{','.join(walkthroughs)}}}")
    name = sys.argv[1]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env.update(HF_HUB_OFFLINE="1", UV_OFFLINE="1")
    started = provenance("smoke", repo=REPO)  # the commit measured; the load average before the run
    with tempfile.TemporaryDirectory(prefix=f"readme-{name}-") as scratch:
        result = walkthroughs[name](Path(scratch), env)
    out = REPO / "benchmarks" / "results" / f"readme-{name}-cpu-{os.cpu_count()}cores.json"
    body = {"name": f"readme-{name}", "environment": {k: env[k] for k in ("HF_HUB_OFFLINE", "UV_OFFLINE")},
            **result, "provenance": started, "load_average_after": machine()["load_average_1_5_15_min"]}
    out.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n")
    print(f"{out.relative_to(REPO)}: {shlex.quote(json.dumps(result['summary']))}")


if __name__ == "__main__":
    main()
