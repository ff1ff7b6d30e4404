#!/usr/bin/env bash
# Full-size benchmarks on a lent GPU machine that has python3 with torch, transformers, peft and
# accelerate but no package registry. The rest (bitsandbytes, liger-kernel, trl, datasets, dill,
# multiprocess) travels as wheels in ./.whl (benchmarks/README.md gives the download line).
# Each family runs in its own process: Liger patches model classes for the rest of a process.
#
# A copied tree has no .git: NMM_COMMIT names the commit it is, and every result file records it.
#
#   NMM_COMMIT=<commit> benchmarks/gpu-run.sh OUT NAME [NAME ...]   e.g. ... "$OUT" train-step
#   NMM_BENCH_FAMILIES=tinyllava,idefics3 benchmarks/gpu-run.sh "$OUT" train-step
#   NMM_BENCH_SIZE=smoke benchmarks/gpu-run.sh /tmp/out generation    (plumbing check on CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: NMM_COMMIT=<commit> benchmarks/gpu-run.sh OUT NAME [NAME ...]}
if [ "${NMM_BENCH_SIZE:-full}" = full ] && [ ! -e .git ] && [ -z "${NMM_COMMIT:-}" ]; then
    echo "no .git here: set NMM_COMMIT to the commit this tree is (full-size results record it)" >&2
    exit 2
fi
shift
site=${NMM_SITE:-/tmp/nmm-site}
if compgen -G ".whl/*.whl" >/dev/null && [ ! -f "$site/.installed" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
    touch "$site/.installed"
fi
export PYTHONPATH="$site:packages/nmm-core/src:benchmarks/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"
families=${NMM_BENCH_FAMILIES:-qwen2_vl}
for family in ${families//,/ }; do
    echo "== $family: $*"
    NMM_BENCH_FAMILIES=$family python3 -m nmm_bench.cli --size "${NMM_BENCH_SIZE:-full}" --out "$out" "$@"
done
