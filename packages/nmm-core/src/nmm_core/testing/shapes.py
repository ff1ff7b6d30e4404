"""A synthetic visual-question-answering set: coloured shapes, questions read off the scene.

Deterministic by seed. Questions ask a shape's colour or a shape count, so the right answer
needs the image (a text-only prior gets at most the most common answer).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from nmm_core.records import Example

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
}
SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    x: int
    y: int
    size: int


def _draw(shapes: list[Shape], size: int, background: tuple[int, int, int]):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for s in shapes:
        box = (s.x, s.y, s.x + s.size, s.y + s.size)
        fill = COLOURS[s.colour]
        if s.kind == "circle":
            draw.ellipse(box, fill=fill)
        elif s.kind == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(s.x + s.size / 2, s.y), (s.x, s.y + s.size), box[2:]], fill=fill)
    return image


def _place(rng: random.Random, kinds: list[str], colours: list[str], size: int) -> list[Shape]:
    # Non-overlapping cells of a 2x2 grid, so every shape stays fully visible.
    cell = size // 2
    cells = rng.sample([(0, 0), (1, 0), (0, 1), (1, 1)], len(kinds))
    out = []
    for kind, colour, (cx, cy) in zip(kinds, colours, cells, strict=False):
        s = rng.randint(cell // 2, cell - 6)
        x = cx * cell + rng.randint(2, cell - s - 2)
        y = cy * cell + rng.randint(2, cell - s - 2)
        out.append(Shape(kind, colour, x, y, s))
    return out


def make_shapes_example(rng: random.Random, index: int, *, image_size: int = 112) -> Example:
    """One scene and one question about it."""
    background = tuple(rng.randint(225, 255) for _ in range(3))
    if rng.random() < 0.5:
        # colour question: the asked-about shape appears once, others are other kinds
        target = rng.choice(SHAPES)
        others = [k for k in SHAPES if k != target]
        kinds = [target] + rng.sample(others, rng.randint(0, 2))
        colours = [rng.choice(list(COLOURS)) for _ in kinds]
        prompt = f"What colour is the {target}?"
        answer = colours[0]
    else:
        target = rng.choice(SHAPES)
        count = rng.randint(1, 3)
        others = [k for k in SHAPES if k != target]
        kinds = [target] * count + [rng.choice(others) for _ in range(rng.randint(0, 4 - count))]
        colours = [rng.choice(list(COLOURS)) for _ in kinds]
        prompt = f"How many {target}s are there?"
        answer = str(count)
    shapes = _place(rng, kinds, colours, image_size)
    rng.shuffle(shapes)
    return Example(
        id=f"shapes-{index:05d}",
        image=_draw(shapes, image_size, background),
        prompt=prompt,
        answers=(answer,),
        meta={"kind": "colour" if prompt.startswith("What colour") else "count"},
    )


def make_shapes_dataset(n: int, *, seed: int = 0, image_size: int = 112) -> list[Example]:
    """`n` examples; the same seed always gives the same images and questions."""
    rng = random.Random(seed)
    return [make_shapes_example(rng, i, image_size=image_size) for i in range(n)]
