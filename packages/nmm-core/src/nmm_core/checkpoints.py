"""A train run's `checkpoints/checkpoint-N` folders: which is the last complete one, its step, the
best one a resumed run keeps, its saved loss sums, and the log rows a resumed run writes again."""

from __future__ import annotations

from pathlib import Path

from nmm_core.runs import atomic_write_text, jsonl_line, read_jsonl

LOSS_TALLY = "nmm_loss.json"  # in each checkpoint: the loss sums a resumed run continues from


def best_checkpoint(checkpoint: str | None, folder: Path) -> str | None:
    """The best checkpoint a resumed run's state names, found in this run's `folder` (None: none)."""
    import json

    path = Path(checkpoint) / "trainer_state.json" if checkpoint else None
    if path is None or not path.is_file():
        return None
    best = json.loads(path.read_text()).get("best_model_checkpoint")
    moved = folder / Path(best).name if best else None
    return str(moved) if moved is not None and moved.is_dir() else None


def checkpoint_step(checkpoint: str | Path) -> int:
    """The optimiser step of a `checkpoint-N` folder."""
    return int(Path(checkpoint).name.rsplit("-", 1)[1])


def keep_rows_until(path: Path, step: int) -> None:
    """Rewrite a JSONL log without its rows after `step` (atomically)."""
    if not path.is_file():
        return
    rows = read_jsonl(path)
    kept = [row for row in rows if row.get("step", 0) <= step]
    if len(kept) != len(rows):
        atomic_write_text(path, "".join(jsonl_line(row) for row in kept))


def read_tally(checkpoint: str | None) -> dict[str, float] | None:
    """The loss sums saved with `checkpoint` (None: none saved, or no checkpoint)."""
    import json

    path = Path(checkpoint) / LOSS_TALLY if checkpoint else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def last_checkpoint(folder: Path) -> str | None:
    """The newest `checkpoint-N` in `folder` that was written in full (its trainer state is the
    last file transformers writes), or None: a kill during a save leaves a partial one behind."""
    import re

    found = [(int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else ())
             if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / "trainer_state.json").is_file()]
    return str(max(found)[1]) if found else None
