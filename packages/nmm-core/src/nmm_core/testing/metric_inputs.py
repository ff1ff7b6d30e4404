"""Bad metric inputs and the words each error must hold: every metric, core's or a domain's, is tested on them."""

from __future__ import annotations

import re
from collections.abc import Callable
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


def assert_checks_inputs(fn: Callable[..., Any]) -> None:
    """Check that `fn(predictions, references)` refuses every bad input with a ValueError that says
    what is wrong, and scores an empty prediction 0 (for a domain's own metric functions)."""
    for predictions, references, message in BAD_INPUTS:
        try:
            fn(predictions, references)
        except ValueError as e:
            if not re.search(message, str(e)):
                raise AssertionError(f"{fn.__name__}: {e} (expected it to say {message!r})") from e
        else:
            raise AssertionError(f"{fn.__name__} accepted {predictions!r}, {references!r}")
    result = fn([""], ["yes"])
    values = result.values() if isinstance(result, dict) else [result]
    if any(value not in (0.0, [0.0]) for value in values):
        raise AssertionError(f"{fn.__name__} scores an empty prediction {result!r}, not 0")
