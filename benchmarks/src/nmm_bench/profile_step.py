"""Where the time of one full-size Qwen2-VL-2B step goes: torch profiler, plain loop vs nmm's fast path.

The profiler's tables (top operators by device time, or CPU time without CUDA) of both paths
are kept in the benchmark's JSON (`checks`), beside the step times.
"""

from __future__ import annotations

import time

from nmm_bench import fullsize as fs
from nmm_bench import train_full as tf
from nmm_bench.harness import Result, Row

FAMILY, STEPS = "qwen2_vl", 3


def _profile(step, steps: int, cuda: bool) -> tuple[str, float]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = (time.perf_counter() - t0) / steps
    sort = "cuda_time_total" if cuda else "cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=40), seconds


def run(size: str) -> Result:
    """Profile both paths after warm-up; the tables are files, the JSON keeps the step times."""
    import torch

    from nmm_core.answer_loss import answer_only_loss
    from nmm_core.feature_cache import VisionFeatureCache
    from nmm_core.kernels import apply_liger, liger_available
    from nmm_core.lora import needs_autocast

    scale = "full" if size == "full" else "dry"
    if scale == "full":
        from nmm_bench.common_inputs import require_size

        require_size(size)
    cuda, device = scale == "full", "cuda" if scale == "full" else "cpu"
    batch = 16 if cuda else 2
    config = tf._config(FAMILY, scale)
    items = fs.make_items(FAMILY, config, scale, batch)
    host = fs.collate(items)
    ids = [it.id for it in items]
    rows, files = [], {}

    plain = tf._peft_default(FAMILY, scale)
    optim = torch.optim.AdamW([p for p in plain.parameters() if p.requires_grad], lr=2e-4)

    def plain_step():
        plain(**fs.to_device(host, device)).loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        fs.sync_if(cuda)

    for _ in range(2):
        plain_step()
    table, seconds = _profile(plain_step, STEPS, cuda)
    files["plain"], rows = table, [Row("plain loop (peft defaults)", batch / seconds, "examples/s", [seconds])]
    fs.reset_memory()

    ours = tf._ours(FAMILY, scale)
    if liger_available():
        apply_liger(ours)
    cache = VisionFeatureCache(ours)
    cache.keys = ids
    optim = torch.optim.AdamW([p for p in ours.parameters() if p.requires_grad], lr=2e-4)
    ours.train()

    autocast = cuda and needs_autocast(ours)  # as the trainer decides

    def fast_step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            loss, _ = answer_only_loss(ours, fs.to_device(host, device))
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        fs.sync_if(cuda)

    for _ in range(2):
        fast_step()  # the first fills the feature cache: steady state is profiled
    table, seconds = _profile(fast_step, STEPS, cuda)
    files["nmm"] = table
    rows.append(Row("nmm fast path (steady state)", batch / seconds, "examples/s", [seconds]))
    cache.close()
    return Result(name="profile", size=size, reference="plain loop (peft defaults)",
                  settings={"model": fs.MODEL_NAMES[FAMILY], "batch": batch, "profiled_steps": STEPS},
                  rows=rows, checks={f"profile of the {name} step": "\n" + text for name, text in files.items()})
