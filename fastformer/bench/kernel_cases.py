"""Kernel cases of the `ops` and `ops_attention` families: a compiled kernel
and its NumPy twin on the same inputs, timed side by side by the harness's
interleaved timer, with the compiled kernel's effective memory bandwidth."""
from typing import Callable, NamedTuple, Optional

from fastformer.bench import harness
from fastformer.bench.harness import Column, column


class Case(NamedTuple):
    name: str
    direction: str  # forward, backward, fwd+bwd, update, ...
    shape: tuple
    compiled: Callable
    twin: Callable
    nbytes: int  # what the kernel must read and write, at the least
    repeat: Optional[int] = None  # timed calls per side instead of --repeat (the slow cases)


def add_arguments(p, repeat=15):
    harness.add_arguments(p, repeat=repeat, warmup=2, pause=0.15, threads="one", what="calls per kernel",
                          repeat_aliases=("--reps",))
    p.add_argument("--block", type=int, default=3,
                   help="timed back-to-back calls per side before the other side runs (default 3)")
    p.add_argument("--warm", type=float, default=0.02,
                   help="untimed seconds of calls after the pause, before the timed block (default 0.02)")


def time_cases(cases, args):
    """One row per case: the median over all timed calls of each side. Each
    turn of a side is a pause, `--warm` seconds of untimed calls, then
    `--block` timed calls back to back (see harness.interleaved): without the
    pause the next side would share the cores with the other's spinning
    workers (on 2 cores that halved the compiled attention's measured speed),
    and the untimed calls keep the wake-up of sleeping workers and idle cores
    (milliseconds on a VM) out of the timings, as in a training loop where
    kernels run back to back."""
    block = max(1, args.block)
    rows = []
    for c in cases:
        n = c.repeat or args.repeat
        samples = harness.interleaved({"compiled": c.compiled, "numpy": c.twin}, max(1, n // block),
                                      args.warmup, args.pause, block=block, warm_s=args.warm)
        mc, mt = harness.median(samples["compiled"]), harness.median(samples["numpy"])
        rows.append(dict(kernel=c.name, direction=c.direction, shape=list(c.shape), reps=len(samples["compiled"]),
                         compiled_ms=mc * 1e3, numpy_ms=mt * 1e3, speedup=mt / mc, compiled_gbps=c.nbytes / mc / 1e9))
    return rows


COLUMNS = [
    column("kernel", "kernel", width=40, left=True), column("dir", "direction", width=9, left=True),
    Column("shape", 22, lambda r: str(tuple(r["shape"])), left=True), column("compiled ms", "compiled_ms", ".3f"),
    column("numpy ms", "numpy_ms", ".3f", 10), Column("speedup", 8, lambda r: f"{r['speedup']:.1f}x"),
    column("GB/s", "compiled_gbps", ".1f", 6),
]


def format_table(rows):
    return harness.format_table(COLUMNS, rows)
