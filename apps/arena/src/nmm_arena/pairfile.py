"""Pair files checked line by line against a pydantic schema before anything is served.

What passes here is what a vote stores and a page renders: non-empty strings for ids, task and
models, text that encodes as UTF-8 (no lone surrogates), a list of strings as references, an image
path or null. A bad line becomes one `Problem` (`file:line: field: why`) and is left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

from nmm_core.pairs import Pair, Side

MAX_LINE = 4 * 1024 * 1024  # bytes; a pair with a long answer is far below this
MAX_ID = 512  # characters of pair_id, example_id, task and model names


def _encodable(text: str) -> str:
    # json.loads accepts "\ud800"; SQLite and the page encoder would fail on it at vote time.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate (not encodable as UTF-8)") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID),
                 AfterValidator(_encodable)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class SideLine(_Strict):
    """One model's answer."""

    model: Name
    answer: Text


class PairLine(_Strict):
    """One line of a pair file, as `nmm_core.pairs.write_pairs` writes it."""

    pair_id: Name
    example_id: Name
    image: Text | None
    prompt: Text
    references: list[Text]
    left: SideLine
    right: SideLine
    task: Name

    def to_pair(self) -> Pair:
        return Pair(self.pair_id, self.example_id, self.image, self.prompt, list(self.references),
                    Side(self.left.model, self.left.answer), Side(self.right.model, self.right.answer), self.task)


@dataclass(frozen=True)
class Problem:
    """A line left out, and why."""

    file: str
    line: int
    field: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.why}"


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or "(line)"
    return field, err["msg"]


def check_line(raw: bytes) -> PairLine | tuple[str, str]:
    """A validated line, or (field, why)."""
    if len(raw) > MAX_LINE:
        return "(line)", f"longer than {MAX_LINE} bytes"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "(line)", f"not UTF-8 (byte {exc.start})"
    try:
        row = json.loads(text)
    except RecursionError:
        return "(line)", "JSON nested too deeply"
    except ValueError as exc:
        return "(line)", f"not JSON ({exc})"
    if not isinstance(row, dict):
        return "(line)", f"expected a JSON object, got {type(row).__name__}"
    try:
        line = PairLine.model_validate(row)
    except ValidationError as exc:
        return _first_error(exc)
    except RecursionError:  # a deeply nested value in a field
        return "(line)", "JSON nested too deeply"
    if line.left.model == line.right.model:
        return "right.model", f"the same model as left ({line.left.model!r}): nothing to compare"
    return line


def read_pair_file(path: Path, name: str) -> tuple[list[Pair], list[Problem]]:
    """The good pairs of one file and a Problem per bad line; `name` is how lines are reported."""
    pairs: list[Pair] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            checked = check_line(raw.rstrip(b"\r\n"))
            if isinstance(checked, tuple):
                problems.append(Problem(name, number, *checked))
                continue
            if checked.pair_id in seen:
                problems.append(Problem(name, number, "pair_id",
                                        f"{checked.pair_id!r} already on line {seen[checked.pair_id]}"))
                continue
            seen[checked.pair_id] = number
            pairs.append(checked.to_pair())
    return pairs, problems
