"""Commands run as a user runs them, each in a fresh Python process, and what two runs saved compared.

Reproducibility is a claim about separate processes: one process running twice shares its
import-time state (hash seed, thread pools, cached twins), a second process shares none of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONHASHSEED", None)  # each process draws its own, as a user's would
    return env


def start(module: str, *args: str) -> subprocess.Popen:
    """`python -m module args...` started in a fresh process (stderr kept for a failure's message)."""
    return subprocess.Popen([sys.executable, "-m", module, *args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_all(commands: Sequence[tuple[str, ...]], *, at_once: int = 2, timeout: float = 600) -> None:
    """Run each (module, *args) in its own process, `at_once` at a time; AssertionError naming the
    first that failed, with the end of its stderr."""
    pending = list(commands)
    while pending:
        batch, pending = pending[:at_once], pending[at_once:]
        procs = [start(*command) for command in batch]
        for command, proc in zip(batch, procs, strict=True):
            _, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"{' '.join(command)} exited {proc.returncode}:\n{err[-3000:]}"


# `python -c` body: run `module` as `python -m` would, killed with SIGKILL (no handler, no cleanup, as
# `kill -9`) when the Trainer is about to take optimiser step `step` + 1
_KILLED_AT = """
import os, runpy, signal, sys
import transformers
step, module = int(sys.argv[1]), sys.argv[2]
real = transformers.Trainer.training_step
def training_step(self, *args, **kwargs):
    if self.state.global_step >= step:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *args, **kwargs)
transformers.Trainer.training_step = training_step
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_killed(module: str, *args: str, after_step: int, timeout: float = 600) -> None:
    """`python -m module args...` in a fresh process, killed with SIGKILL once it has taken `after_step`
    optimiser steps (whatever it saved or logged by then stays as it was)."""
    import signal

    proc = subprocess.run([sys.executable, "-c", _KILLED_AT, str(after_step), module, *args], env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
    assert proc.returncode == -signal.SIGKILL, f"expected a SIGKILL, got exit {proc.returncode}:\n{proc.stderr[-3000:]}"


def saved_tensors(folder: Path) -> dict[str, object]:
    """Every tensor saved under `folder` (`*.safetensors`, and `*.pt` state dicts), by file and name."""
    import torch
    from safetensors.torch import load_file

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix in (".safetensors", ".pt"))
    assert files, f"no .safetensors or .pt file under {folder}"
    out = {}
    for path in files:
        state = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
        out.update({f"{path.relative_to(folder)}:{name}": t for name, t in state.items() if torch.is_tensor(t)})
    return out


def largest_difference(a: Path, b: Path) -> float:
    """The largest |a - b| over the tensors two runs saved under folders `a` and `b`: 0.0 only when
    every tensor is bit for bit the same (a NaN in one place and not the other is inf)."""
    left, right = saved_tensors(a), saved_tensors(b)
    assert left.keys() == right.keys(), sorted(set(left) ^ set(right))
    worst = 0.0
    for key, tensor in left.items():
        other = right[key]
        if tensor.dtype != other.dtype or tensor.shape != other.shape:
            return float("inf")
        if not _bytes(tensor).equal(_bytes(other)):
            diff = float((tensor.float() - other.float()).abs().max())
            worst = max(worst, diff if diff > 0 else float("inf"))  # -0.0 against 0.0, or NaNs
    return worst


def _bytes(tensor):
    import torch

    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
