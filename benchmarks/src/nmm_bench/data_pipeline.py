"""Benchmark 6: raw records to model-ready batches; time and memory must grow linearly.

smoke: the tiny Qwen2-VL twin's processor and small shapes images, 100 and 400 records, in
process (peak Python memory by tracemalloc).

full: Qwen2-VL-2B-Instruct's real image-processing settings (the preprocessor config shipped
in core; a locally trained tokenizer with Qwen2-VL's special tokens and chat template stands in
for the real one, which changes text-token counts but not the image work) and chart-sized
504x672 images (432 image tokens, sequence 482), at 1k, 10k and 100k
records. Each size runs in a fresh process so that its peak RSS is its own: JSONL ->
`load_examples` -> `validate` (images decoded once each) over every record, then
`VlmCollator` batches through a `DataLoader` with the trainer's worker parallelism, for the
first `FULL_WINDOW` records: on 2 CPU cores the real image processing (8 MiB of float32
patches per chart) runs at tens of examples/s, so collating all 100k records would take hours.
Every collated record has its own image (`FULL_WINDOW` distinct charts), so each is decoded and
processed: no help from the collator's decoded-image cache. The largest size runs once more with
float32 pixels, and once on records that share 64 images (the cache serves: the earlier setting).

Beside the measured rate with the machine's workers, each row reports the workers' CPU time per
example and, from it, the rate `GPU_HOST_WORKERS` workers would reach with a free core each: a
projection, labelled as such, never a measurement. The comparison with the GPU step is a
projection too: this machine's CPU rate over the H100 step's rate, measured elsewhere at 2bd97d1.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from nmm_bench.common_inputs import CHART_H, CHART_W, chart_examples, qwen2_vl_processor
from nmm_bench.harness import Result, Row

BATCH = 16
FULL_SIZES = (1000, 10_000, 100_000)
SMOKE_SIZES = (100, 400)
FULL_WINDOW = 960  # records collated per size at full size (60 batches)
# What the pipeline has to feed: the nmm-defaults LoRA step for Qwen2-VL-2B at batch 16 on an
# H100 in steady state (vision-feature cache warm; 36.5 in a first epoch), measured at 2bd97d1
# (results/train-step-qwen2_vl-full-nvidia-h100-80gb-hbm3.json): a constant, not measured here
STEP_EXAMPLES_PER_S = 63.6
STEP_SOURCE = "results/train-step-qwen2_vl-full-nvidia-h100-80gb-hbm3.json, measured at 2bd97d1"
# the trainer's DataLoader workers with CUDA: min(8, cores // 2) (`nmm_core.train._workers`)
GPU_HOST_WORKERS = 8
TARGET_MULTIPLE = 3.0
REPEATED_POOL = 64  # the repeated-images row: records share this many images (the cache serves)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _write_records(folder: Path, pool: Path, n: int, images: int | None = None) -> None:
    """`n` raw JSONL records whose images are the pool's (its first `images`), in turn."""
    base = [json.loads(line) for line in (pool / "train.jsonl").read_text().splitlines()][:images]
    folder.mkdir(parents=True)
    with (folder / "train.jsonl").open("w") as f:
        for i in range(n):
            row = dict(base[i % len(base)], id=f"r{i}")
            row["image"] = str(pool / row["image"])
            f.write(json.dumps(row) + "\n")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(folder: str, n: int, processor: str, workers: int, trace_python: bool,
            window: int | None = None, image_cache_mib: float | None = None,
            pixels_on_device: bool = True) -> dict[str, Any]:
    """One size: records -> load -> validate (all n) -> batches (all, or the first `window`
    records); seconds, memory and the workers' CPU seconds."""
    import torch

    from nmm_core.chat import IMAGE_CACHE_MIB, VlmCollator
    from nmm_core.data import ColumnMap, load_examples
    from nmm_core.device_pixels import device_pixels_for
    from nmm_core.families import get_family
    from nmm_core.records import validate

    if processor == "tiny":
        from nmm_core.models import load_model

        loaded = load_model("tiny-qwen2-vl")
        processor_, family = loaded.processor, loaded.family
    else:
        processor_, family = qwen2_vl_processor(), get_family("qwen2_vl")
    cache_mib = IMAGE_CACHE_MIB if image_cache_mib is None else image_cache_mib
    pixels = device_pixels_for(processor_, family, "on" if pixels_on_device else "off")
    collate = VlmCollator(processor_, family, image_cache_mib=cache_mib, device_pixels=pixels)
    baseline = _rss_mib()
    if trace_python:
        tracemalloc.start()
    t0 = time.perf_counter()
    examples = load_examples(folder, split="train", columns=ColumnMap.NMM_JSONL)
    kept = validate(examples, check_images=True).kept
    t_load = time.perf_counter() - t0
    # fork, as the trainer's DataLoader gets by default on Linux (this process was spawned, and
    # spawn would otherwise be inherited)
    # only the window goes to the loader: workers prefetching past it would bill CPU time for
    # batches that are never counted
    loader = torch.utils.data.DataLoader(kept[:window] if window else kept, batch_size=BATCH,
                                         collate_fn=collate, num_workers=workers,
                                         prefetch_factor=4 if workers else None,
                                         multiprocessing_context="fork" if workers else None)
    cpu0 = _children_cpu_seconds()
    batches = tokens = collated = 0
    batch_iter = iter(loader)
    for batch in batch_iter:
        batches += 1
        collated += len(batch["input_ids"])
        tokens += int(batch["attention_mask"].sum())
        if window is not None and collated >= window:
            break
    seconds = time.perf_counter() - t0
    t_collate = seconds - t_load
    del batch_iter  # shuts the workers down, so their CPU time is counted
    worker_cpu = _children_cpu_seconds() - cpu0
    out = {"records": n, "kept": len(kept), "collated": collated, "batches": batches, "tokens": tokens,
           "seconds": seconds, "load_validate_seconds": t_load, "collate_seconds": t_collate,
           "collate_examples_per_s": collated / t_collate, "num_workers": workers,
           "image_cache_mib": cache_mib, "worker_cpu_seconds": round(worker_cpu, 2),
           "rss_baseline_mib": round(baseline, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "peak_worker_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}
    if trace_python:
        out["peak_python_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
        tracemalloc.stop()
    out["pixels"] = "uint8, normalised on the model's device" if pixels else "float32, normalised in the workers"
    out["batch_mib"] = round(sum(v.numel() * v.element_size() for v in batch.values()
                                 if isinstance(v, torch.Tensor)) / 2**20, 1)
    if pixels is not None:
        out.update(_normalise_on_device(pixels, kept[:BATCH], processor_, family))
    out["peak_growth_mib"] = round(out["peak_rss_mib"] - baseline, 1)
    if workers:
        out["examples_per_s_per_worker"] = round(out["collate_examples_per_s"] / workers, 1)
        out["examples_per_worker_cpu_second"] = round(collated / worker_cpu, 1)
        out[f"projected_examples_per_s_{GPU_HOST_WORKERS}_workers"] = round(
            GPU_HOST_WORKERS * collated / worker_cpu, 1)
    return out


def _normalise_on_device(pixels, examples, processor, family) -> dict[str, Any]:
    """Seconds to normalise one raw batch where the model runs (CPU, and CUDA when present), and
    whether the result equals the processor's own float32 pixels bit for bit."""
    import torch

    from nmm_core.chat import VlmCollator

    raw = VlmCollator(processor, family, device_pixels=pixels)(examples)["pixel_values"]
    reference = VlmCollator(processor, family)(examples)["pixel_values"]
    out: dict[str, Any] = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        on_device = raw.to(device)
        pixels.normalize(on_device)  # warm-up (CUDA context, kernels)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        normalised = pixels.normalize(on_device)
        if device == "cuda":
            torch.cuda.synchronize()
        out[f"normalise_batch_seconds_{device}"] = round(time.perf_counter() - t0, 5)
        out[f"normalised_on_{device}_equals_processor"] = bool(torch.equal(normalised.cpu(), reference))
    return out


def _in_fresh_process(*args: Any) -> dict[str, Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fork would inherit the parent's pages and its RSS high-water mark; the executor's
    # process is not a daemon, so it may start the DataLoader's workers
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, *args).result()


def run(size: str) -> Result:
    """Examples/s and memory of load -> validate -> collate at growing sizes."""
    import os

    from nmm_core.data import write_jsonl_dataset
    from nmm_core.testing.shapes import make_shapes_dataset

    full = size == "full"
    sizes = FULL_SIZES if full else SMOKE_SIZES
    cores = os.cpu_count() or 1
    # the trainer's rule with CUDA (half the cores, up to 8), and at least 2 where there are 2
    workers = min(GPU_HOST_WORKERS, max(2, cores // 2), cores) if full else 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool"
        # one image per collated record: the collated window never repeats an image
        distinct = FULL_WINDOW if full else max(sizes)
        pool_examples = chart_examples(distinct, seed=4) if full else make_shapes_dataset(distinct, seed=4)
        write_jsonl_dataset(pool_examples, pool, split="train")
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            _write_records(folder, pool, n)
            if full:
                results.append(_in_fresh_process(str(folder), n, "qwen2-vl-2b", workers, False, FULL_WINDOW))
            else:
                results.append(measure(str(folder), n, "tiny", workers, True))
        if full:
            floats = _in_fresh_process(str(folder), sizes[-1], "qwen2-vl-2b", workers, False, FULL_WINDOW, None,
                                       False)
            repeated = Path(tmp) / "repeated"
            _write_records(repeated, pool, sizes[-1], REPEATED_POOL)
            shared = _in_fresh_process(str(repeated), sizes[-1], "qwen2-vl-2b", workers, False, FULL_WINDOW)
    memory_key = "peak_growth_mib" if full else "peak_python_mib"
    rows = []
    for r in results:
        if full:
            # collation touches only its own batch, so its rate is measured on a window; the
            # end-to-end time of all n records is then a projection and labelled so
            r["projected_end_to_end_seconds"] = round(r["load_validate_seconds"] + r["records"]
                                                      / r["collate_examples_per_s"], 1)
            rows.append(Row(f"{r['records']} records", r["collate_examples_per_s"], "examples/s",
                            [r["load_validate_seconds"], r["collate_seconds"]], r))
        else:
            rows.append(Row(f"{r['records']} records", r["records"] / r["seconds"], "examples/s",
                            [r["seconds"]], r))
    if full:
        for label, r in (("float32 pixels (pixels_on_device off)", floats),
                         (f"{REPEATED_POOL} images repeated (the cache serves)", shared)):
            rows.append(Row(f"{r['records']} records, {label}", r["collate_examples_per_s"], "examples/s",
                            [r["load_validate_seconds"], r["collate_seconds"]], r))
    load_key = "load_validate_seconds" if full else "seconds"
    per_record_s = [r[load_key] / r["records"] for r in results]
    per_record_mib = [r[memory_key] / r["records"] for r in results]
    checks: dict[str, Any] = {
        f"{load_key} per record, smallest vs largest": [round(x, 7) for x in (per_record_s[0], per_record_s[-1])],
        "time grows linearly (per record, largest <= 1.5x smallest)": per_record_s[-1] <= 1.5 * per_record_s[0],
        f"{memory_key} per record, by size": [round(x, 5) for x in per_record_mib],
        "uint8 pixels normalised on the device equal the processor's float32 ones": all(
            v for r in results for k, v in r.items() if k.startswith("normalised_on_")),
    }
    if full:
        # at 1k a fixed cost (allocator arenas, the 64 decoded images) dominates the growth, so
        # proportionality is judged between the two largest sizes
        checks["memory grows linearly (per record, 100k <= 1.5x 10k)"] = per_record_mib[-1] <= 1.5 * per_record_mib[-2]
        largest = rows[len(sizes) - 1]
        checks["collation rate does not fall with size (100k >= 1k / 1.5)"] = largest.value >= rows[0].value / 1.5
        target = TARGET_MULTIPLE * STEP_EXAMPLES_PER_S
        projection = (f"PROJECTION ({workers} workers on this CPU, measured, over the H100 step's "
                      f"{STEP_EXAMPLES_PER_S:g} examples/s, not measured here)")
        checks[f"{projection}: examples/s at 100k / the step"] = round(largest.value / STEP_EXAMPLES_PER_S, 2)
        checks[f"{projection}: target >= {TARGET_MULTIPLE:g}x the step ({target:g} examples/s)"] = \
            largest.value >= target
        projected_key = f"projected_examples_per_s_{GPU_HOST_WORKERS}_workers"
        for row in (largest, *rows[len(sizes):]):
            checks[f"PROJECTED, {GPU_HOST_WORKERS} workers ({row.label}): examples/s / the step's "
                   f"{STEP_EXAMPLES_PER_S:g}"] = round(row.extra[projected_key] / STEP_EXAMPLES_PER_S, 2)
    settings: dict[str, Any] = {
        "batch": BATCH, "sizes": list(sizes),
        "images": "one distinct image per collated record" + (
            f"; the last row's records share {REPEATED_POOL}" if full else ""),
        "path": "JSONL -> load_examples -> validate (check_images) -> DataLoader(VlmCollator): "
                "image decode + chat template + tokenizer + image processor + answer-only labels",
        "device": "CPU (the data pipeline runs on the host); see `device` for the machine",
    }
    if full:
        settings.update({
            "processor": "Qwen2VLProcessor with Qwen2-VL-2B-Instruct's preprocessor_config.json (shipped in "
                         "nmm_core/families/configs), locally trained BPE tokenizer with the real special "
                         "tokens and chat template",
            "image_size": f"{CHART_W}x{CHART_H} px bar charts (432 image tokens; sequence ~482)",
            "num_workers": workers, "process": "each size in a fresh spawned process",
            "collated_window": f"load_examples and validate run on all n records; the DataLoader "
                               f"then collates the first {FULL_WINDOW} (its per-batch cost does not "
                               f"depend on n; all 100k would take hours on 2 cores)",
            "value": "examples/s out of the collator (worker start-up included); "
                     "raw_seconds = [load + validate of all n, collation of the window]",
            "memory": "peak RSS of that process minus its RSS before loading (workers reported apart)",
            "step_examples_per_s": STEP_EXAMPLES_PER_S, "step_examples_per_s_from": STEP_SOURCE,
            "step_examples_per_s_source": "the nmm-defaults LoRA step, Qwen2-VL-2B, batch 16, H100, steady "
                                          "state (train-step table; 36.5 in a first epoch)",
            "pixels": "uint8 pixels, rescaled and normalised on the model's device (pixels_on_device, the "
                      "default; normalise_batch_seconds_* times that step apart, on one batch); the row "
                      "'float32 pixels' normalises in the workers, as the processor does by default",
            "image_cache": "VlmCollator's decoded-image LRU (per worker, nmm_core.chat.IMAGE_CACHE_MIB): on "
                           "in every row; it serves only the last row, whose images repeat",
            "per_worker": "examples_per_s_per_worker = measured rate / workers (cores shared with other "
                          "jobs); examples_per_worker_cpu_second = examples / the workers' CPU seconds",
            f"projected_examples_per_s_{GPU_HOST_WORKERS}_workers":
                f"PROJECTION, not measured: {GPU_HOST_WORKERS} x examples_per_worker_cpu_second, i.e. the "
                f"trainer's {GPU_HOST_WORKERS} CUDA-host workers, each on a free core, the main process "
                "keeping up",
        })
    else:
        settings.update({"processor": "tiny-qwen2-vl twin (112 px)", "image_size": "shapes, 64 px",
                         "num_workers": 0, "memory": "tracemalloc peak (Python allocations)"})
    return Result(name="data-pipeline", size=size, reference=rows[0].label, settings=settings, rows=rows,
                  checks=checks)
