#!/usr/bin/env python3
"""Compile CUDA C sources to PTX with NVRTC from PyPI; no CUDA toolkit needed.

    pip install nvidia-cuda-nvrtc-cu12==12.9.86
    python3 kernels/nvrtc.py kernels/ptx-sim/tests/kernels/*.cu

Each `NAME.cu` becomes `NAME.ptx` (beside it, or in --out-dir) for `compute_80`, with
`--fmad=false` (only explicit `fmaf` calls are fused multiply-adds, on a GPU as in ptx-sim).
The PTX starts with a comment line `// source-fnv1a64: <hex>` holding the FNV-1a
64-bit hash of the source bytes followed by the bytes of every local header it
includes (`#include "name.cuh"`, found beside the source, in order of inclusion), so
a test can tell when a source or header changed and its PTX was not regenerated.
"""

import argparse
import ctypes
import glob
import os
import sys

NVRTC_VERSION = "12.9.86"
ARCH = "compute_80"


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def load_nvrtc():
    try:
        import nvidia.cuda_nvrtc as pkg
    except ImportError:
        sys.exit(f"nvrtc.py: install NVRTC first: pip install nvidia-cuda-nvrtc-cu12=={NVRTC_VERSION}")
    for root in pkg.__path__:
        for path in sorted(glob.glob(os.path.join(root, "lib", "libnvrtc.so.12"))):
            lib = ctypes.CDLL(path)
            major, minor = ctypes.c_int(), ctypes.c_int()
            lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
            if (major.value, minor.value) != (12, 9):
                sys.exit(f"nvrtc.py: {path} is NVRTC {major.value}.{minor.value}, want 12.9 ({NVRTC_VERSION})")
            return lib
    sys.exit("nvrtc.py: libnvrtc.so.12 not found in the nvidia-cuda-nvrtc-cu12 package")


def with_headers(src_path: str) -> bytes:
    """The source's bytes followed by those of each local header it includes, depth first."""
    data = open(src_path, "rb").read()
    out = data
    for line in data.decode().splitlines():
        line = line.strip()
        if line.startswith('#include "') and line.endswith('"'):
            header = os.path.join(os.path.dirname(src_path), line[len('#include "'):-1])
            out += with_headers(header)
    return out


def compile_one(lib, src_path: str) -> str:
    source = open(src_path, "rb").read()
    prog = ctypes.c_void_p()
    name = os.path.basename(src_path).encode()
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source, name, 0, None, None), src_path)
    include = os.path.dirname(os.path.abspath(src_path))
    # --fmad=false: every multiply and add not written as fmaf() is emitted with an explicit
    # rounding mode (mul.rn, add.rn), which ptxas and the driver's JIT may not fuse into an FMA.
    # Without it they may, and the GPU would round differently from ptx-sim, which executes
    # each instruction as written (in layer norm's `x - mean`, `mean` would go unrounded).
    opts = [f"--gpu-architecture={ARCH}".encode(), b"--std=c++17", b"-default-device", b"--fmad=false",
            f"--include-path={include}".encode()]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    status = lib.nvrtcCompileProgram(prog, len(opts), arr)
    log_size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(log_size))
    log = ctypes.create_string_buffer(log_size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if status != 0:
        sys.exit(f"nvrtc.py: {src_path} failed to compile:\n{log.value.decode(errors='replace')}")
    size = ctypes.c_size_t()
    check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), src_path)
    ptx = ctypes.create_string_buffer(size.value)
    check(lib, lib.nvrtcGetPTX(prog, ptx), src_path)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    header = f"// source-fnv1a64: {fnv1a64(with_headers(src_path)):016x}\n"
    return header + ptx.value.decode()


def check(lib, status, what):
    if status != 0:
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        sys.exit(f"nvrtc.py: {what}: {lib.nvrtcGetErrorString(status).decode()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", help="CUDA C files (.cu)")
    parser.add_argument("--out-dir", help="where the .ptx files go (default: beside each source)")
    args = parser.parse_args()
    lib = load_nvrtc()
    for src in args.sources:
        out_dir = args.out_dir or os.path.dirname(src)
        out = os.path.join(out_dir, os.path.splitext(os.path.basename(src))[0] + ".ptx")
        with open(out, "w") as f:
            f.write(compile_one(lib, src))
        print(f"{src} -> {out}")


if __name__ == "__main__":
    main()
