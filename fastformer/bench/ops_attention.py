"""Attention, linear and feed-forward kernels against their NumPy twins, and
the fused (flash) attention against the materialised one, with peak memory.

    python -m fastformer.bench ops                 # these cases join the ops table
    python -m fastformer.bench ops_attention [--json PATH] [--reps N] [--no-memory] [--sweep]

Shapes: d_model=512, 8 heads (dk=64), d_ff=2048, B=16, S=256 for linear/FFN
and attention at S=256; attention at S=1024 with B=4 (so the twin's (S x S)
matrices fit comfortably). `--sweep` re-measures the sequence length below
which impl=None should prefer the materialised path.
"""
import numpy as np

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref
from fastformer.bench import harness, kernel_cases, machine
from fastformer.bench.kernel_cases import Case

HELP = "attention, linear and FFN kernels against their twins; flash against materialised, with peak memory"
D, H, F = 512, 8, 2048
DK = D // H
# (B, S) of the attention cases
ATTN_SHAPES = [(16, 256), (4, 1024)]


def _attention_pair(q, k, v, dout, causal, reps):
    """Cases of one shape and causal flag (a function, so each closure keeps its own arrays)."""
    S = q.shape[2]
    tag = f"attention S={S}{' causal' if causal else ''}"
    nbytes = 4 * q.nbytes  # q, k, v read, out written: the least any kernel moves
    o, lse = ops.attention_forward(q, k, v, None, causal)

    def both(impl):
        o2, l2 = ops.attention_forward(q, k, v, None, causal, impl=impl)
        return ops.attention_backward(dout, q, k, v, o2, l2, None, causal, impl=impl)

    def twin_both():
        o2, l2 = ref.attention_forward(q, k, v, None, causal)
        return ref.attention_backward(dout, q, k, v, o2, l2, None, causal)

    return [
        Case(tag, "forward", q.shape, lambda: ops.attention_forward(q, k, v, None, causal),
             lambda: ref.attention_forward(q, k, v, None, causal), nbytes, reps),
        Case(tag, "backward", q.shape, lambda: ops.attention_backward(dout, q, k, v, o, lse, None, causal),
             lambda: ref.attention_backward(dout, q, k, v, o, lse, None, causal), 2 * nbytes, reps),
        Case(tag + " (flash)", "fwd+bwd", q.shape, lambda: both("flash"), twin_both, 3 * nbytes, reps),
        Case(tag + " (materialized)", "fwd+bwd", q.shape, lambda: both("materialized"), twin_both, 3 * nbytes,
             reps),
    ]


def _attention_cases(rng):
    out = []
    for B, S in ATTN_SHAPES:
        q, k, v, dout = (rng.standard_normal((B, H, S, DK)).astype(np.float32) for _ in range(4))
        for causal in (False, True):
            out += _attention_pair(q, k, v, dout, causal, 5 if S >= 1024 else None)
    return out


def _linear_cases(rng):
    B, S = 16, 256
    x = rng.standard_normal((B, S, D)).astype(np.float32)
    w = (rng.standard_normal((3 * D, D)) * D ** -0.5).astype(np.float32)  # in_proj: (3d, d)
    b = rng.standard_normal(3 * D).astype(np.float32)
    dy = rng.standard_normal((B, S, 3 * D)).astype(np.float32)
    w1 = (rng.standard_normal((F, D)) * D ** -0.5).astype(np.float32)
    b1 = rng.standard_normal(F).astype(np.float32)
    w2 = (rng.standard_normal((D, F)) * F ** -0.5).astype(np.float32)
    b2 = rng.standard_normal(D).astype(np.float32)
    dyf = rng.standard_normal((B, S, D)).astype(np.float32)
    _, hp = ops.ffn_forward(x, w1, b1, w2, b2, "relu")
    lin = (x.nbytes + w.nbytes + dy.nbytes)
    ffn = (2 * x.nbytes + w1.nbytes + w2.nbytes + hp.nbytes)
    out = [
        Case("linear in_proj 512->1536", "forward", (B * S, D, 3 * D),
             lambda: ops.linear_forward(x, w, b), lambda: ref.linear_forward(x, w, b), lin),
        Case("linear in_proj 512->1536", "backward", (B * S, D, 3 * D),
             lambda: ops.linear_backward(dy, x, w), lambda: ref.linear_backward(dy, x, w), lin + x.nbytes),
    ]
    for act in ("relu", "gelu"):  # the pre-activation hp is the same for both
        out += [
            Case(f"ffn {act} 512-2048-512", "forward", (B * S, D, F),
                 lambda act=act: ops.ffn_forward(x, w1, b1, w2, b2, act),
                 lambda act=act: ref.ffn_forward(x, w1, b1, w2, b2, act), ffn),
            Case(f"ffn {act} 512-2048-512", "backward", (B * S, D, F),
                 lambda act=act: ops.ffn_backward(dyf, x, hp, w1, w2, act),
                 lambda act=act: ref.ffn_backward(dyf, x, hp, w1, w2, act), ffn + x.nbytes),
        ]
    return out


def cases():
    """The cases `python -m fastformer.bench ops` adds to its table."""
    rng = np.random.default_rng(1)
    return _attention_cases(rng) + _linear_cases(rng)


# ---------------------------------------------------------------- peak memory

def memory_probe(spec):
    """The peak-memory child's set-up (see harness.peak_memory): the inputs of
    one fwd+bwd, and the libraries and thread pool warmed on a tiny problem;
    what is measured is the fwd+bwd, its outputs (out, lse, dq, dk, dv)
    included."""
    B, S, impl = spec["B"], spec["S"], spec["impl"]
    rng = np.random.default_rng(0)
    q, k, v, do = (rng.standard_normal((B, H, S, DK)).astype(np.float32) for _ in range(4))
    t = q[:1, :1, :8].copy()
    o, lse = ops.attention_forward(t, t, t, impl=impl)
    ops.attention_backward(t, t, t, t, o, lse, impl=impl)

    def measured():
        o, lse = ops.attention_forward(q, k, v, impl=impl)
        ops.attention_backward(do, q, k, v, o, lse, impl=impl)
    return measured


def memory_rows():
    rows = []
    for B, S in ATTN_SHAPES:
        outputs = 4 * B * H * S * DK * 4 + B * H * S * 4  # out, dq, dk, dv, lse: what any impl returns
        scores = B * H * S * S * 4  # one (B, h, S, S) float32 matrix
        for impl in ("flash", "materialized"):
            mem = harness.peak_memory("ops_attention", {"B": B, "S": S, "impl": impl})
            peak = None if mem is None else mem["peak_rise_bytes"] / 2 ** 20
            rows.append(dict(B=B, S=S, impl=impl, peak_rss_mib=peak, outputs_mib=outputs / 2 ** 20,
                             one_score_matrix_mib=scores / 2 ** 20))
    return rows


# ---------------------------------------------------------------- threshold sweep

def sweep(lengths=(4, 8, 16, 32, 64, 128), heads=((16, 8), (1, 1)), reps=15):
    """Best-of-reps fwd+bwd time of both impls per key length, interleaved:
    where the materialised path wins, impl=None should take it."""
    rng = np.random.default_rng(0)
    rows = []
    for B, h in heads:
        for S in lengths:
            q, k, v, do = (rng.standard_normal((B, h, S, DK)).astype(np.float32) for _ in range(4))

            def step(impl):
                o, lse = ops.attention_forward(q, k, v, None, True, impl=impl)
                ops.attention_backward(do, q, k, v, o, lse, None, True, impl=impl)

            samples = harness.interleaved({impl: (lambda impl=impl: step(impl)) for impl in ("flash", "materialized")},
                                          reps, warmup=1)
            rows.append(dict(B=B, h=h, S=S, flash_ms=min(samples["flash"]) * 1e3,
                             materialized_ms=min(samples["materialized"]) * 1e3))
    return rows


# ---------------------------------------------------------------- the family

def add_arguments(p):
    kernel_cases.add_arguments(p)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--sweep", action="store_true", help="also re-measure the flash/materialised threshold")


def run(args):
    (threads,) = harness.thread_counts(args)
    machine.set_all_threads(threads)
    header = harness.start(args, [threads], materialized_max_tk=ops.ATTENTION_MATERIALIZED_MAX_TK)
    info = dict(ff.build_info(), malloc_keeps_freed_memory=header["malloc_keeps_freed_memory"])
    print(f"materialized if Tk <= {ops.ATTENTION_MATERIALIZED_MAX_TK}")
    rows = kernel_cases.time_cases(cases(), args)
    print(kernel_cases.format_table(rows))
    by = {(r["kernel"], r["direction"]): r for r in rows}
    print("\nflash over materialised, fwd+bwd (same run):")
    for B, S in ATTN_SHAPES:
        for c in ("", " causal"):
            tag = f"attention S={S}{c}"
            fl, ma = by[(tag + " (flash)", "fwd+bwd")], by[(tag + " (materialized)", "fwd+bwd")]
            print(f"  {tag:28s} flash {fl['compiled_ms']:8.2f} ms  materialized {ma['compiled_ms']:8.2f} ms  "
                  f"{ma['compiled_ms'] / fl['compiled_ms']:5.2f}x")
    result = {"header": header, "build_info": info, "numpy": np.__version__, "results": rows}
    if not args.no_memory:
        mem = memory_rows()
        print("\npeak memory of one fwd+bwd (rise of VmHWM in a fresh process):")
        for m in mem:
            peak = "-" if m["peak_rss_mib"] is None else f"{m['peak_rss_mib']:8.1f}"
            print(f"  B={m['B']:<3d} S={m['S']:<5d} {m['impl']:13s} {peak} MiB   "
                  f"(outputs {m['outputs_mib']:.1f} MiB, one (B,h,S,S) matrix {m['one_score_matrix_mib']:.1f} MiB)")
        result["memory"] = mem
    if args.sweep:
        sw = sweep()
        print("\nflash vs materialised fwd+bwd, causal, best of 15:")
        for s in sw:
            print(f"  B={s['B']:<3d} h={s['h']:<2d} S={s['S']:<4d} flash {s['flash_ms']:8.3f} ms  "
                  f"materialized {s['materialized_ms']:8.3f} ms")
        result["sweep"] = sw
    harness.finish(args, result)
    return 0
