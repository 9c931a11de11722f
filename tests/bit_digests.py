"""Digests of what every compiled kernel returns on fixed inputs, per SIMD
path, and of ten training steps: the bits a refactor of the kernels must keep
(issue 9). `python tests/bit_digests.py --record` rewrites
tests/data/bit_digests.json for every path this CPU has, keeping the others;
test_bit_digests.py checks the paths this CPU has against it.

Inputs come from numpy's default_rng (the same on every CPU) and sizes are odd
so every path's vector tails run; one thread (the bits are the same for any).
"""
import hashlib
import json
import os
import sys

import numpy as np

import fastformer as ff
from fastformer import ops

DIGESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "bit_digests.json")


def _rand(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


def _mask(seed, B, S):
    mask = np.random.default_rng(seed).random((B, S)) < 0.3
    mask[:, 0] = False  # no row fully masked
    return mask


def _attention(causal, dropout_p, impl):
    q, k, v = _rand(1, 3, 2, 13, 24), _rand(2, 3, 2, 37, 24), _rand(3, 3, 2, 37, 24)
    if causal:
        k, v = k[:, :, :13].copy(), v[:, :, :13].copy()
    mask = _mask(4, 3, k.shape[2])
    out, lse = ops.attention_forward(q, k, v, mask, causal, dropout_p, 7, 3, 2, impl=impl)
    if impl == "rows":
        return out, lse
    dq, dk, dv = ops.attention_backward(_rand(5, *out.shape), q, k, v, out, lse, mask, causal, dropout_p, 7, 3, 2,
                                        impl=impl)
    return out, lse, dq, dk, dv


def _gemm(act, ta, tb):
    a = _rand(10, 45, 77) if not ta else _rand(10, 77, 45)
    b = _rand(11, 77, 53) if not tb else _rand(11, 53, 77)
    c = _rand(12, 45, 53)
    return ops.matmul(a, b, ta, tb, 0.75, 0.5, out=c, bias=_rand(13, 53), activation=act),


def _packed():
    b = _rand(11, 53, 77)
    return ops.matmul_packed(_rand(10, 9, 77), ops.pack_matrix(b, trans_b=True), bias=_rand(13, 53),
                             activation="gelu"),


def _layer_norm():
    x, w, b, r = _rand(20, 19, 83), _rand(21, 83), _rand(22, 83), _rand(23, 19, 83)
    y, mean, rstd = ops.layer_norm_forward(x, w, b, 1e-5, r)
    return (y, mean, rstd) + tuple(ops.layer_norm_backward(_rand(24, 19, 83), x, w, mean, rstd, r))


def _softmax():
    x = _rand(30, 7, 61)
    y = ops.softmax_forward(x, _mask(31, 7, 61))
    return y, ops.softmax_backward(_rand(32, 7, 61), y)


def _cross_entropy():
    targets = np.random.default_rng(41).integers(0, 29, size=(5, 7))
    targets[0, 0] = -100
    return ops.cross_entropy(_rand(40, 5, 7, 29), targets, label_smoothing=0.1)


def _activations():
    x, dy = _rand(50, 301), _rand(51, 301)
    return (ops.gelu_forward(x), ops.gelu_backward(dy, x), ops.relu_forward(x), ops.relu_backward(dy, x))


def _dropout():
    x = _rand(60, 11, 67)
    return ops.dropout_forward(x, 0.3, 5, 2, 1), ops.dropout_backward(x, 0.3, 5, 2, 1), ops.dropout_mask((11, 67), 0.3, 5, 2, 1)


def _embedding():
    ids = np.random.default_rng(70).integers(0, 23, size=(3, 17))
    weight, positions = _rand(71, 23, 40), _rand(72, 17, 40)
    return ops.embedding_forward(ids, weight, positions), ops.embedding_backward(_rand(73, 3, 17, 40), ids, 23)


def _ffn(activation):
    x, w1, b1, w2, b2 = _rand(80, 13, 24), _rand(81, 40, 24), _rand(82, 40), _rand(83, 24, 40), _rand(84, 24)
    y, hidden_pre = ops.ffn_forward(x, w1, b1, w2, b2, activation)
    return (y, hidden_pre) + tuple(ops.ffn_backward(_rand(85, 13, 24), x, hidden_pre, w1, w2, activation))


def _linear():
    x, w, b = _rand(90, 13, 35), _rand(91, 21, 35), _rand(92, 21)
    return (ops.linear_forward(x, w, b),) + tuple(ops.linear_backward(_rand(93, 13, 21), x, w))


def _optimizers():
    p, g = _rand(100, 1001), _rand(101, 1001)
    m, v = np.abs(_rand(102, 1001)) * 0.1, np.abs(_rand(103, 1001)) * 0.01
    ops.adam_step(p, g, m, v, 3, lr=1e-3, weight_decay=0.01, decoupled=True)
    q, buf = _rand(104, 1001), _rand(105, 1001)
    ops.sgd_step(q, g, buf, 2, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    norm = np.float32(ops.grad_norm(g))
    return p, m, v, q, buf, np.array([norm, ops.dot(g, _rand(106, 1001)), ops.column_sum(_rand(107, 9, 33))[3]])


def _beam_topk():
    return ops.beam_topk(_rand(110, 6, 97), _rand(111, 2, 3), 5, blocked=3)


def _training():
    from tiny_training import reverse_task, train_reverse

    return tuple(a for _, a in sorted(train_reverse(reverse_task(), 10, 12).state_dict().items()))


CASES = {
    "matmul": lambda: _gemm(None, False, False),
    "matmul_relu_tb": lambda: _gemm("relu", False, True),
    "matmul_gelu_ta": lambda: _gemm("gelu", True, False),
    "matmul_tab": lambda: _gemm(None, True, True),
    "matmul_packed": _packed,
    "attention_flash": lambda: _attention(False, 0.0, None),
    "attention_flash_causal_dropout": lambda: _attention(True, 0.2, None),
    "attention_materialized": lambda: _attention(False, 0.1, "materialized"),
    "attention_rows": lambda: _attention(False, 0.0, "rows"),
    "layer_norm": _layer_norm,
    "softmax": _softmax,
    "cross_entropy": _cross_entropy,
    "activations": _activations,
    "dropout": _dropout,
    "embedding": _embedding,
    "ffn_relu": lambda: _ffn("relu"),
    "ffn_gelu": lambda: _ffn("gelu"),
    "linear": _linear,
    "optimizers": _optimizers,
    "beam_topk": _beam_topk,
    "training_10_steps": _training,
}


def digest(case, simd):
    """The digest of CASES[case] run on `simd` with one thread."""
    before_simd, before_threads = ff.get_simd(), ff.get_num_threads()
    ff.set_simd(simd)
    ff.set_num_threads(1)
    try:
        return _digest(CASES[case]())
    finally:
        ff.set_simd(before_simd)
        ff.set_num_threads(before_threads)


def load():
    with open(DIGESTS) as f:
        return json.load(f)


def record():
    recorded = load() if os.path.exists(DIGESTS) else {}
    for simd in ff.simd_levels():
        recorded[simd] = {case: digest(case, simd) for case in CASES}
    tmp = DIGESTS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(recorded, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, DIGESTS)
    print(f"recorded {', '.join(ff.simd_levels())} into {DIGESTS}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/bit_digests.py --record")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    record()
