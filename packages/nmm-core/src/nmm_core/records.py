"""Shared records: `Example`, its lazy image, and validation that reports what it skips."""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from nmm_core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import PIL.Image

ImageSource: TypeAlias = "str | Path | bytes | PIL.Image.Image | None"

_MAX_LISTED = 5


@dataclass(frozen=True, slots=True)
class Example:
    """One record: an image (lazy path/bytes, or None), a prompt and its accepted answers."""

    id: str
    image: ImageSource
    prompt: str
    answers: tuple[str, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A bare string would otherwise become a tuple of characters.
        answers = self.answers
        if answers is None:
            object.__setattr__(self, "answers", ())
        elif isinstance(answers, str):
            object.__setattr__(self, "answers", (answers,))
        elif not isinstance(answers, tuple):
            object.__setattr__(self, "answers", tuple(answers))

    @property
    def answer(self) -> str:
        """The training target: the first accepted answer."""
        if not self.answers:
            raise DataError(f"record {self.id!r} field 'answers': no answer (unlabelled record)")
        return self.answers[0]


def load_image(example: Example, *, mode: str | None = "RGB") -> PIL.Image.Image:
    """Open the example's image and convert it to `mode` (None keeps the file's own mode)."""
    from PIL import Image

    source = example.image
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        image = _decode(example.id, f"<{len(source)} bytes>", lambda: bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        image = _decode(example.id, os.fspath(source), Path(source).read_bytes)
    elif source is None:
        raise DataError(f"record {example.id!r} field 'image': no image (text-only record)")
    else:
        raise DataError(
            f"record {example.id!r} field 'image': unsupported value of type "
            f"{type(source).__name__} (expected a path, bytes or a PIL image)"
        )
    return image if mode is None else _convert(image, mode)


def image_size(example: Example) -> tuple[int, int]:
    """(width, height) of the example's image from its header, without decoding the pixels."""
    import io

    from PIL import Image

    source = example.image
    if isinstance(source, Image.Image):
        return source.size
    if source is None:
        return (0, 0)
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            with Image.open(io.BytesIO(bytes(source))) as im:
                return im.size
        with Image.open(os.fspath(source)) as im:
            return im.size
    except (OSError, TypeError, ValueError) as exc:
        raise DataError(f"record {example.id!r} field 'image': cannot read its size ({exc})") from exc


def _decode(record_id: str, described: str, read: Callable[[], bytes]) -> PIL.Image.Image:
    """Read and fully decode an image, so truncated files fail here and not mid-training."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(read()))
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if isinstance(exc, Image.UnidentifiedImageError):  # its text names our in-memory buffer, not the file
            reason = "not an image format Pillow can read"
        raise DataError(
            f"record {record_id!r} field 'image': cannot read {described} ({reason})"
        ) from exc
    return image


def _convert(image: PIL.Image.Image, mode: str) -> PIL.Image.Image:
    """Convert to `mode`: alpha over white, 16/32-bit grey scaled (not clipped) to 8 bits."""
    from PIL import Image

    if image.mode == mode:
        return image
    if image.mode.startswith("I") and not mode.startswith("I"):
        import numpy as np

        # Pillow's own convert clips 16-bit values at 255, turning most scans white. 32-bit "I"
        # images whose values fit in 8 bits (some TIFFs) are already on the 8-bit scale.
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "I" or values.max(initial=0) > 255:
            values = values / 257.0
        image = Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8))
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if mode in ("RGB", "L") and image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels often carry black RGB; charts on a transparent canvas would go black.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert(mode)


@dataclass(frozen=True)
class Problem:
    """Why one record cannot be used: its id, the field at fault, and what is wrong."""

    id: str
    field: str
    why: str
    kind: str = ""  # short category for counting, e.g. "image unreadable"

    def __str__(self) -> str:
        return f"record {self.id!r} field {self.field!r}: {self.why}"


@dataclass(frozen=True)
class ImageLimits:
    """The image shapes a family's processor accepts (Qwen2-VL's refuses an aspect ratio over 200)."""

    max_aspect_ratio: float | None = None
    min_side: int = 1

    def why(self, size: tuple[int, int]) -> str | None:
        """What is wrong with an image of (width, height) `size` for this processor, or None."""
        width, height = size
        if min(width, height) < self.min_side:
            return f"image is {width}x{height}; this model needs each side at least {self.min_side} px"
        ratio = max(width, height) / min(width, height)
        if self.max_aspect_ratio is not None and ratio > self.max_aspect_ratio:
            return (f"image is {width}x{height}, aspect ratio {ratio:.0f}; this model's processor accepts "
                    f"at most {self.max_aspect_ratio:g}")
        return None


@dataclass
class ValidationReport:
    """The records kept and, for every record skipped, the problem that excluded it."""

    kept: list[Example]
    problems: list[Problem]
    total: int
    # a split cut from a file it shares with other splits (MemeCap's trainval): how many of that file's
    # good records went to each other split; they share this split's problems
    held_out: Mapping[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """How many records were left out (one problem per skipped record)."""
        return len(self.problems)

    def summary(self) -> str:
        """One line: kept N of M records; skipped K: counts by kind."""
        return summary_line(len(self.kept), self.total, self.problems, held_out=self.held_out)

    def write_problems(self, path: str | Path) -> Path:
        """Write the problems as JSONL (id, field, why, kind), atomically."""
        return write_problems(self.problems, path)


def validate(
    examples: Iterable[Example],
    *,
    policy: Literal["skip", "stop"] = "skip",
    check_images: bool = True,
    require_answers: bool = True,
) -> ValidationReport:
    """Check every record; "skip" keeps the good ones and reports the rest, "stop" raises."""
    if policy not in ("skip", "stop"):
        raise ConfigError(f"validation policy {policy!r} is unknown; use 'skip' or 'stop'")
    kept: list[Example] = []
    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    image_verdicts: dict[str, str | None] = {}  # datasets repeat images (PathVQA): decode each once
    total = 0
    for index, example in enumerate(examples):
        total += 1
        problem = _text_problem(example, index, first_seen, require_answers)
        if problem is None and check_images and example.image is not None:
            problem = _image_problem(example, image_verdicts)
        if problem is None:
            kept.append(example)
        else:
            problems.append(problem)
    if policy == "stop" and problems:
        raise _invalid(problems, total)
    return ValidationReport(kept=kept, problems=problems, total=total)


def _invalid(problems: list[Problem], total: int) -> DataError:
    """The error `policy="stop"` raises: how many records are bad, the first few named."""
    listed = "; ".join(str(p) for p in problems[:_MAX_LISTED])
    more = len(problems) - _MAX_LISTED
    tail = f"; and {more} more" if more > 0 else ""
    return DataError(f"{len(problems)} of {total} records are invalid: {listed}{tail}")


def within_limits(report: ValidationReport, limits: ImageLimits | None,
                  policy: Literal["skip", "stop"] = "skip") -> ValidationReport:
    """`report` with the kept records whose image the model's processor would refuse moved to its problems."""
    if limits is None or limits == ImageLimits():
        return report
    kept: list[Example] = []
    problems = list(report.problems)
    for example in report.kept:
        why = limits.why(image_size(example)) if example.image is not None else None
        if why is None:
            kept.append(example)
        else:
            problems.append(Problem(example.id, "image", why, "image shape refused by the model"))
    if policy == "stop" and len(problems) > len(report.problems):
        raise _invalid(problems[len(report.problems):], report.total)
    return ValidationReport(kept=kept, problems=problems, total=report.total)


def _text_problem(
    example: Example, index: int, first_seen: dict[str, int], require_answers: bool
) -> Problem | None:
    """The first problem with the id, prompt or answers, or None."""
    rid = example.id
    if not isinstance(rid, str) or not rid.strip():
        return Problem(f"#{index}", "id", f"id is empty (record at position {index})", "id empty")
    if rid in first_seen:
        why = f"duplicate id (first seen at position {first_seen[rid]}, again at {index})"
        return Problem(rid, "id", why, "id duplicate")
    first_seen[rid] = index
    prompt = example.prompt
    if not isinstance(prompt, str):
        why = f"prompt is {type(prompt).__name__}, not text"
        return Problem(rid, "prompt", why, "prompt not text")
    if not prompt.strip():
        return Problem(rid, "prompt", "prompt is empty", "prompt empty")
    if require_answers and not example.answers:
        return Problem(rid, "answers", "no answers", "answer missing")
    for n, answer in enumerate(example.answers):
        if not isinstance(answer, str):
            why = f"answer {n} is {type(answer).__name__}, not text"
            return Problem(rid, "answers", why, "answer not text")
        if not answer.strip():
            return Problem(rid, "answers", f"answer {n} is empty", "answer empty")
    return None


def _image_problem(example: Example, verdicts: dict[str, str | None]) -> Problem | None:
    """A Problem if the image cannot be fully decoded, else None."""
    key = os.fspath(example.image) if isinstance(example.image, (str, os.PathLike)) else None
    if key is not None and key in verdicts:
        why = verdicts[key]
    else:
        try:
            load_image(example, mode=None)
            why = None
        except DataError as exc:
            why = str(exc).removeprefix(f"record {example.id!r} field 'image': ")
        if key is not None:
            verdicts[key] = why
    return None if why is None else Problem(example.id, "image", why, "image unreadable")


def png_bytes(image: PIL.Image.Image) -> bytes:
    """`image` encoded as a PNG file's bytes (to write with an atomic writer)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def summary_line(kept: int, total: int, problems: Iterable[Problem], unit: str = "records",
                 held_out: Mapping[str, int] | None = None) -> str:
    """One line: kept N of M (`total`) `unit` (K went to each split `held_out` names); skipped K: counts by kind."""
    problems = list(problems)
    line = f"kept {kept} of {total} {unit}"
    if held_out:
        line += " (" + ", ".join(f"{n} went to {split}" for split, n in held_out.items()) + ")"
    if not problems:
        return line
    counts = Counter(p.kind or p.field for p in problems)
    return f"{line}; skipped {len(problems)}: " + ", ".join(f"{n} {kind}" for kind, n in counts.most_common())


def listed_lines(problems: Sequence[Problem], listed: int) -> list[str]:
    """The first `listed` problems, one line each, then how many more `--problems FILE` lists."""
    lines = [f"  skipped {p}" for p in problems[:max(listed, 0)]]
    if len(problems) > max(listed, 0):
        lines.append(f"  ... and {len(problems) - max(listed, 0)} more (--problems FILE lists all)")
    return lines


def write_problems(problems: Iterable[Problem] | Mapping[str, Iterable[Problem]], path: str | Path) -> Path:
    """Write the problems as JSONL (id, field, why, kind; by split: the split first), atomically."""
    from nmm_core.runs import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    by_split = problems if isinstance(problems, Mapping) else {None: problems}
    rows = ({**({"split": split} if split is not None else {}), "id": p.id, "field": p.field, "why": p.why,
             "kind": p.kind} for split, listed in by_split.items() for p in listed)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path
