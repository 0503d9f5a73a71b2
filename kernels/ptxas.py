#!/usr/bin/env python3
"""Assemble every kernels/ptx/*.ptx with ptxas (PyPI nvidia-cuda-nvcc-cu12, no GPU needed) for
sm_80 and sm_90, fail on any spill, and keep the table in kernels/ptx/README.md true.

Also fails on what would stop a launch on a GPU but not in ptx-sim: static shared memory over
48 KiB, and for a kernel with `.maxntid`, its registers (allocated 8 at a time) times that
many threads over the 64K registers a block may hold.

    pip install nvidia-cuda-nvcc-cu12==12.9.86
    python3 kernels/ptxas.py            # check: no spills, README table up to date
    python3 kernels/ptxas.py --write    # rewrite the table in kernels/ptx/README.md
"""

import argparse
import glob
import os
import re
import subprocess
import sys

ARCHS = ["sm_80", "sm_90"]
STATIC_SMEM_LIMIT = 48 * 1024
BLOCK_REGISTERS = 64 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "ptx", "README.md")
BEGIN, END = "<!-- ptxas table begin -->", "<!-- ptxas table end -->"


def ptxas_path():
    try:
        import nvidia.cuda_nvcc as pkg
    except ImportError:
        sys.exit("ptxas.py: install ptxas first: pip install nvidia-cuda-nvcc-cu12==12.9.86")
    for root in pkg.__path__:
        path = os.path.join(root, "bin", "ptxas")
        if os.path.exists(path):
            return path
    sys.exit("ptxas.py: no bin/ptxas in the nvidia-cuda-nvcc-cu12 package")


def assemble(ptxas, ptx, arch):
    """Per kernel: (registers, shared bytes, spill store bytes, spill load bytes, stack bytes)."""
    run = subprocess.run([ptxas, f"-arch={arch}", "-v", ptx, "-o", os.devnull], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"ptxas.py: {ptx} does not assemble for {arch}:\n{run.stderr}")
    kernels, current = {}, None
    for line in run.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            current = m.group(1)
            kernels[current] = {"regs": 0, "smem": 0, "spill_st": 0, "spill_ld": 0, "stack": 0}
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            k = kernels[current]
            k["stack"], k["spill_st"], k["spill_ld"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            kernels[current]["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            kernels[current]["smem"] = int(s.group(1)) if s else 0
    return kernels


def max_threads(ptx):
    """Per kernel with a `.maxntid x, y, z` directive: x * y * z."""
    limits, current = {}, None
    for line in open(ptx):
        m = re.search(r"\.entry\s+(\w+)", line)
        if m:
            current = m.group(1)
        m = re.search(r"\.maxntid\s+(\d+),\s*(\d+),\s*(\d+)", line)
        if m and current:
            x, y, z = map(int, m.groups())
            limits[current] = x * y * z
    return limits


def table(ptxas):
    """The README table, and the problems found (spills, launch limits)."""
    rows, problems = [], []
    for ptx in sorted(glob.glob(os.path.join(HERE, "ptx", "*.ptx"))):
        per_arch = {arch: assemble(ptxas, ptx, arch) for arch in ARCHS}
        threads = max_threads(ptx)
        for name in per_arch[ARCHS[0]]:
            cells = []
            for arch in ARCHS:
                k = per_arch[arch][name]
                where = f"{os.path.basename(ptx)}:{name} on {arch}"
                if k["spill_st"] or k["spill_ld"]:
                    problems.append(f"{where}: {k['spill_st']} bytes spill stores, {k['spill_ld']} loads")
                if k["smem"] > STATIC_SMEM_LIMIT:
                    problems.append(f"{where}: {k['smem']} bytes of static shared memory, over {STATIC_SMEM_LIMIT}")
                regs = -(-k["regs"] // 8) * 8
                if name in threads and regs * threads[name] > BLOCK_REGISTERS:
                    problems.append(f"{where}: {regs} registers x {threads[name]} threads, over {BLOCK_REGISTERS}")
                cells += [str(k["regs"]), str(k["smem"]), str(k["stack"])]
            rows.append(f"| `{os.path.basename(ptx)}` | `{name}` | " + " | ".join(cells) + " |")
    head = "| file | kernel | " + " | ".join(f"{a} regs | {a} static smem | {a} stack" for a in ARCHS) + " |"
    sep = "|---|---|" + "---:|" * (3 * len(ARCHS))
    return "\n".join([head, sep] + rows), problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the table in kernels/ptx/README.md")
    args = parser.parse_args()
    text, problems = table(ptxas_path())
    print(text)
    if problems:
        sys.exit("ptxas.py: kernels that would not run as built:\n" + "\n".join(problems))
    readme = open(README).read()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    if args.write:
        open(README, "w").write(readme[:start] + "\n" + text + "\n" + readme[end:])
        print(f"wrote {README}")
    elif readme[start:end].strip() != text.strip():
        sys.exit("ptxas.py: the table in kernels/ptx/README.md is stale: run python3 kernels/ptxas.py --write")
    print("ptxas.py: every kernel assembles for " + ", ".join(ARCHS) + " with no spills, static shared"
          " memory within 48 KiB and, at its .maxntid, registers within a block's 64K")


if __name__ == "__main__":
    main()
