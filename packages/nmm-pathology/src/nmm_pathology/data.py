"""PathVQA records (hub id or a local copy of the same shape) and a synthetic PathVQA-like set.

PathVQA on the hub (`flaviagiammarino/path-vqa`) has columns `image`, `question`, `answer` and
splits train/validation/test; a local folder with `<split>.jsonl|csv|parquet` in that shape (or
a `save_to_disk` folder) loads through the same `nmm_core.data.load_examples`. A question is
*closed* when its answer is yes/no (DATASETS.md §1: by the answer, not by question words).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from nmm_core.data import ColumnMap, load_examples, save_example_image
from nmm_core.records import Example, ValidationReport, validate
from nmm_core.runs import atomic_write_text
from nmm_core.seeds import part_seed
from nmm_core.sources import ColumnSource
from nmm_pathology.metrics import is_yes_no

HUB_ID = "flaviagiammarino/path-vqa"
# Not pinned: DATASETS.md names card revision 12d11bc (a short hash) and the full commit of a
# complete parquet upload could not be confirmed, so the user pins one with --data-revision.
HUB_REVISION: str | None = None
PATHVQA_COLUMNS = ColumnMap(id="id", image="image", prompt="question", answers="answer")


def is_closed(example: Example) -> bool:
    """True for a yes/no question: every accepted answer is yes or no."""
    return bool(example.answers) and all(isinstance(a, str) and is_yes_no(a) for a in example.answers)


def clean_question(text: str) -> str:
    """The original release's " ?" spacing and stray whitespace made like the hub copy's."""
    if not isinstance(text, str):
        return text  # validate() reports a non-text prompt by record and field
    text = " ".join(text.split())
    return text[:-2] + "?" if text.endswith(" ?") else text


def load_pathvqa(source: str | Path = HUB_ID, *, split: str = "test", revision: str | None = HUB_REVISION,
                 columns: ColumnMap = PATHVQA_COLUMNS, image_root: str | Path | None = None,
                 limit: int | None = None) -> list[Example]:
    """One PathVQA split (hub id or local copy), each question tidied and tagged `meta["kind"]` closed | open."""
    examples = load_examples(source, split=split, columns=columns, revision=revision,
                             image_root=image_root, limit=limit)
    return [replace(ex, prompt=clean_question(ex.prompt),
                    meta={**ex.meta, "kind": "closed" if is_closed(ex) else "open"}) for ex in examples]


@dataclass(frozen=True)
class PathVqaSource(ColumnSource):
    """PathVQA (hub id or local copy) or the generated set, its questions tidied and tagged closed/open."""

    def load(self, split: str) -> ValidationReport:
        """One split, validated (skip-and-count or stop)."""
        data = self.settings
        return validate(load_pathvqa(data.source, split=split, revision=data.revision, columns=data.columns(),
                                     image_root=data.image_root, limit=data.limit), policy=data.on_bad_record)


def split_by_kind(examples: Iterable[Example]) -> dict[str, list[Example]]:
    """{"closed": yes/no questions, "open": the rest}, order kept."""
    out: dict[str, list[Example]] = {"closed": [], "open": []}
    for ex in examples:
        out["closed" if is_closed(ex) else "open"].append(ex)
    return out


# ---------------------------------------------------------------- synthetic set

# Stain -> (background tissue colour, nucleus colour). Read off the image's dominant colour.
STAINS = {
    "hematoxylin and eosin": ((236, 170, 200), (95, 45, 140)),
    "immunohistochemistry": ((225, 215, 200), (130, 80, 35)),
    "masson trichrome": ((150, 190, 230), (150, 30, 40)),
}
# Lesion -> the colour of the patch that shows it.
LESIONS = {
    "necrosis": (250, 250, 240),
    "hemorrhage": (200, 0, 0),
    "calcification": (30, 20, 60),
}


@dataclass(frozen=True)
class SyntheticSettings:
    """Sizes and seed of the generated PathVQA-like set (the default data)."""

    train_size: int = field(default=400, metadata={"help": "generated training questions"})
    test_size: int = field(default=60, metadata={"help": "generated test questions"})
    image_size: int = field(default=64, metadata={"help": "generated image side, pixels"})
    seed: int | None = field(default=None, metadata={"help": "generator seed (default: the run seed)"})

    def sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "validation": max(1, self.test_size // 2), "test": self.test_size}


def _tissue(rng: random.Random, stain: str, lesion: str | None, size: int):
    from PIL import Image, ImageDraw

    background, nucleus = STAINS[stain]
    jitter = tuple(max(0, min(255, c + rng.randint(-12, 12))) for c in background)
    image = Image.new("RGB", (size, size), jitter)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(14, 24)):  # nuclei
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randint(1, 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=nucleus)
    if lesion is not None:
        r = rng.randint(size // 6, size // 4)
        x, y = rng.randint(r, size - r), rng.randint(r, size - r)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=LESIONS[lesion])
    return image


def make_synthetic_example(rng: random.Random, index: int, *, split: str, image_size: int = 64) -> Example:
    """One tissue-like image and one closed or open question answerable from it."""
    stain = rng.choice(list(STAINS))
    lesion = rng.choice([*LESIONS, None])
    kind = rng.choice(["closed-lesion", "closed-stain", "open-lesion", "open-stain"])
    if kind == "open-lesion" and lesion is None:
        kind = "closed-lesion"
    if kind == "closed-lesion":
        asked = lesion if lesion is not None and rng.random() < 0.5 else rng.choice(list(LESIONS))
        question, answer = f"is there {asked}?", "yes" if asked == lesion else "no"
    elif kind == "closed-stain":
        asked = stain if rng.random() < 0.5 else rng.choice(list(STAINS))
        question, answer = f"is this stained with {asked}?", "yes" if asked == stain else "no"
    elif kind == "open-lesion":
        question, answer = "what lesion is present?", lesion
    else:
        question, answer = "what stain is used?", stain
    return Example(id=f"synth-{split}-{index:05d}", image=_tissue(rng, stain, lesion, image_size),
                   prompt=question, answers=(answer,),
                   meta={"kind": "closed" if answer in ("yes", "no") else "open"})


def make_synthetic_pathvqa(n: int, *, seed: int = 0, split: str = "train", image_size: int = 64) -> list[Example]:
    """`n` seeded examples; the same seed and split always give the same images and questions."""
    rng = random.Random(f"{seed}-{split}")
    return [make_synthetic_example(rng, i, split=split, image_size=image_size) for i in range(n)]


def write_pathvqa_folder(splits: dict[str, list[Example]], folder: str | Path) -> Path:
    """A local PathVQA-shaped copy: `<split>.jsonl` rows {id, image, question, answer} + images/."""
    folder = Path(folder)
    for split, examples in splits.items():
        rows = []
        for ex in examples:
            image = save_example_image(ex, folder, split=split)
            rows.append(json.dumps({"id": ex.id, "image": image, "question": ex.prompt,
                                    "answer": ex.answers[0]}) + "\n")
        atomic_write_text(folder / f"{split}.jsonl", "".join(rows))
    return folder


def write_synthetic(settings: SyntheticSettings, folder: str | Path, *, progress: bool = True) -> Path:
    """Every split of the generated set into `folder`; `test.jsonl`, written last, marks it complete."""
    seed, size = part_seed(settings.seed), settings.image_size
    return write_pathvqa_folder({split: make_synthetic_pathvqa(n, seed=seed, split=split, image_size=size)
                                 for split, n in settings.sizes().items()}, folder)


def synthetic_folder(settings: SyntheticSettings = SyntheticSettings(), *, progress: bool = True) -> Path:  # noqa: B008
    """The generated set in the shared cache (train + validation + test), built once per settings."""
    from nmm_core.files import cached_folder

    s = replace(settings, seed=part_seed(settings.seed))
    key = f"synthetic-pathvqa-v1-{s.train_size}-{s.test_size}-{s.image_size}-seed{s.seed}"
    return cached_folder("data", key, lambda tmp: write_synthetic(s, tmp), marker="test.jsonl")
