"""nmm-sides: which half of a picture is lighter? A narrow domain in one declaration on nmm-core."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from nmm_core import Domain, Example, SyntheticSet, domain_main, short_answer_task, write_jsonl_dataset

QUESTION = "Which half of the picture is lighter?"
TASK = replace(short_answer_task("sides"), instruction="Answer left or right.")


@dataclass
class SidesSettings:
    """The generated set (`--synthetic-*`): pictures whose left or right half is lighter."""

    seed: int | None = field(default=None, metadata={"help": "generator seed (default: the run seed)"})
    train_size: int = 320
    test_size: int = 60
    image_size: int = 56

    def sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "test": self.test_size}


def picture(rng: random.Random, side: str, size: int) -> Image.Image:
    """A dark square with its `side` half painted in a light grey."""
    image = Image.new("RGB", (size, size), (rng.randint(0, 80),) * 3)
    left = 0 if side == "left" else size // 2
    image.paste((rng.randint(170, 255),) * 3, (left, 0, left + size // 2, size))
    return image


def write(settings: SidesSettings, folder: Path, *, progress: bool = True) -> Path:
    """Every split as `<split>.jsonl` + PNGs; `synthetic.json` last (its presence means complete)."""
    rng = random.Random(settings.seed or 0)
    for split, n in settings.sizes().items():
        sides = [rng.choice(("left", "right")) for _ in range(n)]
        examples = [Example(f"{split}-{i}", picture(rng, side, settings.image_size), QUESTION, (side,))
                    for i, side in enumerate(sides)]
        write_jsonl_dataset(examples, folder, split=split)
    (Path(folder) / "synthetic.json").write_text(json.dumps(settings.sizes()))
    return Path(folder)


SIDES = Domain(
    name="nmm-sides",
    description="Which half of a picture is lighter: a toy narrow domain on nmm-core.",
    task=TASK,
    model="tiny-qwen2-vl",
    data={"prompt_column": "prompt", "answers_column": "answers"},  # write_jsonl_dataset's columns
    synthetic=SyntheticSet(SidesSettings, write=write),
    twin_recipes={"tiny-qwen2-vl": {"train.epochs": 2.0}},
)


def main(argv: list[str] | None = None) -> int:
    """`nmm-sides info | data synthesize|inspect | train | eval | compare | predict`."""
    return domain_main(SIDES, argv)


if __name__ == "__main__":
    sys.exit(main())
