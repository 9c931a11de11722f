"""The bindings' internal entry points (the model's own calls, which skip the
per-call argument checks): the public ops' bits, and with internal checks on
(FASTFORMER_CHECK_INTERNAL=1) the public ops' errors."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import _C, ops
from fastformer.bench.configs import CONFIGS


def rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("ta, tb", [(False, True), (True, False), (False, False)])
def test_matmul_into_is_matmul(simd, bf16, ta, tb):
    rng = np.random.default_rng(1)
    m, n, k = 37, 19, 45
    a = rand(rng, (k, m) if ta else (m, k))
    b = rand(rng, (n, k) if tb else (k, n))
    bias, c0 = rand(rng, n), rand(rng, (m, n))
    dtype = "bfloat16" if bf16 else "float32"
    for beta, act in ((0.0, None), (1.0, None), (0.0, "relu"), (0.0, "gelu")):
        want = ops.matmul(a, b, ta, tb, beta=beta, out=c0.copy(), bias=bias, activation=act, compute_dtype=dtype)
        got = _C._matmul_into(a, b, c0.copy(), ta, tb, beta, bias, act, bf16)
        assert np.array_equal(got, want)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_linear_packed_is_matmul_packed(simd, compute_dtype):
    rng = np.random.default_rng(2)
    a, w, bias, c0 = rand(rng, (5, 33)), rand(rng, (21, 33)), rand(rng, 21), rand(rng, (5, 21))
    p = ops.pack_matrix(w, trans_b=True, compute_dtype=compute_dtype)
    for beta, act in ((0.0, None), (1.0, None), (0.0, "relu")):
        want = ops.matmul_packed(a, p, beta=beta, out=c0.copy(), bias=bias, activation=act)
        assert np.array_equal(_C._linear_packed(a, p, c0.copy(), bias, act, beta), want)


def test_row_ops_into_are_the_public_ops(simd):
    rng = np.random.default_rng(3)
    x, r, dy = rand(rng, (9, 40)), rand(rng, (9, 40)), rand(rng, (9, 40))
    w, b = rand(rng, 40), rand(rng, 40)
    y, mean, rstd = ops.layer_norm_forward(x, w, b, 1e-5, r)
    got = [np.empty_like(y), np.empty(9, np.float32), np.empty(9, np.float32)]
    _C._layer_norm_into(x, w, b, 1e-5, r, *got)
    assert all(np.array_equal(g, e) for g, e in zip(got, (y, mean, rstd)))

    gw, gb = rand(rng, 40), rand(rng, 40)
    want = ops.layer_norm_backward(dy, x, w, mean, rstd, r, dweight=gw.copy(), dbias=gb.copy(), accumulate=True)
    dx, dw, db = np.empty_like(x), gw.copy(), gb.copy()
    _C._layer_norm_backward_into(dy, x, w, mean, rstd, r, dx, dw, db)
    assert all(np.array_equal(g, e) for g, e in zip((dx, dw, db), want))

    s0 = rand(rng, 40)
    s = s0.copy()
    _C._column_sum_into(x, s)
    assert np.array_equal(s, ops.column_sum(x, out=s0.copy(), accumulate=True))

    for name in ("relu", "gelu"):
        fwd, bwd = getattr(ops, f"{name}_forward"), getattr(ops, f"{name}_backward")
        assert np.array_equal(_C._activation_into(x, name, np.empty_like(x)), fwd(x))
        assert np.array_equal(_C._activation_backward_into(dy, x, name, np.empty_like(x)), bwd(dy, x))

    for seed in (5, -5):
        want = ops.dropout_forward(x, 0.3, seed, 7, 11)
        assert np.array_equal(_C._dropout_into(x, 0.3, seed, 7, 11, np.empty_like(x)), want)


def test_internal_checks_name_the_argument(internal_checks):
    rng = np.random.default_rng(4)
    a, b = rand(rng, (4, 8)), rand(rng, (6, 8))
    internal_checks(True)
    with pytest.raises(ValueError, match="out must have shape"):
        _C._matmul_into(a, b, np.empty((4, 5), np.float32), False, True)
    with pytest.raises(ValueError, match="out must not overlap a"):
        _C._matmul_into(a, rand(rng, (8, 8)), a, False, False)
    with pytest.raises(ValueError, match="out must have shape"):
        _C._linear_packed(a, ops.pack_matrix(b, trans_b=True), np.empty((4, 5), np.float32))
    w = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="bias must have shape"):
        _C._layer_norm_into(a, w, w[:7], 1e-5, None, np.empty_like(a), np.empty(4, np.float32),
                            np.empty(4, np.float32))
    with pytest.raises(ValueError, match="out must have shape"):
        _C._column_sum_into(a, np.empty(7, np.float32))
    with pytest.raises(TypeError, match="x must have dtype float32"):
        _C._activation_into(a.astype(np.float64), "relu", np.empty_like(a))


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_model_step_is_the_same_with_internal_checks(internal_checks, compute_dtype):
    """The model's calls pass every public check (they are what the checks
    would let through) and give the same bits either way."""
    c = CONFIGS["micro"]
    rng = np.random.default_rng(5)
    src = rng.integers(0, c.vocab, (c.batch, c.src_len))
    tgt = rng.integers(0, c.vocab, (c.batch, c.tgt_len))
    mask = np.zeros(src.shape, bool)
    mask[0, -3:] = True
    results = []
    for on in (False, True):
        internal_checks(on)
        model = ff.Transformer(**c.model_kwargs(0.1), compute_dtype=compute_dtype)
        loss = model.forward_backward(src, tgt, tgt, mask)
        tokens = model.generate(src, 6, 1, 2, beam_size=2, src_key_padding_mask=mask)
        results.append((loss, model._flat_grad.copy(), tokens))
    (l0, g0, t0), (l1, g1, t1) = results
    assert l0 == l1 and np.array_equal(g0, g1) and np.array_equal(t0, t1)
