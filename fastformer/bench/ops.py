"""Row-wise, loss, embedding, dropout and optimizer kernels against their
NumPy twins, side by side, at the shapes of a d_model=512, 8-head model with
B=16, S=256 (and a 50M-parameter optimizer step).

    python -m fastformer.bench ops [--json PATH] [--reps N] [--only NAME ...]

Each kernel and its twin run in alternating blocks (compiled, twin,
compiled, ...) so both see the same machine state; the median is taken over
all timed calls of a side. A block is an idle pause (`--pause`), untimed
calls for at least `--warm` seconds, then `--block` timed back-to-back calls:
after a call OpenBLAS's and OpenMP's idle workers busy-wait for a while, and
without the pause the next side would share the cores with them (on 2 cores
that halved the compiled attention's measured speed); the untimed calls keep
the wake-up of sleeping workers and idle cores (milliseconds on this VM) out
of the timings, as in a training loop where kernels run back to back. The table gives the medians,
the speedup, and the compiled kernel's effective memory bandwidth (the bytes
it must read and write, divided by its time).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref
from fastformer.bench.common import keep_freed_memory
from fastformer.reference import optim as ref_optim

B, S, D, H, V = 16, 256, 512, 8, 8000
N_PARAMS = 50_000_000


def _case(name, direction, shape, compiled, twin, nbytes, reset=None, reps=None):
    return dict(name=name, direction=direction, shape=shape, compiled=compiled, twin=twin, nbytes=nbytes,
                reset=reset, reps=reps)


def _cases():
    rng = np.random.default_rng(0)
    f32 = np.float32
    out = []

    # LayerNorm with the residual fused, over (B*S, D).
    x = rng.standard_normal((B * S, D)).astype(f32)
    r = rng.standard_normal((B * S, D)).astype(f32)
    w = rng.standard_normal(D).astype(f32)
    b = rng.standard_normal(D).astype(f32)
    dy = rng.standard_normal((B * S, D)).astype(f32)
    _, mean, rstd = ops.layer_norm_forward(x, w, b, 1e-5, r)
    n = x.size * 4
    out.append(_case("layer_norm (+residual)", "forward", x.shape,
                     lambda: ops.layer_norm_forward(x, w, b, 1e-5, r),
                     lambda: ref.layer_norm_forward(x, w, b, 1e-5, r), 3 * n))
    out.append(_case("layer_norm (+residual)", "backward", x.shape,
                     lambda: ops.layer_norm_backward(dy, x, w, mean, rstd, r),
                     lambda: ref.layer_norm_backward(dy, x, w, mean, rstd, r), 4 * n))

    # Masked softmax over attention scores (B, H, S, S), causal bool mask.
    s = rng.standard_normal((B, H, S, S)).astype(f32)
    causal = np.triu(np.ones((S, S), dtype=bool), 1)
    y = ops.softmax_forward(s, causal)
    dys = rng.standard_normal(s.shape).astype(f32)
    n = s.size * 4
    out.append(_case("softmax (causal mask)", "forward", s.shape,
                     lambda: ops.softmax_forward(s, causal), lambda: ref.softmax_forward(s, causal), 2 * n))
    out.append(_case("softmax", "backward", s.shape,
                     lambda: ops.softmax_backward(dys, y), lambda: ref.softmax_backward(dys, y), 3 * n))

    # Cross-entropy over (B*S, V) with label smoothing and some padding targets:
    # loss and dlogits come from one fused pass (forward and backward together).
    logits = (2 * rng.standard_normal((B * S, V))).astype(f32)
    targets = rng.integers(0, V, B * S)
    targets[::17] = -100
    n = logits.size * 4
    out.append(_case("cross_entropy (fwd+bwd fused)", "both", logits.shape,
                     lambda: ops.cross_entropy(logits, targets, -100, 0.1),
                     lambda: ref.cross_entropy(logits, targets, -100, 0.1), 2 * n))

    # Embedding (B, S) ids into a (V, D) table, with sinusoidal positions.
    ids = rng.integers(0, V, (B, S))
    table = rng.standard_normal((V, D)).astype(f32)
    pos = ref.sinusoidal_positions(S, D)
    dx = rng.standard_normal((B, S, D)).astype(f32)
    out.append(_case("embedding", "forward", (B, S, D),
                     lambda: ops.embedding_forward(ids, table, pos), lambda: ref.embedding_forward(ids, table, pos),
                     2 * dx.size * 4))
    out.append(_case("embedding", "backward", (V, D),
                     lambda: ops.embedding_backward(dx, ids, V), lambda: ref.embedding_backward(dx, ids, V),
                     dx.size * 4 + table.size * 4))

    # Dropout p=0.1 over (B*S, D).
    xd = rng.standard_normal((B * S, D)).astype(f32)
    n = xd.size * 4
    out.append(_case("dropout p=0.1", "forward", xd.shape,
                     lambda: ops.dropout_forward(xd, 0.1, 1234, 7, 0x01000001),
                     lambda: ref.dropout_forward(xd, 0.1, 1234, 7, 0x01000001), 2 * n))
    out.append(_case("dropout p=0.1", "backward", xd.shape,
                     lambda: ops.dropout_backward(xd, 0.1, 1234, 7, 0x01000001),
                     lambda: ref.dropout_backward(xd, 0.1, 1234, 7, 0x01000001), 2 * n))

    # Optimizer steps over one flat 50M-parameter buffer (state in place; the
    # values drift over the repetitions, the work does not).
    p = (0.02 * rng.standard_normal(N_PARAMS)).astype(f32)
    g = (0.01 * rng.standard_normal(N_PARAMS)).astype(f32)
    m = np.zeros(N_PARAMS, f32)
    v = np.zeros(N_PARAMS, f32)
    n = N_PARAMS * 4
    out.append(_case("adamw step", "update", (N_PARAMS,),
                     lambda: ops.adam_step(p, g, m, v, 10, 1e-3, 0.9, 0.999, 1e-8, 0.01, True),
                     lambda: ref_optim.adam_step(p, g, m, v, 10, 1e-3, 0.9, 0.999, 1e-8, 0.01, True), 7 * n, reps=5))
    buf = np.zeros(N_PARAMS, f32)
    out.append(_case("sgd step (momentum 0.9)", "update", (N_PARAMS,),
                     lambda: ops.sgd_step(p, g, buf, 10, 1e-2, 0.9),
                     lambda: ref_optim.sgd_step(p, g, buf, 10, 1e-2, 0.9), 5 * n, reps=5))
    out.append(_case("grad_norm", "reduce", (N_PARAMS,),
                     lambda: ops.grad_norm(g), lambda: ref_optim.grad_norm(g), n, reps=5))
    out.append(_case("clip_grad_norm", "update", (N_PARAMS,),
                     lambda: ops.clip_grad_norm(g, 1e9), lambda: ref_optim.clip_grad_norm(g, 1e9), n, reps=5))
    out += __import__("fastformer.bench.ops_attention", fromlist=["cases"]).cases()  # attention, linear, FFN
    return out


def _time_block(fn, block):
    """Seconds of each of `block` back-to-back calls."""
    times = []
    for _ in range(block):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _warm(fn, seconds):
    """Call fn until `seconds` have passed (at least once)."""
    end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < end:
        fn()


def run_cases(reps=15, warmup=2, only=None, block=3, pause=0.15, warm=0.02):
    rows = []
    for c in _cases():
        if only and not any(o in c["name"] for o in only):
            continue
        n = c["reps"] or reps
        for _ in range(warmup):
            c["compiled"]()
            c["twin"]()
        tc, tt = [], []
        for _ in range(max(1, n // block)):  # alternating blocks: both sides see the same machine state
            for fn, times in ((c["compiled"], tc), (c["twin"], tt)):
                time.sleep(pause)
                _warm(fn, warm)
                times += _time_block(fn, block)
        mc, mt = statistics.median(tc), statistics.median(tt)
        rows.append(dict(kernel=c["name"], direction=c["direction"], shape=list(c["shape"]), reps=len(tc),
                         compiled_ms=mc * 1e3, numpy_ms=mt * 1e3, speedup=mt / mc,
                         compiled_gbps=c["nbytes"] / mc / 1e9))
    return rows


def format_table(rows):
    head = f"{'kernel':32s} {'dir':9s} {'shape':22s} {'compiled ms':>11s} {'numpy ms':>10s} {'speedup':>8s} {'GB/s':>6s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['kernel']:32s} {r['direction']:9s} {str(tuple(r['shape'])):22s} "
                     f"{r['compiled_ms']:11.3f} {r['numpy_ms']:10.3f} {r['speedup']:7.1f}x {r['compiled_gbps']:6.1f}")
    return "\n".join(lines)


def add_arguments(ap):
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--reps", type=int, default=15, help="timed repetitions per kernel (optimizer: 5)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc as it is (freed large blocks go back to the OS, so both sides "
                         "page-fault their large outputs and temporaries afresh on every call)")
    ap.add_argument("--only", nargs="*", help="substrings of kernel names to run")
    ap.add_argument("--block", type=int, default=3,
                    help="timed back-to-back calls per side before the other side runs (default 3)")
    ap.add_argument("--pause", type=float, default=0.15,
                    help="idle seconds before each block, so the other side's spinning workers sleep (default 0.15)")
    ap.add_argument("--warm", type=float, default=0.02,
                    help="untimed seconds of calls after the pause, before the timed block (default 0.02)")


def run(args):
    info = ff.build_info()
    info["malloc_keeps_freed_memory"] = False if args.default_malloc else keep_freed_memory()
    print(f"fastformer {info['version']}  simd={info['simd']}  threads={info['num_threads']}  "
          f"openmp={info['openmp']}  numpy {np.__version__}  "
          f"malloc keeps freed memory: {info['malloc_keeps_freed_memory']}")
    info["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
    rows = run_cases(reps=args.reps, only=args.only, block=args.block, pause=args.pause, warm=args.warm)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_info": info, "numpy": np.__version__, "results": rows}, f, indent=2)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fastformer.bench ops", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
