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
    parser.add_argument("--commit", default=None,
                        help="the commit of this tree where it has no .git (else NMM_COMMIT; recorded "
                             "with dirty: unknown)")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="run --size full on a tree with uncommitted changes (the JSON says so)")
    ns = parser.parse_args(argv)
    unknown = [n for n in ns.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")

    def run_all() -> None:
        from pathlib import Path

        from nmm_bench.harness import RESULTS
        from nmm_bench.provenance import provenance

        out = Path(ns.out) if ns.out else RESULTS
        # checked before anything runs: a dirty full-size run is refused at once
        origin = provenance(ns.size, commit=ns.commit, allow_dirty=ns.allow_dirty)
        for name in ns.names or list(BENCHMARKS):
            results = importlib.import_module(BENCHMARKS[name]).run(ns.size)
            for result in results if isinstance(results, list) else [results]:
                path = result.write(origin, out)
                print(result.table())
                print(f"  -> {path}\n")

    return run_cli(run_all, "nmm-bench")


if __name__ == "__main__":
    sys.exit(main())
