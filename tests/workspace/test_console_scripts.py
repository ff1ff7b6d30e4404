"""Every console script answers `--help` quickly and without importing torch.

Two subprocesses per script: the installed script itself (`<script> --help`, exit 0 within
20 s), and a fresh interpreter that loads the script's entry point the way the launcher does,
runs it with `--help`, then reports which heavy libraries ended up in `sys.modules`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = ("nmm", "nmm-charts", "nmm-pathology", "nmm-memes", "nmm-connectome", "nmm-demo", "nmm-bench", "nmm-arena")
HEAVY = ("torch", "transformers", "peft", "datasets", "diffusers", "ultralytics", "nilearn")

_PROBE = r"""
import json, sys
from importlib.metadata import entry_points
[ep] = [e for e in entry_points(group="console_scripts") if e.name == sys.argv[1]]
main = ep.load()
try:
    code = main(["--help"])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _script(name: str) -> str:
    """The script next to this interpreter (the venv's bin), else the one on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"console script {name!r} is not installed (run `uv sync`)"
    return found


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{cmd} took over 20 s\nstdout:\n{exc.stdout}\nstderr:\n{exc.stderr}")


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_script_help_is_fast_and_torch_free(script):
    proc = _run([_script(script), "--help"])
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, shown
    assert script in proc.stdout, shown

    probe = _run([sys.executable, "-c", _PROBE, script, *HEAVY])
    shown = f"exit {probe.returncode}\nstdout:\n{probe.stdout}\nstderr:\n{probe.stderr}"
    assert probe.returncode == 0, shown
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, shown
    assert result["loaded"] == [], f"`{script} --help` imported {result['loaded']}"
