"""`--train-batch-size auto`: halved on (simulated) out-of-memory, recorded, reused on resume."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from nmm_core.auto_batch import BATCH_FILE
from nmm_core.config import parse_config
from nmm_core.errors import ConfigError, DeviceError
from nmm_core.lora import LoraSettings, apply_lora
from nmm_core.models import load_model
from nmm_core.task import short_answer_task
from nmm_core.testing.shapes import make_shapes_dataset
from nmm_core.train import TrainSettings, train
from nmm_core.workflows import TrainConfig


def _card_fitting(monkeypatch, fits: int) -> list[int]:
    """Make every training step on more than `fits` examples fail as a full CUDA card does; the sizes tried."""
    real = transformers.Trainer.training_step
    sizes: list[int] = []

    def small_card(self, model, inputs, *args, **kwargs):
        sizes.append(len(inputs["input_ids"]))
        if sizes[-1] > fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", small_card)
    return sizes


def _train(tmp_path, settings: TrainSettings, *, resume: bool = False):
    loaded = load_model("tiny-qwen2-vl")
    model = apply_lora(loaded, LoraSettings(r=4, alpha=8))
    return train(model, loaded.processor, loaded.family, make_shapes_dataset(16, seed=1),
                 task=short_answer_task(), settings=settings, run_dir=tmp_path, use_cpu=True, resume=resume)


def test_auto_halves_the_batch_until_it_fits_and_records_it(tmp_path, monkeypatch, caplog):
    sizes = _card_fitting(monkeypatch, fits=4)
    settings = TrainSettings(batch_size="auto", batch_size_start=16, max_steps=2, save_steps=1, warmup=0)
    outcome = _train(tmp_path, settings)
    assert sizes == [16, 8, 4, 4]  # 16 and 8 fail; both steps at 4
    assert outcome.batch_size == 4 and outcome.global_step == 2
    assert json.loads((tmp_path / BATCH_FILE).read_text()) == {"batch_size": 4, "start": 16}
    assert "out of memory at train batch 16: trying 8" in caplog.text



@pytest.mark.slow  # three short trainings, about a minute on 2 cores
def test_a_resumed_run_starts_at_the_batch_it_found(tmp_path, monkeypatch):
    import shutil

    sizes = _card_fitting(monkeypatch, fits=4)
    settings = TrainSettings(batch_size="auto", batch_size_start=16, max_steps=3, save_steps=1, warmup=0)
    real = transformers.Trainer.training_step  # the small card

    def killed_at_step_two(self, model, inputs, *args, **kwargs):
        if len(sizes) == 3:  # 16 and 8 failed, step 1 at 4 ran and was saved
            raise KeyboardInterrupt
        return real(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", killed_at_step_two)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, settings)
    assert sizes == [16, 8, 4]  # killed on its way into step 2
    monkeypatch.setattr(transformers.Trainer, "training_step", real)
    sizes.clear()

    resumed = _train(tmp_path, settings, resume=True)  # from checkpoint-1, whose trainer state holds 4
    assert sizes == [4, 4] and resumed.batch_size == 4 and resumed.global_step == 3

    # killed before its first checkpoint, a run still starts where it fit: the batch file says 4
    shutil.rmtree(tmp_path / "checkpoints")
    sizes.clear()
    again = _train(tmp_path, settings, resume=True)
    assert sizes == [4, 4, 4] and again.batch_size == 4


def test_auto_gives_up_with_a_clear_error_at_batch_one(tmp_path, monkeypatch):
    _card_fitting(monkeypatch, fits=0)
    with pytest.raises(DeviceError, match="out of memory training one example at a time"):
        _train(tmp_path, TrainSettings(batch_size="auto", batch_size_start=2, max_steps=1, warmup=0))


def test_batch_size_flag_takes_a_number_or_auto():
    assert parse_config(TrainConfig, argv=["--train-batch-size", "auto"]).train.batch_size == "auto"
    assert parse_config(TrainConfig, argv=["--train-batch-size", "4"]).train.batch_size == 4
    with pytest.raises(ConfigError, match="--train-batch-size"):
        parse_config(TrainConfig, argv=["--train-batch-size", "big"])
    with pytest.raises(ConfigError, match="batch_size_start must be at least 1"):
        parse_config(TrainConfig, argv=["--train-batch-size", "auto", "--train-batch-size-start", "0"])
