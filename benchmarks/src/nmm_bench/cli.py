"""`nmm-bench`: run benchmarks side by side with their peers; print ratios, write JSON."""

from __future__ import annotations

import argparse
import importlib
import sys

from nmm_core.cli import run_cli

BENCHMARKS = {
    "generation": "nmm_bench.generation",
    "merged-inference": "nmm_bench.merged",
    "train-step": "nmm_bench.train_step",
    "data-pipeline": "nmm_bench.data_pipeline",
    "qlora": "nmm_bench.qlora",
    "bridge-matching": "nmm_bench.bridge_matching",
    "profile": "nmm_bench.profile_step",
    "memory": "nmm_bench.memory",
    "arena": "nmm_bench.arena",
}


def main(argv: list[str] | None = None) -> int:
    """Parse `[--size smoke|full] [NAME ...]` and run the chosen benchmarks."""
    parser = argparse.ArgumentParser(prog="nmm-bench", description=__doc__, allow_abbrev=False)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--size", choices=("smoke", "full"), default="smoke",
                        help="smoke: tiny twins, minutes on 2 CPU cores; full: real architectures, CUDA")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    ns = parser.parse_args(argv)
    unknown = [n for n in ns.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")

    def run_all() -> None:
        from pathlib import Path

        from nmm_bench.harness import RESULTS

        out = Path(ns.out) if ns.out else RESULTS
        for name in ns.names or list(BENCHMARKS):
            results = importlib.import_module(BENCHMARKS[name]).run(ns.size)
            for result in results if isinstance(results, list) else [results]:
                path = result.write(out)
                print(result.table())
                print(f"  -> {path}\n")

    return run_cli(run_all)


if __name__ == "__main__":
    sys.exit(main())
