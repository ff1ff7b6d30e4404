"""What a result file measured: the git commit, whether the tree was dirty, nmm's version, the date."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nmm_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
# result files written by earlier runs do not change the code being measured
NOT_CODE = ("benchmarks/results",)
COMMIT_ENV = "NMM_COMMIT"


def _git(*args: str, repo: Path) -> str | None:
    """`git -C repo args...`'s stdout, or None where there is no git repository or no git."""
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def dirty_paths(repo: Path | None = None) -> list[str] | None:
    """Paths changed or untracked in `repo` (results excluded), or None where it is not a git tree."""
    repo = repo or REPO
    excludes = [f":(exclude){p}" for p in NOT_CODE]
    out = _git("status", "--porcelain", "--untracked-files=normal", "--", ".", *excludes, repo=repo)
    if out is None:
        return None
    return [line[3:] for line in out.splitlines() if line.strip()]


def machine() -> dict[str, Any]:
    """The CPU, its core count, the platform and how busy the machine was (other work shows in timings)."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return {"cpu": names[0] if names else platform.processor(), "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()]}


def provenance(size: str, *, commit: str | None = None, allow_dirty: bool = False,
               repo: Path | None = None) -> dict[str, Any]:
    """The `provenance` object of every result file; refuses `--size full` on a dirty tree
    unless `allow_dirty`, and full size without a known commit."""
    from nmm_core import __version__

    repo = repo or REPO
    head = _git("rev-parse", "HEAD", repo=repo) if (repo / ".git").exists() else None
    out: dict[str, Any] = {"nmm_version": __version__,
                           "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}
    if head is not None:
        dirty = dirty_paths(repo) or []
        out.update(commit=head.strip(), commit_source="git", dirty=bool(dirty))
        if dirty:
            out["dirty_paths"] = dirty[:20]
        if dirty and size == "full":
            if not allow_dirty:
                raise ConfigError(f"--size full on a dirty tree ({len(dirty)} changed: {', '.join(dirty[:3])}"
                                  f"{' ...' if len(dirty) > 3 else ''}): commit first, or pass --allow-dirty "
                                  "(the result file then says so)")
            out["allowed_dirty"] = "--allow-dirty"
        return out
    given = commit or os.environ.get(COMMIT_ENV)
    if not given and size == "full":
        raise ConfigError(f"no .git here: say which commit this tree is with --commit or {COMMIT_ENV} "
                          "(full-size results must record it)")
    source = "--commit" if commit else COMMIT_ENV if given else "unknown"
    out.update(commit=given or "unknown", commit_source=source, dirty="unknown")
    return out
