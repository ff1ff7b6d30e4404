"""The pair file: two models' answers to the same examples, sides randomised, for judging.

Written by `compare` (and the memes competition), read by the arena. One JSON object per line:
`{"pair_id", "example_id", "image" (path relative to the file's folder, or null), "prompt",
"references": [...], "left": {"model", "answer"}, "right": {"model", "answer"}, "task"}`.
Model names are in the file; showing them is the arena's choice.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from nmm_core.data import save_example_image
from nmm_core.errors import DataError
from nmm_core.evaluate import EvalResult
from nmm_core.records import Example
from nmm_core.runs import atomic_write_text

_FIELDS = ("pair_id", "example_id", "image", "prompt", "references", "left", "right", "task")


@dataclass(frozen=True)
class Side:
    model: str
    answer: str


@dataclass(frozen=True)
class Pair:
    """One example with two anonymised answers."""

    pair_id: str
    example_id: str
    image: str | None
    prompt: str
    references: list[str]
    left: Side
    right: Side
    task: str


def make_pairs(examples: Sequence[Example], first: EvalResult, second: EvalResult, *,
               folder: Path, task: str, seed: int = 0) -> list[Pair]:
    """Pair two results on the same examples; images are saved under `folder/images/`."""
    if not (len(examples) == len(first.predictions) == len(second.predictions)):
        raise DataError("pairs need both results on the same examples (lengths differ)")
    rng = random.Random(seed)
    pairs = []
    for ex, a, b in zip(examples, first.predictions, second.predictions, strict=True):
        if not (ex.id == a["id"] == b["id"]):
            raise DataError(f"record {ex.id!r}: results are not in the same example order")
        sides = [Side(first.name, a["prediction"]), Side(second.name, b["prediction"])]
        rng.shuffle(sides)
        image = save_example_image(ex, folder, split="pairs")
        pairs.append(Pair(f"{task}:{ex.id}", ex.id, image, a["prompt"], list(ex.answers),
                          sides[0], sides[1], task))
    return pairs


def write_pairs(pairs: Sequence[Pair], path: Path) -> Path:
    """Write the pair file atomically."""
    text = "".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in pairs)
    atomic_write_text(path, text)
    return path


def read_pairs(path: str | Path) -> list[Pair]:
    """Read and check a pair file; a malformed line is an error naming its number and field."""
    path = Path(path)
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: not JSON ({exc})") from None
        missing = [f for f in _FIELDS if f not in row]
        if missing:
            raise DataError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        try:
            left, right = Side(**row["left"]), Side(**row["right"])
        except TypeError as exc:
            raise DataError(f"{path}:{number}: field 'left'/'right' must hold model and answer ({exc})") from None
        pairs.append(Pair(row["pair_id"], row["example_id"], row["image"], row["prompt"],
                          list(row["references"]), left, right, row["task"]))
    ids = [p.pair_id for p in pairs]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: duplicate pair_id values")
    return pairs
