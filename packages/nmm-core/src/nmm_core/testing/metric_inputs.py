"""Bad metric inputs and the words each error must hold: every metric, core's or a domain's, is tested on them."""

from __future__ import annotations

from typing import Any

# (predictions, references, part of the ValueError's message)
BAD_INPUTS: list[tuple[Any, Any, str]] = [
    ([], [], "empty"),
    (["yes", "no"], ["yes"], "2 predictions but 1 references"),
    (["yes", "no"], ["yes", []], "reference 1 is an empty list"),
    (["yes", None], ["yes", "no"], "prediction 1 is NoneType"),
    (["yes", "no"], ["yes", ["no", 3]], "reference 1 answer 1 is int"),
    (["yes"], [5], "reference 0 is int"),
    ("yes", ["yes"], "predictions must be a list"),
]
