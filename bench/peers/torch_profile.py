"""Per-op time of PyTorch steps, under smelt's op names, for `smelt bench bert --profile --torch`.

torch.profiler records every aten op and autograd function of `runs` steps. An op is charged its
own CPU time including what it calls (`cpu_time_total`): a forward op when it is not inside
another counted op or inside the backward, a backward op as the autograd engine's
`evaluate_function: <Node>` event. Ops named in FORWARD and BACKWARD become smelt's op names;
the rest of the step (other aten ops such as the mask's expansion, views and reshapes, the
loss, and the Python and autograd overhead between ops) is left to the caller as the time
outside those ops. (smelt's own profile charges each forward op the time since the previous
op's output, so its views and glue land in the op after them.)

The attention is recognised as SDPA (`--attn sdpa`, what `smelt bench bert` runs, without
dropout): HF's eager attention, or SDPA's math path under dropout, runs as separate matmul,
softmax and dropout ops that land in the time outside ops or under other names.
"""
import time

# aten op -> smelt op (forward).
FORWARD = {
    "aten::linear": "linear",
    "aten::scaled_dot_product_attention": "attention",
    "aten::gelu": "gelu",
    "aten::add": "add",
    "aten::add_": "add",
    "aten::layer_norm": "layer_norm",
    "aten::embedding": "embedding",
    "aten::dropout": "dropout",
}
# Autograd node name prefix -> smelt op (backward).
BACKWARD = {
    "AddmmBackward": "linear",
    "MmBackward": "linear",
    "ScaledDotProduct": "attention",
    "GeluBackward": "gelu",
    "AddBackward": "add",
    "NativeLayerNormBackward": "layer_norm",
    "EmbeddingBackward": "embedding",
    "NativeDropoutBackward": "dropout",
}
EVALUATE = "autograd::engine::evaluate_function: "


def _smelt_op(name):
    """(op, direction) for a profiler event name, or None for an event not counted."""
    if name.startswith(EVALUATE):
        node = name[len(EVALUATE):]
        for prefix, op in BACKWARD.items():
            if node.startswith(prefix):
                return op, "backward"
        return None
    op = FORWARD.get(name)
    return (op, "forward") if op else None


def profile_steps(step, runs):
    """Runs `step` `runs` times under torch.profiler; returns (per-op list, step ms) where each
    entry is (op, direction, calls per step, ms per step) in first-seen order."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        began = time.perf_counter()
        for _ in range(runs):
            step()
        wall = time.perf_counter() - began
    totals = {}
    for event in prof.events():
        key = _smelt_op(event.name)
        if key is None or _inside_counted(event):
            continue
        calls, us = totals.get(key, (0, 0.0))
        totals[key] = (calls + 1, us + event.cpu_time_total)
    ops = [(op, d, calls / runs, us / 1e3 / runs) for (op, d), (calls, us) in totals.items()]
    return ops, wall * 1e3 / runs


def _inside_counted(event):
    """Whether an ancestor of `event` is counted already (its time includes this one's)."""
    parent = event.cpu_parent
    while parent is not None:
        if _smelt_op(parent.name) is not None or parent.name.startswith(EVALUATE):
            return True
        parent = parent.cpu_parent
    return False
