"""nmm-sides: what colour is the painted half of a picture? A narrow domain in one declaration on nmm-core."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from nmm_core import ConfigError, Domain, Example, SyntheticSet, domain_main, short_answer_task, write_jsonl_dataset

QUESTION = "What colour is the painted half of the picture?"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 60, 230), "yellow": (230, 220, 30)}
TASK = replace(short_answer_task("sides"), instruction="Answer " + ", ".join(COLOURS) + ".")


@dataclass
class SidesSettings:
    """The generated set (`--synthetic-*`): pictures with their left or right half painted."""

    seed: int | None = field(default=None, metadata={"help": "generator seed (default: the run seed)"})
    train_size: int = 320
    test_size: int = 60
    image_size: int = 56
    colours: int = field(default=4, metadata={"help": "how many of the colours the pictures use (2-4)"})

    def __post_init__(self) -> None:
        if not 2 <= self.colours <= len(COLOURS):
            raise ConfigError(f"--synthetic-colours must be 2 to {len(COLOURS)}, got {self.colours}")

    def sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "test": self.test_size}


def picture(rng: random.Random, colour: str, size: int) -> Image.Image:
    """A dark square with its left or right half (at random) painted in `colour`, shade jittered."""
    image = Image.new("RGB", (size, size), (rng.randint(0, 60),) * 3)
    left = rng.choice((0, size // 2))
    image.paste(tuple(min(255, c + rng.randint(-25, 25)) for c in COLOURS[colour]), (left, 0, left + size // 2, size))
    return image


def write(settings: SidesSettings, folder: Path, *, progress: bool = True) -> Path:
    """Every split as `<split>.jsonl` + PNGs; `synthetic.json` last (its presence means complete)."""
    rng = random.Random(settings.seed or 0)
    for split, n in settings.sizes().items():
        colours = [rng.choice(list(COLOURS)[: settings.colours]) for _ in range(n)]
        examples = [Example(f"{split}-{i}", picture(rng, colour, settings.image_size), QUESTION, (colour,))
                    for i, colour in enumerate(colours)]
        write_jsonl_dataset(examples, folder, split=split)
    (Path(folder) / "synthetic.json").write_text(json.dumps(settings.sizes()))
    return Path(folder)


SIDES = Domain(
    name="nmm-sides",
    description="What colour the painted half of a picture is: a toy narrow domain on nmm-core.",
    task=TASK,
    model="tiny-qwen2-vl",
    families=("qwen2_vl",),  # its --model takes Qwen2-VL presets, folders and hub ids only
    data={"prompt_column": "prompt", "answers_column": "answers"},  # write_jsonl_dataset's columns
    synthetic=SyntheticSet(SidesSettings, write=write),
    twin_recipes={"tiny-qwen2-vl": {"train.epochs": 2.0}},
)


def main(argv: list[str] | None = None) -> int:
    """`nmm-sides info | data synthesize|inspect | train | eval | compare | predict`."""
    return domain_main(SIDES, argv)


if __name__ == "__main__":
    sys.exit(main())
