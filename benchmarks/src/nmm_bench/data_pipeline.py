"""Benchmark 6: raw records to model-ready batches; time and memory must grow linearly."""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

from nmm_bench.common_inputs import require_size
from nmm_bench.harness import Result, Row


def run(size: str) -> Result:
    """Examples/s and peak Python memory of load -> validate -> collate at several sizes."""
    import json

    from nmm_core.chat import VlmCollator
    from nmm_core.data import ColumnMap, load_examples, write_jsonl_dataset
    from nmm_core.models import load_model
    from nmm_core.records import validate
    from nmm_core.testing.shapes import make_shapes_dataset

    require_size(size)
    sizes = (100, 400) if size == "smoke" else (1000, 10_000, 100_000)
    loaded = load_model("tiny-qwen2-vl")
    collate = VlmCollator(loaded.processor, loaded.family)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # 64 distinct images on disk, referenced by every record: real sets repeat images too
        pool = Path(tmp) / "pool"
        write_jsonl_dataset(make_shapes_dataset(64, seed=4), pool, split="train")
        base = [json.loads(line) for line in (pool / "train.jsonl").read_text().splitlines()]
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            lines = []
            for i in range(n):
                row = dict(base[i % len(base)], id=f"r{i}")
                row["image"] = str(pool / row["image"])
                lines.append(json.dumps(row))
            (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
            tracemalloc.start()
            t0 = time.perf_counter()
            examples = load_examples(folder, split="train", columns=ColumnMap.NMM_JSONL)
            kept = validate(examples, check_images=False).kept
            for i in range(0, len(kept), 16):
                collate(kept[i:i + 16])
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append(Row(f"{n} records", n / seconds, "examples/s", [seconds],
                            {"peak_python_mib": round(peak / 2**20, 1), "records": n}))
    per_record = [r.extra["peak_python_mib"] / r.extra["records"] for r in rows]
    return Result(
        name="data-pipeline", size=size, reference=rows[0].label,
        settings={"model": "tiny-qwen2-vl processor", "batch": 16, "sizes": list(sizes),
                  "path": "load_examples(jsonl) -> validate -> VlmCollator (image decode + processor)"},
        rows=rows,
        checks={"peak MiB per record, smallest vs largest": [round(x, 4) for x in (per_record[0], per_record[-1])]},
    )
