"""`--train-batch-size auto`: the Trainer's `auto_find_batch_size`, halving on out-of-memory.

The Trainer retries its loop through accelerate's `find_executable_batch_size`, whose default
shrinks the batch by a tenth per out-of-memory; a halving reaches a batch that fits in a few
tries instead of a dozen (each try re-runs the steps before the failure). The batch it settles
on is written to the run folder and is where a resumed run starts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nmm_core.errors import DeviceError
from nmm_core.runs import atomic_write_json

log = logging.getLogger(__name__)

BATCH_FILE = "train_batch.json"  # in the run folder: {"batch_size": N, "start": M}


def recorded_batch(run_dir: Path) -> int | None:
    """The batch an earlier attempt of this run settled on (None: none recorded)."""
    path = Path(run_dir) / BATCH_FILE
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text())["batch_size"])
    except (ValueError, KeyError, TypeError):
        return None


def batch_recorder(trainer, run_dir: Path, start: int):
    """A callback writing the batch each attempt of the loop trains at (the last one is the one that fit)."""
    from transformers import TrainerCallback

    class RecordBatch(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                # set by the Trainer for this attempt before the callbacks run
                atomic_write_json(Path(run_dir) / BATCH_FILE,
                                  {"batch_size": trainer._train_batch_size, "start": start})

    return RecordBatch()


@contextmanager
def halving_on_oom() -> Iterator[None]:
    """Within: the Trainer's `auto_find_batch_size` halves the batch on out-of-memory."""
    import transformers.trainer as trainer_module
    from accelerate.utils import find_executable_batch_size

    original = trainer_module.find_executable_batch_size

    def halving(function, starting_batch_size: int = 128, auto_find_batch_size: bool = False):
        if not auto_find_batch_size:
            return original(function, starting_batch_size, auto_find_batch_size)
        size = starting_batch_size

        def halve() -> int:
            nonlocal size
            log.warning("out of memory at train batch %d: trying %d", size, size // 2)
            size //= 2
            return size

        return find_executable_batch_size(function=function, starting_batch_size=starting_batch_size,
                                          reduce_batch_size_fn=halve)

    trainer_module.find_executable_batch_size = halving
    try:
        yield
    except RuntimeError as exc:
        if "reached zero" in str(exc):
            raise DeviceError("out of memory training one example at a time: use a smaller model, "
                              "--model-quantization 4bit, --train-gradient-checkpointing or fewer image tokens "
                              "(--model-max-image-tokens)") from None
        raise
    finally:
        trainer_module.find_executable_batch_size = original
