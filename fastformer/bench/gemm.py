"""GEMM benchmark: fastformer.ops.matmul / bmm against numpy.matmul, measured
side by side in one run (interleaved, after warm-up), as median GFLOP/s, their
ratio, and the fraction of the measured FMA peak of the instruction set in use
with the same thread count.

    python -m fastformer.bench gemm [--json PATH] [--threads N] [--repeat R]

One-thread comparison: OPENBLAS_NUM_THREADS=1 python -m fastformer.bench gemm --threads 1
"""
import json
import math
import platform
import time

import numpy as np

import fastformer
from fastformer import ops
from fastformer.bench.common import blas_info, measured_peak

# (set, name, batch, m, n, k, trans_a, trans_b); batch None = one 2-D product.
# Transformer shapes: d_model=512, d_ff=2048, B*S=4096; weights stored (out, in).
D, F, T = 512, 2048, 4096
SHAPES = [
    ("square", "256", None, 256, 256, 256, False, False),
    ("square", "512", None, 512, 512, 512, False, False),
    ("square", "1024", None, 1024, 1024, 1024, False, False),
    ("square", "2048", None, 2048, 2048, 2048, False, False),
    ("transformer", "fwd qkv x.Wqkv^T", None, T, 3 * D, D, False, True),
    ("transformer", "fwd ff1 x.W1^T", None, T, F, D, False, True),
    ("transformer", "fwd ff2 h.W2^T", None, T, D, F, False, True),
    ("transformer", "dX qkv dY.Wqkv", None, T, D, 3 * D, False, False),
    ("transformer", "dX ff1 dY.W1", None, T, D, F, False, False),
    ("transformer", "dX ff2 dY.W2", None, T, F, D, False, False),
    ("transformer", "dW qkv dY^T.X", None, 3 * D, D, T, True, False),
    ("transformer", "dW ff1 dY^T.X", None, F, D, T, True, False),
    ("transformer", "dW ff2 dY^T.H", None, D, F, T, True, False),
    ("per-head", "128 x (128x64).(64x128)", 128, 128, 128, 64, False, False),
    ("per-head", "128 x (128x128).(128x64)", 128, 128, 64, 128, False, False),
]


def add_arguments(p):
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for fastformer (default: all); numpy's BLAS keeps its own count, so "
                        "for a one-thread comparison also set OPENBLAS_NUM_THREADS=1")
    p.add_argument("--repeat", type=int, default=9, help="timed samples per shape and side (default 9)")
    p.add_argument("--pause", type=float, default=0.25,
                   help="seconds of idle before each sample, so the other library's spinning "
                        "worker threads have gone to sleep (default 0.25)")
    p.add_argument("--sets", default="square,transformer,per-head",
                   help="comma-separated shape sets (default: square,transformer,per-head)")


def _sample(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def _measure(ff_fn, np_fn, repeat, pause):
    """Interleaved medians (seconds per call) of two callables, each sample
    lasting at least ~20 ms so that timer and call overheads do not count.

    Each side's sample follows a `pause`: after a call, OpenBLAS's worker
    threads busy-wait for up to ~0.1 s (and OpenMP's briefly), and a sample
    taken while they spin shares the cores with them (measured here: 73-207
    GFLOP/s right after a numpy call against 377 after a 0.2 s pause)."""
    def settle():
        if pause > 0:
            time.sleep(pause)

    for _ in range(2):
        ff_fn()
    settle()
    for _ in range(2):
        np_fn()
    t_np = _sample(np_fn, 1)
    settle()
    t_ff = _sample(ff_fn, 1)
    inner = max(1, int(0.02 / max(min(t_ff, t_np), 1e-7)))
    tf, tn = [], []
    for _ in range(repeat):
        settle()
        tf.append(_sample(ff_fn, inner))
        settle()
        tn.append(_sample(np_fn, inner))
    return float(np.median(tf)), float(np.median(tn))


def _operands(rng, batch, m, n, k, ta, tb):
    pre = () if batch is None else (batch,)
    a = rng.standard_normal(pre + ((k, m) if ta else (m, k)), dtype=np.float32)
    b = rng.standard_normal(pre + ((n, k) if tb else (k, n)), dtype=np.float32)
    return a, b


def _geomean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def run(args):
    if args.threads is not None:
        fastformer.set_num_threads(args.threads)
    threads = fastformer.get_num_threads()
    simd = fastformer.get_simd()
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    blocking = fastformer._C._gemm_blocking()
    peak = measured_peak(simd, threads)
    peak1 = measured_peak(simd, 1)
    header = {"fastformer": fastformer.build_info(), "numpy": blas_info(), "platform": platform.processor()
              or platform.machine(), "gemm_blocking": blocking, "fma_peak_gflops": peak,
              "fma_peak_1thread_gflops": peak1, "threads": threads, "simd": simd, "repeat": args.repeat,
              "pause_s": args.pause}
    print(f"fastformer {fastformer.__version__}: simd={simd} threads={threads} blocking={blocking}")
    print(f"numpy {np.__version__}: {header['numpy'].get('blas')}  "
          f"OPENBLAS_CORETYPE={header['numpy']['OPENBLAS_CORETYPE']}  "
          f"OPENBLAS_NUM_THREADS={header['numpy']['OPENBLAS_NUM_THREADS']}")
    if "threadpools" in header["numpy"]:
        print(f"threadpoolctl: {header['numpy']['threadpools']}")
    print(f"measured FMA peak ({simd}): {peak:.1f} GFLOP/s with {threads} thread(s), {peak1:.1f} with 1")
    print(f"median of {args.repeat} interleaved samples per side, each after {args.pause} s idle\n")
    print(f"{'set':<12} {'shape':<26} {'m x n x k':>17} {'op':>3} {'fastformer':>11} {'numpy':>9} "
          f"{'ratio':>6} {'%peak':>6}")
    rng = np.random.default_rng(0)
    rows = []
    for set_name, name, batch, m, n, k, ta, tb in SHAPES:
        if set_name not in sets:
            continue
        a, b = _operands(rng, batch, m, n, k, ta, tb)
        out_ff = np.empty(((batch,) if batch else ()) + (m, n), np.float32)
        out_np = np.empty_like(out_ff)
        op_a = np.swapaxes(a, -1, -2) if ta else a
        op_b = np.swapaxes(b, -1, -2) if tb else b
        f = ops.bmm if batch else ops.matmul
        tf, tn = _measure(lambda: f(a, b, trans_a=ta, trans_b=tb, out=out_ff),
                          lambda: np.matmul(op_a, op_b, out=out_np), args.repeat, args.pause)
        flops = 2.0 * (batch or 1) * m * n * k
        gf, gn = flops / tf * 1e-9, flops / tn * 1e-9
        row = {"set": set_name, "name": name, "batch": batch, "m": m, "n": n, "k": k,
               "op": ("T" if ta else "N") + ("T" if tb else "N"), "fastformer_gflops": gf, "numpy_gflops": gn,
               "ratio": gf / gn, "fraction_of_peak": gf / peak, "fastformer_s": tf, "numpy_s": tn}
        rows.append(row)
        dims = f"{m}x{n}x{k}"
        print(f"{set_name:<12} {name:<26} {dims:>17} {row['op']:>3} {gf:>11.1f} {gn:>9.1f} "
              f"{row['ratio']:>6.2f} {100 * row['fraction_of_peak']:>5.1f}%")
    summary = {}
    main_rows = [r for r in rows if r["set"] in ("square", "transformer")]
    if main_rows:
        summary["geomean_ratio_square_transformer"] = _geomean([r["ratio"] for r in main_rows])
        summary["min_ratio_square_transformer"] = min(r["ratio"] for r in main_rows)
    head_rows = [r for r in rows if r["set"] == "per-head"]
    if head_rows:
        summary["geomean_ratio_per_head"] = _geomean([r["ratio"] for r in head_rows])
        summary["min_ratio_per_head"] = min(r["ratio"] for r in head_rows)
    print()
    for key, v in summary.items():
        print(f"{key}: {v:.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"header": header, "results": rows, "summary": summary}, fh, indent=2, default=str)
        print(f"wrote {args.json}")
    return 0
