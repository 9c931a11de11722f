"""GEMM benchmark: fastformer.ops.matmul / bmm against numpy.matmul, measured
side by side in one run (interleaved, after warm-up), as median GFLOP/s, their
ratio, and the fraction of the measured FMA peak of the instruction set in use
with the same thread count.

    python -m fastformer.bench gemm [--json PATH] [--threads N] [--repeat R] [--precision bf16]

--precision bf16: fastformer's bf16 products (compute_dtype="bfloat16") against
torch.matmul (oneDNN or MKL, AMX where the CPU has it), since NumPy has no
bf16, like for like: both sides read bf16 operands (ops.to_bf16's uint16 on
ours, bf16 tensors on torch's) and write bf16 results, summing in fp32;
%peak is against the measured peak of the bf16 path.

`--threads N` sets fastformer's and numpy's BLAS thread count alike (through
threadpoolctl or OpenBLAS's own setter; a note says when numpy's could not be
set: then also start with OPENBLAS_NUM_THREADS=N).
"""
import math
import platform
import sys

import numpy as np

import fastformer
from fastformer import ops
from fastformer.bench import harness, machine
from fastformer.bench.harness import Column, column

HELP = "matmul/bmm against numpy.matmul, GFLOP/s and fraction of FMA peak"

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
    harness.add_arguments(p, repeat=9, warmup=2, pause=0.25, threads="one", what="samples per shape")
    p.add_argument("--sets", default="square,transformer,per-head",
                   help="comma-separated shape sets (default: square,transformer,per-head)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: fastformer's bf16 products against torch.matmul on bf16 tensors (default fp32: "
                        "against numpy.matmul)")


def _operands(rng, batch, m, n, k, ta, tb):
    pre = () if batch is None else (batch,)
    a = rng.standard_normal(pre + ((k, m) if ta else (m, k)), dtype=np.float32)
    b = rng.standard_normal(pre + ((n, k) if tb else (k, n)), dtype=np.float32)
    return a, b


def _geomean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def _dims(r):
    return f"{r['m']}x{r['n']}x{r['k']}"


def _columns(other):
    return [
        column("set", "set", width=12, left=True), column("shape", "name", width=26, left=True),
        Column("m x n x k", 17, _dims), column("op", "op", width=3),
        column("fastformer", "fastformer_gflops", ".1f", 11), column(other, f"{other}_gflops", ".1f", 9),
        column("ratio", "ratio", ".2f", 6), Column("%peak", 6, lambda r: f"{100 * r['fraction_of_peak']:.1f}%"),
    ]


def _sides(precision, torch, a, b, batch, ta, tb, out):
    """{name: call} of the two sides for one shape: fastformer's product into
    `out` and numpy.matmul (fp32), or both on bf16 values (bf16)."""
    f = ops.bmm if batch else ops.matmul
    if precision == "bf16":
        def bf16(x, trans):  # op(x) as a bf16 tensor (a transposed view, as numpy's side takes it)
            t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.bfloat16)
            return t.transpose(-1, -2) if trans else t

        ta16, tb16 = bf16(a, ta), bf16(b, tb)
        a16, b16, out16 = ops.to_bf16(a), ops.to_bf16(b), np.empty(out.shape, np.uint16)
        return {"fastformer": lambda: f(a16, b16, trans_a=ta, trans_b=tb, out=out16, compute_dtype="bfloat16"),
                "torch": lambda: torch.matmul(ta16, tb16)}
    ours = lambda: f(a, b, trans_a=ta, trans_b=tb, out=out)  # noqa: E731
    op_a = np.swapaxes(a, -1, -2) if ta else a
    op_b = np.swapaxes(b, -1, -2) if tb else b
    theirs = np.empty_like(out)
    return {"fastformer": ours, "numpy": lambda: np.matmul(op_a, op_b, out=theirs)}


def run(args):
    torch = None
    if args.precision == "bf16":
        torch = harness.import_torch()
        if torch is None:
            print("error: --precision bf16 compares with torch.matmul in bf16: pip install torch", file=sys.stderr)
            return 2
    other = "torch" if torch is not None else "numpy"
    columns = _columns(other)
    (threads,) = harness.thread_counts(args)
    used = machine.set_all_threads(threads, torch)
    threads = used["fastformer"]
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    bf16 = args.precision == "bf16"
    blocking = fastformer._C._gemm_blocking("bfloat16" if bf16 else "float32")
    header = harness.start(args, [threads], torch, peak_threads=sorted({threads, 1}), bf16=bf16,
                           gemm_blocking=blocking, platform=platform.processor() or platform.machine(),
                           precision=args.precision)
    peaks = header["bf16_peak_gflops" if bf16 else "fma_peak_gflops"]  # %peak: of the path measured
    peak = peaks[str(threads)]
    header["fma_peak_1thread_gflops"] = peaks["1"]
    if used["blas"] is None:
        print(f"note: could not set numpy's BLAS threads to {threads} (it keeps its start-up count)")
    print(f"gemm blocking {blocking}; median of {args.repeat} interleaved samples per side, each after "
          f"{args.pause} s idle and at least 20 ms long\n")
    if args.precision == "bf16":
        print(f"bf16 products, bf16 operands and results on both sides: fastformer path {ops.bf16_path()}, "
              "torch.matmul on bf16 tensors")
    print(harness.table_head(columns))
    rng = np.random.default_rng(0)
    rows = []
    for set_name, name, batch, m, n, k, ta, tb in SHAPES:
        if set_name not in sets:
            continue
        a, b = _operands(rng, batch, m, n, k, ta, tb)
        out_ff = np.empty(((batch,) if batch else ()) + (m, n), np.float32)
        samples = harness.interleaved(_sides(args.precision, torch, a, b, batch, ta, tb, out_ff),
                                      args.repeat, args.warmup, args.pause, min_sample_s=0.02)
        tf, tn = harness.median(samples["fastformer"]), harness.median(samples[other])
        flops = 2.0 * (batch or 1) * m * n * k
        gf, gn = flops / tf * 1e-9, flops / tn * 1e-9
        row = {"set": set_name, "name": name, "batch": batch, "m": m, "n": n, "k": k,
               "op": ("T" if ta else "N") + ("T" if tb else "N"), "threads": threads, "fastformer_gflops": gf,
               f"{other}_gflops": gn, "ratio": gf / gn, "fraction_of_peak": gf / peak, "fastformer_s": tf,
               f"{other}_s": tn}
        rows.append(row)
        print(harness.table_line(columns, row), flush=True)
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
    harness.finish(args, {"header": header, "results": rows, "summary": summary})
    return 0
