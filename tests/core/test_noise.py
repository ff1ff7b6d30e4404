"""Third-party noise is silenced at its logger or warning; other warnings still reach the user."""

from __future__ import annotations

import subprocess
import sys

# Runs in a fresh process: pytest's own warning capture would hide what a user sees.
_SCRIPT = r'''
import logging, warnings
from nmm_core.cli import run_cli

def command():
    import transformers
    from rouge_score import rouge_scorer
    rouge_scorer.RougeScorer(["rougeL"])  # the real absl INFO line
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10))
    model.is_gradient_checkpointing  # the real FutureWarning, raised inside transformers
    # bitsandbytes only says it on CPUs with AVX512-BF16, so the same record is also sent by hand
    import bitsandbytes  # noqa: F401
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
        "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
        "`pip install kernels` and the kernels >= 0.11.1", "No module named 'kernels'")
    # unrelated messages, some from the very same loggers: all must still show
    warnings.warn("an unrelated future change", FutureWarning)
    logging.getLogger("absl").info("absl says something else")
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning("another bitsandbytes warning")

raise SystemExit(run_cli(command))
'''


def test_a_command_prints_no_third_party_noise_but_other_warnings_show() -> None:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for noise in ("pip install kernels", "is_gradient_checkpointing", "Using default tokenizer"):
        assert noise not in proc.stderr
    for kept in ("an unrelated future change", "absl says something else", "another bitsandbytes warning"):
        assert kept in proc.stderr
