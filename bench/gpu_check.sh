#!/usr/bin/env bash
# The GPU checks of issue 6 as one prepared command, for a machine that has a GPU but no Rust
# toolchain (the device machine some sessions are lent). Two steps:
#
#   bench/gpu_check.sh build       here: builds the `smelt` CLI and the gpu_cuda test binary with
#                                  the `cuda` feature into .gpu/ (ignored by git: carry it)
#   bench/gpu_check.sh run [DIR]   there, from the repository root: runs the gpu_cuda tests, then
#                                  both GPU benchmarks beside PyTorch, logging to DIR (default
#                                  $OUT, else .gpu/out): tests.log (and, when the tests
#                                  fail, tests-sync.log: again with SMELT_CUDA_SYNC=1, so
#                                  a kernel fault names its kernel), attention.jsonl,
#                                  attention-bf16.jsonl, attention-d128.jsonl,
#                                  attention-d128-bf16.jsonl, layernorm.jsonl,
#                                  layernorm-bf16.jsonl, with steps.log (each step and its
#                                  status) and gpu.csv (nvidia-smi's name, driver, memory)
#
# `run` goes on after a failure so that one call gives every figure; its exit status is the
# first failure's.
set -uo pipefail
# A relative DIR is the caller's, not the repository root's.
if [ "${1:-}" = run ] && [ -n "${2:-}" ]; then
    mkdir -p "$2" && set -- run "$(cd "$2" && pwd)" || exit 1
fi
cd "$(dirname "$0")/.." || exit 1

case "${1:-}" in
build)
    set -eo pipefail
    mkdir -p .gpu
    # The executables' paths from cargo's own messages, wherever the target directory is
    # (CARGO_TARGET_DIR included); diagnostics still go to the terminal.
    executable() {
        python3 -c '
import json, sys
found = ""
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        found = m["executable"]
print(found)' "$1"
    }
    smelt=$(cargo build --release -p smelt-bench --features cuda --message-format=json-render-diagnostics | executable smelt)
    test_bin=$(cargo test --release -p smelt-kernels --features cuda --test gpu_cuda --no-run \
        --message-format=json-render-diagnostics | executable gpu_cuda)
    [ -n "$smelt" ] && [ -n "$test_bin" ] || { echo "gpu_check: cargo named no smelt or gpu_cuda executable" >&2; exit 1; }
    # A build without the cuda feature has no CUDA driver entry points to look up.
    grep -aq cuModuleLoadData "$smelt" || { echo "gpu_check: $smelt is not a --features cuda build" >&2; exit 1; }
    cp "$smelt" .gpu/smelt
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
    if [ "$status" -ne 0 ]; then
        # Again with every launch waited on, so that a kernel fault names its kernel.
        SMELT_CUDA_SYNC=1 step tests-sync.log .gpu/gpu_cuda --test-threads 1
    fi
    step attention.jsonl .gpu/smelt bench attention --device cuda --torch --json
    step attention-bf16.jsonl .gpu/smelt bench attention --device cuda --torch --dtype bf16 --json
    step attention-d128.jsonl .gpu/smelt bench attention --device cuda --torch --seq 512 --head-dim 128 --heads 8 --json
    step attention-d128-bf16.jsonl .gpu/smelt bench attention --device cuda --torch --seq 512 --head-dim 128 --heads 8 --dtype bf16 --json
    step layernorm.jsonl .gpu/smelt bench layernorm --device cuda --torch --json
    step layernorm-bf16.jsonl .gpu/smelt bench layernorm --device cuda --torch --dtype bf16 --json
    exit $status
    ;;
*)
    echo "usage: bench/gpu_check.sh build | run [DIR]" >&2
    exit 2
    ;;
esac
