"""Each package installs on its own: nmm-core + nmm-charts wheels into a fresh venv, nothing else.

Builds the two wheels with `uv build`, installs only them into a new virtual environment with
every third-party dependency pinned to `uv.lock` (a constraints file from `uv export`, so the
wheels come from uv's cache), then runs the domain CLI there and checks that the other domains
are absent. Slow (about a minute or two on 2 cores): marked `slow`, but CI runs it.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Domain-only libraries that nmm-core must never require unconditionally.
DOMAIN_ONLY = ("diffusers", "ultralytics", "nilearn", "nibabel")


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets UV to its own binary
    if uv is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("uv is not on PATH, and under CI=true the packaging test must run")
        pytest.skip("uv is not on PATH: cannot build wheels or make a fresh venv")
    return uv


def _env(venv: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"):
        env.pop(var, None)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               UV_COMPILE_BYTECODE="0", UV_NO_PROGRESS="1")  # compiling torch's .pyc: minutes
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return env


def _run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout} s: {cmd}\n"
                    f"stdout:\n{exc.stdout}\nstderr:\n{exc.stderr}")
    if check and proc.returncode != 0:
        pytest.fail(f"{cmd} failed\n{_show(proc)}")
    return proc


def _show(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.fixture(scope="module")
def charts_venv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh venv holding only the nmm-core and nmm-charts wheels (plus their locked deps)."""
    uv = _uv()
    tmp = tmp_path_factory.mktemp("packaging")
    dist = tmp / "dist"
    wheels = {}
    for name in ("nmm-core", "nmm-charts"):
        _run([uv, "build", "--package", name, "--wheel", "--out-dir", str(dist)], timeout=300)
        found = sorted(dist.glob(f"{name.replace('-', '_')}-*.whl"))
        assert len(found) == 1, f"expected one {name} wheel in {dist}: {list(dist.iterdir())}"
        wheels[name] = found[0]

    constraints = tmp / "constraints.txt"
    _run([uv, "export", "--frozen", "--no-hashes", "--no-emit-workspace", "--all-packages",
          "-o", str(constraints)], timeout=120)
    assert "torch==" in constraints.read_text(), "the exported constraints pin nothing"

    venv = tmp / "venv"
    _run([uv, "venv", str(venv), "--python", sys.executable], timeout=120)
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--python", str(python), "-c", str(constraints),
          *map(str, wheels.values())], timeout=900)
    return {"venv": venv, "python": python, "core_wheel": wheels["nmm-core"]}


def test_wheel_charts_help_in_fresh_venv(charts_venv):
    venv = charts_venv["venv"]
    proc = _run([str(venv / "bin" / "nmm-charts"), "--help"], env=_env(venv), timeout=60,
                check=False)
    assert proc.returncode == 0, _show(proc)
    assert "info" in proc.stdout, _show(proc)


def test_wheel_charts_info_in_fresh_venv(charts_venv):
    venv = charts_venv["venv"]
    proc = _run([str(venv / "bin" / "nmm-charts"), "info"], env=_env(venv), timeout=180,
                check=False)
    assert proc.returncode == 0, _show(proc)
    assert "nmm-charts 0.1.0" in proc.stdout, _show(proc)
    assert "nmm-core" in proc.stdout, _show(proc)


def test_wheel_core_exports_in_fresh_venv(charts_venv):
    venv = charts_venv["venv"]
    proc = _run([str(charts_venv["python"]), "-c", "import nmm_core; print(nmm_core.__all__)"],
                env=_env(venv), timeout=60, check=False)
    assert proc.returncode == 0, _show(proc)
    assert "'rouge'" in proc.stdout and "'load_model'" in proc.stdout, _show(proc)


def test_wheel_other_domain_absent_in_fresh_venv(charts_venv):
    venv = charts_venv["venv"]
    proc = _run([str(charts_venv["python"]), "-c", "import nmm_pathology"], env=_env(venv),
                timeout=60, check=False)
    assert proc.returncode != 0, _show(proc)
    assert "ModuleNotFoundError" in proc.stderr, _show(proc)


def test_wheel_core_metadata_has_no_domain_requirements(charts_venv):
    with zipfile.ZipFile(charts_venv["core_wheel"]) as zf:
        [meta_name] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.parser.Parser().parsestr(zf.read(meta_name).decode())
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    assert any(r.name == "torch" for r in requires), f"unexpected metadata: {requires}"
    for req in requires:
        name = req.name.lower()
        if name not in DOMAIN_ONLY:
            continue
        marker = str(req.marker or "")
        assert name == "diffusers" and marker == 'extra == "diffusion"', (
            f"nmm-core must not require {name} (found {req}); only diffusers, and only "
            "under the 'diffusion' extra"
        )


def test_wheel_charts_pulls_no_other_domain_libraries(charts_venv):
    venv = charts_venv["venv"]
    code = ("import importlib.util, sys; "
            "print([m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None])")
    proc = _run([str(charts_venv["python"]), "-c", code, *DOMAIN_ONLY, "bitsandbytes"],
                env=_env(venv), timeout=60, check=False)
    assert proc.returncode == 0, _show(proc)
    assert proc.stdout.strip() == "[]", _show(proc)
