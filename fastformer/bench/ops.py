"""Row-wise, loss, embedding, dropout and optimizer kernels against their
NumPy twins, side by side, at the shapes of a d_model=512, 8-head model with
B=16, S=256 (and a 50M-parameter optimizer step); the attention, linear and
feed-forward cases of `fastformer.bench.ops_attention` join the table.

    python -m fastformer.bench ops [--json PATH] [--reps N] [--only NAME ...]

Each kernel and its twin run in alternating blocks (compiled, twin,
compiled, ...) so both see the same machine state; the median is taken over
all timed calls of a side (`fastformer.bench.kernel_cases`). The table gives
the medians, the speedup, and the compiled kernel's effective memory
bandwidth (the bytes it must read and write, divided by its time). The
optimizer cases time 5 calls per side whatever --reps says.
"""
import os

import numpy as np

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref
from fastformer.bench import harness, kernel_cases, machine, ops_attention
from fastformer.bench.kernel_cases import Case
from fastformer.reference import optim as ref_optim

HELP = "row-wise, loss, embedding, dropout and optimizer kernels against their twins"

B, S, D, H, V = 16, 256, 512, 8, 8000
N_PARAMS = 50_000_000


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
    out.append(Case("layer_norm (+residual)", "forward", x.shape,
                    lambda: ops.layer_norm_forward(x, w, b, 1e-5, r),
                    lambda: ref.layer_norm_forward(x, w, b, 1e-5, r), 3 * n))
    out.append(Case("layer_norm (+residual)", "backward", x.shape,
                    lambda: ops.layer_norm_backward(dy, x, w, mean, rstd, r),
                    lambda: ref.layer_norm_backward(dy, x, w, mean, rstd, r), 4 * n))

    # Masked softmax over attention scores (B, H, S, S), causal bool mask.
    s = rng.standard_normal((B, H, S, S)).astype(f32)
    causal = np.triu(np.ones((S, S), dtype=bool), 1)
    y = ops.softmax_forward(s, causal)
    dys = rng.standard_normal(s.shape).astype(f32)
    n = s.size * 4
    out.append(Case("softmax (causal mask)", "forward", s.shape,
                    lambda: ops.softmax_forward(s, causal), lambda: ref.softmax_forward(s, causal), 2 * n))
    out.append(Case("softmax", "backward", s.shape,
                    lambda: ops.softmax_backward(dys, y), lambda: ref.softmax_backward(dys, y), 3 * n))

    # Cross-entropy over (B*S, V) with label smoothing and some padding targets:
    # loss and dlogits come from one fused pass (forward and backward together).
    logits = (2 * rng.standard_normal((B * S, V))).astype(f32)
    targets = rng.integers(0, V, B * S)
    targets[::17] = -100
    n = logits.size * 4
    out.append(Case("cross_entropy (fwd+bwd fused)", "both", logits.shape,
                    lambda: ops.cross_entropy(logits, targets, -100, 0.1),
                    lambda: ref.cross_entropy(logits, targets, -100, 0.1), 2 * n))

    # Embedding (B, S) ids into a (V, D) table, with sinusoidal positions.
    ids = rng.integers(0, V, (B, S))
    table = rng.standard_normal((V, D)).astype(f32)
    pos = ref.sinusoidal_positions(S, D)
    dx = rng.standard_normal((B, S, D)).astype(f32)
    out.append(Case("embedding", "forward", (B, S, D),
                    lambda: ops.embedding_forward(ids, table, pos), lambda: ref.embedding_forward(ids, table, pos),
                     2 * dx.size * 4))
    out.append(Case("embedding", "backward", (V, D),
                    lambda: ops.embedding_backward(dx, ids, V), lambda: ref.embedding_backward(dx, ids, V),
                     dx.size * 4 + table.size * 4))

    # Dropout p=0.1 over (B*S, D).
    xd = rng.standard_normal((B * S, D)).astype(f32)
    n = xd.size * 4
    out.append(Case("dropout p=0.1", "forward", xd.shape,
                    lambda: ops.dropout_forward(xd, 0.1, 1234, 7, 0x01000001),
                    lambda: ref.dropout_forward(xd, 0.1, 1234, 7, 0x01000001), 2 * n))
    out.append(Case("dropout p=0.1", "backward", xd.shape,
                    lambda: ops.dropout_backward(xd, 0.1, 1234, 7, 0x01000001),
                    lambda: ref.dropout_backward(xd, 0.1, 1234, 7, 0x01000001), 2 * n))

    # Optimizer steps over one flat 50M-parameter buffer (state in place; the
    # values drift over the repetitions, the work does not).
    p = (0.02 * rng.standard_normal(N_PARAMS)).astype(f32)
    g = (0.01 * rng.standard_normal(N_PARAMS)).astype(f32)
    m = np.zeros(N_PARAMS, f32)
    v = np.zeros(N_PARAMS, f32)
    n = N_PARAMS * 4
    out.append(Case("adamw step", "update", (N_PARAMS,),
                    lambda: ops.adam_step(p, g, m, v, 10, 1e-3, 0.9, 0.999, 1e-8, 0.01, True),
                    lambda: ref_optim.adam_step(p, g, m, v, 10, 1e-3, 0.9, 0.999, 1e-8, 0.01, True), 7 * n, repeat=5))
    buf = np.zeros(N_PARAMS, f32)
    out.append(Case("sgd step (momentum 0.9)", "update", (N_PARAMS,),
                    lambda: ops.sgd_step(p, g, buf, 10, 1e-2, 0.9),
                    lambda: ref_optim.sgd_step(p, g, buf, 10, 1e-2, 0.9), 5 * n, repeat=5))
    out.append(Case("grad_norm", "reduce", (N_PARAMS,),
                    lambda: ops.grad_norm(g), lambda: ref_optim.grad_norm(g), n, repeat=5))
    out.append(Case("clip_grad_norm", "update", (N_PARAMS,),
                    lambda: ops.clip_grad_norm(g, 1e9), lambda: ref_optim.clip_grad_norm(g, 1e9), n, repeat=5))
    out += ops_attention.cases()  # attention, linear, FFN
    return out


def add_arguments(p):
    kernel_cases.add_arguments(p)
    p.add_argument("--only", nargs="*", help="substrings of kernel names to run")


def run(args):
    (threads,) = harness.thread_counts(args)
    machine.set_all_threads(threads)
    header = harness.start(args, [threads])
    info = dict(ff.build_info(), malloc_keeps_freed_memory=header["malloc_keeps_freed_memory"],
                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""))
    cases = [c for c in _cases() if not args.only or any(o in c.name for o in args.only)]
    rows = kernel_cases.time_cases(cases, args)
    print(kernel_cases.format_table(rows))
    harness.finish(args, {"header": header, "build_info": info, "numpy": np.__version__, "results": rows})
    return 0
