"""Attention, linear and feed-forward kernels against their NumPy twins, and
the fused (flash) attention against the materialised one, with peak memory.

    python -m fastformer.bench ops                 # these cases join the ops table
    python -m fastformer.bench.ops_attention [--json PATH] [--reps N] [--no-memory] [--sweep]

Shapes: d_model=512, 8 heads (dk=64), d_ff=2048, B=16, S=256 for linear/FFN
and attention at S=256; attention at S=1024 with B=4 (so the twin's (S x S)
matrices fit comfortably). `--sweep` re-measures the sequence length below
which impl=None should prefer the materialised path.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref

D, H, F = 512, 8, 2048
DK = D // H
# (B, S) of the attention cases
ATTN_SHAPES = [(16, 256), (4, 1024)]


def _case(name, direction, shape, compiled, twin, nbytes, reps=None):
    # the dict fastformer.bench.ops._case builds
    return dict(name=name, direction=direction, shape=shape, compiled=compiled, twin=twin, nbytes=nbytes,
                reset=None, reps=reps)


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
        _case(tag, "forward", q.shape, lambda: ops.attention_forward(q, k, v, None, causal),
              lambda: ref.attention_forward(q, k, v, None, causal), nbytes, reps),
        _case(tag, "backward", q.shape, lambda: ops.attention_backward(dout, q, k, v, o, lse, None, causal),
              lambda: ref.attention_backward(dout, q, k, v, o, lse, None, causal), 2 * nbytes, reps),
        _case(tag + " (flash)", "fwd+bwd", q.shape, lambda: both("flash"), twin_both, 3 * nbytes, reps),
        _case(tag + " (materialized)", "fwd+bwd", q.shape, lambda: both("materialized"), twin_both, 3 * nbytes,
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
    return [
        _case("linear in_proj 512->1536", "forward", (B * S, D, 3 * D),
              lambda: ops.linear_forward(x, w, b), lambda: ref.linear_forward(x, w, b), lin),
        _case("linear in_proj 512->1536", "backward", (B * S, D, 3 * D),
              lambda: ops.linear_backward(dy, x, w), lambda: ref.linear_backward(dy, x, w), lin + x.nbytes),
        _case("ffn relu 512-2048-512", "forward", (B * S, D, F),
              lambda: ops.ffn_forward(x, w1, b1, w2, b2, "relu"),
              lambda: ref.ffn_forward(x, w1, b1, w2, b2, "relu"), ffn),
        _case("ffn relu 512-2048-512", "backward", (B * S, D, F),
              lambda: ops.ffn_backward(dyf, x, hp, w1, w2, "relu"),
              lambda: ref.ffn_backward(dyf, x, hp, w1, w2, "relu"), ffn + x.nbytes),
        _case("ffn gelu 512-2048-512", "forward", (B * S, D, F),
              lambda: ops.ffn_forward(x, w1, b1, w2, b2, "gelu"),
              lambda: ref.ffn_forward(x, w1, b1, w2, b2, "gelu"), ffn),
        _case("ffn gelu 512-2048-512", "backward", (B * S, D, F),
              lambda: ops.ffn_backward(dyf, x, hp, w1, w2, "gelu"),
              lambda: ref.ffn_backward(dyf, x, hp, w1, w2, "gelu"), ffn + x.nbytes),
    ]


def cases():
    """The cases `python -m fastformer.bench ops` adds to its table."""
    rng = np.random.default_rng(1)
    return _attention_cases(rng) + _linear_cases(rng)


# ---------------------------------------------------------------- peak memory

_MEM_CHILD = r"""
import sys
import numpy as np
from fastformer import ops
B, S, impl = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
q, k, v, do = (rng.standard_normal((B, %d, S, %d)).astype(np.float32) for _ in range(4))
t = q[:1, :1, :8].copy()  # warm libraries and the thread pool on a tiny problem
o, l = ops.attention_forward(t, t, t, impl=impl)
ops.attention_backward(t, t, t, t, o, l, impl=impl)
def hwm():  # peak RSS of this address space, kB (ru_maxrss would carry the parent's peak across exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
before = hwm()
o, l = ops.attention_forward(q, k, v, impl=impl)
g = ops.attention_backward(do, q, k, v, o, l, impl=impl)
print((hwm() - before) * 1024)
""" % (H, DK)


def peak_memory(B, S, impl):
    """Bytes by which one fwd+bwd raises the peak resident set of a fresh process
    holding only its inputs (VmHWM of /proc/self/status, Linux: C mallocs
    included, which tracemalloc does not see; ru_maxrss is not used because it
    keeps the parent's peak across exec); the outputs (out, lse, dq, dk, dv)
    are part of it."""
    r = subprocess.run([sys.executable, "-c", _MEM_CHILD, str(B), str(S), impl], capture_output=True, text=True,
                       check=True)
    return int(r.stdout.strip())


def memory_rows():
    rows = []
    for B, S in ATTN_SHAPES:
        outputs = 4 * B * H * S * DK * 4 + B * H * S * 4  # out, dq, dk, dv, lse: what any impl returns
        scores = B * H * S * S * 4  # one (B, h, S, S) float32 matrix
        for impl in ("flash", "materialized"):
            rows.append(dict(B=B, S=S, impl=impl, peak_rss_mib=peak_memory(B, S, impl) / 2 ** 20,
                             outputs_mib=outputs / 2 ** 20, one_score_matrix_mib=scores / 2 ** 20))
    return rows


# ---------------------------------------------------------------- threshold sweep

def sweep(lengths=(4, 8, 16, 32, 64, 128), heads=((16, 8), (1, 1)), reps=15):
    """Best-of-reps fwd+bwd time of both impls per key length: where the
    materialised path wins, impl=None should take it."""
    rng = np.random.default_rng(0)
    rows = []
    for B, h in heads:
        for S in lengths:
            q, k, v, do = (rng.standard_normal((B, h, S, DK)).astype(np.float32) for _ in range(4))
            t = {}
            for impl in ("flash", "materialized"):
                def step(impl=impl):
                    o, l = ops.attention_forward(q, k, v, None, True, impl=impl)
                    ops.attention_backward(do, q, k, v, o, l, None, True, impl=impl)
                step()
                t[impl] = min(_time(step) for _ in range(reps))
            rows.append(dict(B=B, h=h, S=S, flash_ms=t["flash"] * 1e3, materialized_ms=t["materialized"] * 1e3))
    return rows


# ---------------------------------------------------------------- standalone run

def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_cases(reps=15, warmup=2):
    rows = []
    for c in cases():
        n = c["reps"] or reps
        for _ in range(warmup):
            c["compiled"]()
            c["twin"]()
        tc, tt = [], []
        for _ in range(n):  # interleaved: both sides see the same machine state
            tc.append(_time(c["compiled"]))
            tt.append(_time(c["twin"]))
        mc, mt = statistics.median(tc), statistics.median(tt)
        rows.append(dict(kernel=c["name"], direction=c["direction"], shape=list(c["shape"]), reps=n,
                         compiled_ms=mc * 1e3, numpy_ms=mt * 1e3, speedup=mt / mc))
    return rows


def add_arguments(ap):
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--reps", type=int, default=15, help="timed repetitions per case (S=1024: 5)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--sweep", action="store_true", help="also re-measure the flash/materialised threshold")


def run(args):
    from fastformer.bench.ops import keep_freed_memory

    info = ff.build_info()
    info["malloc_keeps_freed_memory"] = keep_freed_memory()
    print(f"fastformer {info['version']}  simd={info['simd']}  threads={info['num_threads']}  "
          f"numpy {np.__version__}  materialized if Tk <= {ops.ATTENTION_MATERIALIZED_MAX_TK}")
    rows = run_cases(reps=args.reps)
    head = f"{'kernel':40s} {'dir':9s} {'shape':22s} {'compiled ms':>11s} {'numpy ms':>10s} {'speedup':>8s}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['kernel']:40s} {r['direction']:9s} {str(tuple(r['shape'])):22s} {r['compiled_ms']:11.3f} "
              f"{r['numpy_ms']:10.3f} {r['speedup']:7.1f}x")
    by = {(r["kernel"], r["direction"]): r for r in rows}
    print("\nflash over materialised, fwd+bwd (same run):")
    for B, S in ATTN_SHAPES:
        for c in ("", " causal"):
            tag = f"attention S={S}{c}"
            fl, ma = by[(tag + " (flash)", "fwd+bwd")], by[(tag + " (materialized)", "fwd+bwd")]
            print(f"  {tag:28s} flash {fl['compiled_ms']:8.2f} ms  materialized {ma['compiled_ms']:8.2f} ms  "
                  f"{ma['compiled_ms'] / fl['compiled_ms']:5.2f}x")
    result = {"build_info": info, "numpy": np.__version__, "results": rows}
    if not args.no_memory:
        mem = memory_rows()
        print("\npeak memory of one fwd+bwd (rise of VmHWM in a fresh process):")
        for m in mem:
            print(f"  B={m['B']:<3d} S={m['S']:<5d} {m['impl']:13s} {m['peak_rss_mib']:8.1f} MiB   "
                  f"(outputs {m['outputs_mib']:.1f} MiB, one (B,h,S,S) matrix {m['one_score_matrix_mib']:.1f} MiB)")
        result["memory"] = mem
    if args.sweep:
        sw = sweep()
        print("\nflash vs materialised fwd+bwd, causal, best of 15:")
        for s in sw:
            print(f"  B={s['B']:<3d} h={s['h']:<2d} S={s['S']:<4d} flash {s['flash_ms']:8.3f} ms  "
                  f"materialized {s['materialized_ms']:8.3f} ms")
        result["sweep"] = sw
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fastformer.bench.ops_attention",
                                 description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
