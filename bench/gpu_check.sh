#!/usr/bin/env bash
# The GPU checks of issue 6 as one prepared command, for a machine that has a GPU but no Rust
# toolchain (the device machine some sessions are lent). Two steps:
#
#   bench/gpu_check.sh build       here: builds the `smelt` CLI and the gpu_cuda test binary with
#                                  the `cuda` feature into .gpu/ (ignored by git: carry it)
#   bench/gpu_check.sh run [DIR]   there, from the repository root: runs the gpu_cuda tests, then
#                                  both GPU benchmarks beside PyTorch, logging to DIR (default
#                                  $OUT, else .gpu/out): tests.log, attention.jsonl,
#                                  layernorm.jsonl, layernorm-bf16.jsonl
#
# `run` goes on after a failure so that one call gives every figure; its exit status is the
# first failure's.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

case "${1:-}" in
build)
    set -e
    mkdir -p .gpu
    cargo build --release -p smelt-bench --features cuda
    cp target/release/smelt .gpu/smelt
    test_bin=$(cargo test --release -p smelt-kernels --features cuda --test gpu_cuda --no-run 2>&1 |
        sed -n 's/.*(\(target\/release\/deps\/gpu_cuda-[^)]*\)).*/\1/p' | tail -n 1)
    [ -n "$test_bin" ] || { echo "gpu_check: cannot find the gpu_cuda test binary" >&2; exit 1; }
    cp "$test_bin" .gpu/gpu_cuda
    echo "built .gpu/smelt and .gpu/gpu_cuda: carry .gpu, then run bench/gpu_check.sh run"
    ;;
run)
    out=${2:-${OUT:-.gpu/out}}
    mkdir -p "$out"
    [ -x .gpu/smelt ] && [ -x .gpu/gpu_cuda ] || {
        echo "gpu_check: .gpu/smelt or .gpu/gpu_cuda is missing: run bench/gpu_check.sh build first" >&2
        exit 1
    }
    status=0
    step() {
        local log=$1
        shift
        echo "== $*" | tee -a "$out/steps.log"
        "$@" >"$out/$log" 2>&1
        local rc=$?
        if [ "$rc" -ne 0 ]; then
            [ "$status" -ne 0 ] || status=$rc
            echo "   failed ($rc): see $log" | tee -a "$out/steps.log"
        fi
    }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.csv" 2>&1
    step tests.log .gpu/gpu_cuda --test-threads 1
    step attention.jsonl .gpu/smelt bench attention --device cuda --torch --json
    step layernorm.jsonl .gpu/smelt bench layernorm --device cuda --torch --json
    step layernorm-bf16.jsonl .gpu/smelt bench layernorm --device cuda --torch --dtype bf16 --json
    exit $status
    ;;
*)
    echo "usage: bench/gpu_check.sh build | run [DIR]" >&2
    exit 2
    ;;
esac
