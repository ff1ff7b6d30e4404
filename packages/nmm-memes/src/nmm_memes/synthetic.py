"""The embedded synthetic meme set: rendered template scenes with top/bottom text, MemeCap-shaped.

Each meme is a template (a coloured scene: sun on a blue sky, rain from a grey sky, ...) with the
topic as top text and the template's word as bottom text. The post title names the topic; the
meaning captions name the feeling the template stands for and the topic, so a model needs the
image (which feeling) and the title (which topic) to state the meaning. Deterministic by seed.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from nmm_core.errors import ConfigError


@dataclass(frozen=True)
class Template:
    """A scene: background colour, a shape drawn in it, the bottom text and the feeling it means."""

    name: str
    background: tuple[int, int, int]
    shape: str
    colour: tuple[int, int, int]
    bottom: str
    feeling: str


TEMPLATES = (
    Template("sunny", (120, 190, 255), "sun", (255, 220, 0), "NICE", "happy"),
    Template("storm", (90, 90, 100), "rain", (40, 60, 200), "WHY", "sad"),
    Template("fire", (230, 60, 20), "flames", (255, 170, 0), "RAGE", "angry"),
    Template("ghost", (10, 10, 10), "ghost", (245, 245, 245), "NOPE", "scared"),
)
TOPICS = ("mondays", "homework", "pizza", "exams", "coffee", "holidays")
_TITLES = ("me and {topic}", "when {topic} come around", "{topic} be like")


def _draw(template: Template, top: str, size: int, rng: random.Random) -> bytes:
    """PNG bytes of the scene with top and bottom text in PIL's default bitmap font."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (size, size), template.background)
    draw = ImageDraw.Draw(image)
    c, r = size // 2 + rng.randint(-size // 16, size // 16), size // 5
    if template.shape == "sun":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=template.colour)
    elif template.shape == "rain":
        for _ in range(12):
            x, y = rng.randrange(size), rng.randrange(size // 4, size - size // 4)
            draw.line((x, y, x - 2, y + size // 10), fill=template.colour, width=2)
    elif template.shape == "flames":
        for k in range(3):
            x = size // 4 + k * size // 4
            draw.polygon([(x - r // 2, c + r), (x + r // 2, c + r), (x, c - r)], fill=template.colour)
    else:
        draw.ellipse((c - r, c - r, c + r, c + r), fill=template.colour)
        draw.rectangle((c - r, c, c + r, c + r + r // 2), fill=template.colour)
    font = ImageFont.load_default()  # the bitmap font bundled with Pillow: no font download
    for text, y in ((top.upper(), 2), (template.bottom, size - 14)):
        width = draw.textlength(text, font=font)
        draw.text(((size - width) / 2, y), text, fill=(255, 255, 255), font=font,
                  stroke_width=1, stroke_fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def meanings(feeling: str, topic: str) -> list[str]:
    """The meme captions (all references); the first is the training target."""
    return [f"meme poster is {feeling} about {topic}",
            f"the poster feels {feeling} when it comes to {topic}",
            f"{topic} make the meme poster {feeling}"]


def make_memes(n: int, *, seed: int, split: str, image_size: int = 96) -> list[tuple[dict, bytes]]:
    """`n` MemeCap-shaped records with their PNG bytes; ids differ between splits."""
    if n < 0 or image_size < 32:
        raise ConfigError(f"synthetic memes: need n >= 0 and image_size >= 32 (got {n}, {image_size})")
    rng = random.Random(f"{seed}:{split}")
    out = []
    for i in range(n):
        template = TEMPLATES[rng.randrange(len(TEMPLATES))]
        topic = TOPICS[rng.randrange(len(TOPICS))]
        title = rng.choice(_TITLES).format(topic=topic)
        post_id = f"syn{split[:2]}{seed}x{i:05d}"
        record = {
            "category": "memes",
            "img_captions": [f"A {template.name} scene with the words {topic.upper()} and {template.bottom}."],
            "meme_captions": meanings(template.feeling, topic),
            "title": title,
            "url": "",
            "img_fname": f"memes_{post_id}.png",
            "metaphors": [{"metaphor": f"the {template.name} scene", "meaning": f"feeling {template.feeling}"}],
            "post_id": post_id,
        }
        out.append((record, _draw(template, topic, image_size, rng)))
    return out
