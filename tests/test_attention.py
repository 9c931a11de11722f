"""Fused (flash) and materialised attention against the float64 NumPy twin,
against each other, with masks and dropout, on every SIMD path, bitwise
across thread counts, and with bad input; the query-by-query forward
(impl="rows", cached decoding's) likewise."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref

IMPLS = ["flash", "materialized"]

# (B, h, Tq, Tk, dk, causal, padding)
CASES = [
    (2, 3, 70, 70, 64, False, False),     # S not a multiple of the blocks
    (2, 3, 70, 70, 64, True, False),
    (1, 2, 1, 1, 32, False, False),       # S = 1
    (1, 1, 1, 1, 64, True, True),         # S = 1, its only key padded
    (2, 2, 130, 67, 80, True, True),      # Tq > Tk, cross shapes, dk 80
    (2, 2, 33, 150, 40, False, True),     # Tq < Tk, generic dk
    (1, 16, 64, 64, 32, True, False),     # many heads, exact blocks
    (2, 2, 65, 129, 128, True, True),     # dk 128
    (1, 1, 5, 300, 7, False, True),       # long keys, tiny dk
    (2, 2, 96, 128, 64, True, True),      # Tk % 4 == 0: the vectorised dropout-mask path
]


def rand(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def inputs(case, seed=0):
    B, H, Tq, Tk, dk, causal, pad = case
    rng = np.random.default_rng(seed + Tq * 1000 + Tk)
    q, k, v = rand(rng, (B, H, Tq, dk), 1.5), rand(rng, (B, H, Tk, dk), 1.5), rand(rng, (B, H, Tk, dk))
    dout = rand(rng, (B, H, Tq, dk))
    mask = None
    if pad:
        mask = rng.random((B, Tk)) < 0.3
        mask[0, :] = True             # batch 0: every query of it sees no key
        if B > 1:
            mask[1, 0] = True         # with causal, query 0 of batch 1 sees no key
    return q, k, v, dout, mask, causal


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def check_against_twin(case, impl, dropout_p=0.0):
    q, k, v, dout, mask, causal = inputs(case)
    kw = dict(key_padding_mask=mask, causal=causal, dropout_p=dropout_p, seed=11, step=3, site=0x01000000)
    out, lse = ops.attention_forward(q, k, v, impl=impl, **kw)
    out64, lse64 = ref.attention_forward(*f64(q, k, v), **kw)
    assert out.dtype == np.float32 and lse.dtype == np.float32
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=2e-5)
    assert np.array_equal(np.isneginf(lse), np.isneginf(lse64))
    np.testing.assert_allclose(lse, lse64, rtol=1e-5, atol=2e-5)
    grads = ops.attention_backward(dout, q, k, v, out, lse, impl=impl, **kw)
    grads64 = ref.attention_backward(*f64(dout, q, k, v, out, lse), **kw)
    for name, g, g64 in zip(("dq", "dk", "dv"), grads, grads64):
        assert g.shape == g64.shape and g.dtype == np.float32, name
        np.testing.assert_allclose(g, g64, rtol=1e-4, atol=2e-5 * (1 + np.abs(g64).max()), err_msg=name)
    if mask is not None:  # batch 0 sees no key: 0 output, -inf lse, 0 gradient
        assert not out[0].any() and np.isneginf(lse[0]).all() and not grads[0][0].any()
    return out, lse, grads


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_float64_twin(simd, case, impl):
    check_against_twin(case, impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[5], CASES[9]], ids=str)
def test_dropout_matches_twin(simd, case, impl):
    """Same (seed, step, site) gives the twin's mask, so output and gradients agree."""
    check_against_twin(case, impl, dropout_p=0.25)


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[7]], ids=str)
def test_flash_matches_materialized(case):
    q, k, v, dout, mask, causal = inputs(case, seed=5)
    res = {}
    for impl in IMPLS:
        out, lse = ops.attention_forward(q, k, v, mask, causal, 0.1, 3, 4, 5, impl=impl)
        res[impl] = (out, lse) + ops.attention_backward(dout, q, k, v, out, lse, mask, causal, 0.1, 3, 4, 5, impl=impl)
    for a, b in zip(res["flash"], res["materialized"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


# Decoding's shapes: 1 query (self-attention over the cache) or a few (a sentence's beams)
ROWS_CASES = CASES + [
    (5, 4, 1, 37, 32, False, False),
    (3, 8, 4, 64, 64, False, True),
    (2, 2, 1, 1, 8, False, False),
    (4, 3, 5, 9, 80, True, True),
]


def forward_against_twin(case, impl):
    q, k, v, dout, mask, causal = inputs(case)
    out, lse = ops.attention_forward(q, k, v, mask, causal, impl=impl)
    out64, lse64 = ref.attention_forward(*f64(q, k, v), key_padding_mask=mask, causal=causal)
    assert out.dtype == np.float32 and lse.dtype == np.float32
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=2e-5)
    assert np.array_equal(np.isneginf(lse), np.isneginf(lse64))
    np.testing.assert_allclose(lse, lse64, rtol=1e-5, atol=2e-5)
    if mask is not None:
        assert not out[0].any() and np.isneginf(lse[0]).all()


@pytest.mark.parametrize("case", ROWS_CASES, ids=str)
def test_rows_forward_matches_float64_twin(simd, case):
    forward_against_twin(case, "rows")


def test_rows_forward_bitwise_over_threads(threads):
    q, k, v, dout, mask, causal = inputs((6, 5, 3, 100, 64, False, True), seed=4)
    runs = []
    for n in (1, 2, 3):
        threads(n)
        runs.append([a.tobytes() for a in ops.attention_forward(q, k, v, mask, causal, impl="rows")])
    assert runs[0] == runs[1] == runs[2]


def test_rows_forward_on_cache_views(simd):
    """Decoding's layouts: keys and values as views of a (R, 2h, L, dk) cache
    (positions up to t), queries and output as views of packed projections,
    give the bits of the contiguous call."""
    R, H, L, t, dk = 5, 3, 20, 13, 16
    rng = np.random.default_rng(3)
    cache = rand(rng, (R, 2 * H, L, dk))
    k, v = cache[:, :H, :t], cache[:, H:, :t]
    qkv = rand(rng, (R, 3 * H * dk))
    q = qkv[:, :H * dk].reshape(R, H, 1, dk)
    want, want_lse = ops.attention_forward(*(np.ascontiguousarray(a) for a in (q, k, v)), impl="rows")
    ctx = np.empty((R, H * dk), np.float32)
    lse = np.empty((R, H, 1), np.float32)
    ff._C._attention_forward_views(ctx.reshape(R, H, 1, dk), lse, q, k, v, impl="rows")
    assert np.array_equal(ctx.reshape(R, H, 1, dk), want) and np.array_equal(lse, want_lse)
    forward_against_twin((R, H, 1, t, dk, False, False), "rows")
    # the first step: no key in the cache yet
    ff._C._attention_forward_views(ctx.reshape(R, H, 1, dk), lse, q, cache[:, :H, :0], cache[:, H:, :0], impl="rows")
    assert not ctx.any() and np.isneginf(lse).all()


def test_rows_forward_with_key_rows(simd, threads, internal_checks):
    """A cache reordered by index: key j of row b read from slot key_rows[b, j]
    gives the bits of the call on the gathered keys, for any thread count.
    With internal checks on, a bad key_rows is refused by name."""
    S, R, H, L, t, dk = 7, 5, 2, 12, 9, 24
    rng = np.random.default_rng(11)
    cache = rand(rng, (S, 2 * H, L, dk))
    key_rows = np.zeros((R, L), np.int64)
    key_rows[:, :t] = rng.integers(0, S, (R, t))
    q = rand(rng, (R, H, 1, dk))
    k_all, v_all = cache[:, :H, :t], cache[:, H:, :t]
    j = np.arange(t)
    k = np.ascontiguousarray(k_all[key_rows[:, :t], :, j].transpose(0, 2, 1, 3))  # (R, H, t, dk)
    v = np.ascontiguousarray(v_all[key_rows[:, :t], :, j].transpose(0, 2, 1, 3))
    want = ops.attention_forward(q, k, v, impl="rows")
    for n in (1, 2, 3):
        threads(n)
        out, lse = np.empty_like(q), np.empty((R, H, 1), np.float32)
        ff._C._attention_forward_views(out, lse, q, k_all, v_all, impl="rows", key_rows=key_rows[:, :t])
        assert np.array_equal(out, want[0]) and np.array_equal(lse, want[1])
    out, lse = np.empty_like(q), np.empty((R, H, 1), np.float32)
    internal_checks(True)
    bad = [
        (ValueError, "key_rows", dict(impl="flash", key_rows=key_rows[:, :t])),
        (TypeError, "key_rows", dict(impl="rows", key_rows=key_rows[:, :t].astype(np.int32))),
        (ValueError, "key_rows", dict(impl="rows", key_rows=key_rows[:, :t - 1])),
        (ValueError, "key_rows", dict(impl="rows", key_rows=key_rows[:, :2 * t:2][:, :t])),
        (ValueError, "key_rows", dict(impl="rows", key_rows=np.full((R, t), S, np.int64))),
        (ValueError, "key_rows", dict(impl="rows", key_rows=np.full((R, t), -1, np.int64))),
    ]
    for exc, name, kw in bad:
        with pytest.raises(exc, match=name):
            ff._C._attention_forward_views(out, lse, q, k_all, v_all, **kw)


def test_rows_is_the_default_for_few_queries():
    q, k, v, dout, mask, causal = inputs((3, 2, ops.ATTENTION_ROWS_MAX_TQ, 40, 32, True, True))
    got = ops.attention_forward(q, k, v, mask, causal)
    want = ops.attention_forward(q, k, v, mask, causal, impl="rows")
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    with_dropout = ops.attention_forward(q, k, v, mask, causal, 0.1, 1, 2, 3)  # rows has no dropout: flash
    flash = ops.attention_forward(q, k, v, mask, causal, 0.1, 1, 2, 3, impl="flash")
    assert all(np.array_equal(a, b) for a, b in zip(with_dropout, flash))


def test_rows_refuses_dropout_and_backward():
    q = np.zeros((1, 2, 3, 8), np.float32)
    with pytest.raises(ValueError, match="dropout_p"):
        ops.attention_forward(q, q, q, dropout_p=0.1, impl="rows")
    out, lse = ops.attention_forward(q, q, q, impl="rows")
    with pytest.raises(ValueError, match="impl"):
        ops.attention_backward(q, q, q, q, out, lse, impl="rows")


def test_impl_default_matches_forced():
    q, k, v, dout, mask, causal = inputs(CASES[0])
    out, lse = ops.attention_forward(q, k, v, mask, causal)
    forced = ("flash" if q.shape[2] > ops.ATTENTION_MATERIALIZED_MAX_TK else "materialized")
    out2, lse2 = ops.attention_forward(q, k, v, mask, causal, impl=forced)
    assert np.array_equal(out, out2) and np.array_equal(lse, lse2)


def test_dropout_rate_and_mask_reuse():
    """With v = identity rows, out = Dropout(P) exposes the mask: about p of the
    positive probabilities are dropped, and it is the reference's Philox mask."""
    B, H, T, p = 2, 2, 64, 0.3
    q = np.zeros((B, H, T, T), np.float32)  # uniform P = 1/T on every row
    v = np.broadcast_to(np.eye(T, dtype=np.float32), (B, H, T, T)).copy()
    for impl in IMPLS:
        out, _ = ops.attention_forward(q, q, v, dropout_p=p, seed=9, step=1, site=2, impl=impl)
        keep = ref.dropout_mask((B, H, T, T), p, 9, 1, 2)
        assert np.array_equal(out != 0, keep)
        assert abs((out == 0).mean() - p) < 0.03


@pytest.mark.parametrize("impl", IMPLS)
def test_bitwise_over_threads(threads, impl):
    q, k, v, dout, mask, causal = inputs((3, 3, 150, 100, 64, True, True), seed=2)
    runs = []
    for n in (1, 2, 3):
        threads(n)
        out, lse = ops.attention_forward(q, k, v, mask, causal, 0.1, 1, 2, 3, impl=impl)
        grads = ops.attention_backward(dout, q, k, v, out, lse, mask, causal, 0.1, 1, 2, 3, impl=impl)
        runs.append([a.tobytes() for a in (out, lse) + grads])
    assert runs[0] == runs[1] == runs[2]


def test_empty_shapes():
    for shape_q, shape_k in [((0, 2, 3, 8), (0, 2, 3, 8)), ((1, 2, 0, 8), (1, 2, 3, 8)), ((1, 2, 3, 8), (1, 2, 0, 8))]:
        q, k = np.ones(shape_q, np.float32), np.ones(shape_k, np.float32)
        for impl in IMPLS:
            out, lse = ops.attention_forward(q, k, k, impl=impl)
            if k.shape[2]:
                o64, l64 = ref.attention_forward(q, k, k)
            else:  # no key at all (the twin's max has nothing to reduce): every query sees none
                o64, l64 = np.zeros(q.shape), np.full(q.shape[:3], -np.inf)
            assert out.shape == o64.shape and np.array_equal(out, o64) and np.array_equal(lse, l64.astype(np.float32))
            dq, dk, dv = ops.attention_backward(q, q, k, k, out, lse, impl=impl)
            assert dq.shape == q.shape and not dq.any() and not dk.any() and not dv.any()
        out, lse = ops.attention_forward(q, k, k, impl="rows")
        assert np.array_equal(out, o64) and np.array_equal(lse, l64.astype(np.float32))


def test_bad_input_names_the_argument():
    q = np.zeros((2, 3, 5, 8), np.float32)
    k = np.zeros((2, 3, 7, 8), np.float32)
    lse = np.zeros((2, 3, 5), np.float32)
    bad = [
        (TypeError, "q", lambda: ops.attention_forward(q.astype(np.float64), k, k)),
        (ValueError, "q", lambda: ops.attention_forward(q[0], k, k)),
        (ValueError, "q", lambda: ops.attention_forward(np.zeros((2, 3, 8, 5), np.float32).swapaxes(2, 3), k, k)),
        (ValueError, "k", lambda: ops.attention_forward(q, np.zeros((2, 3, 7, 9), np.float32), k)),
        (ValueError, "k", lambda: ops.attention_forward(q, np.zeros((2, 4, 7, 8), np.float32), k)),
        (ValueError, "v", lambda: ops.attention_forward(q, k, np.zeros((2, 3, 6, 8), np.float32))),
        (TypeError, "v", lambda: ops.attention_forward(q, k, [[1.0]])),
        (TypeError, "key_padding_mask", lambda: ops.attention_forward(q, k, k, np.zeros((2, 7), np.int32))),
        (ValueError, "key_padding_mask", lambda: ops.attention_forward(q, k, k, np.zeros((2, 5), bool))),
        (ValueError, "key_padding_mask",
         lambda: ops.attention_forward(q, k, k, np.zeros((7, 2), bool).T)),
        (ValueError, "dropout_p", lambda: ops.attention_forward(q, k, k, dropout_p=1.0)),
        (ValueError, "dropout_p", lambda: ops.attention_forward(q, k, k, dropout_p=-0.1)),
        (TypeError, "causal", lambda: ops.attention_forward(q, k, k, causal="yes")),
        (TypeError, "seed", lambda: ops.attention_forward(q, k, k, seed=1.5)),
        (ValueError, "impl", lambda: ops.attention_forward(q, k, k, impl="fast")),
        (ValueError, "dout", lambda: ops.attention_backward(k, q, k, k, q, lse)),
        (ValueError, "out", lambda: ops.attention_backward(q, q, k, k, k, lse)),
        (ValueError, "lse", lambda: ops.attention_backward(q, q, k, k, q, lse[:, :, :4])),
        (TypeError, "lse", lambda: ops.attention_backward(q, q, k, k, q, lse.astype(np.float64))),
    ]
    for exc, name, fn in bad:
        with pytest.raises(exc, match=name):
            fn()


def test_packed_qkv_views_match_contiguous():
    """The C API takes strides: q, k, v as views into a packed (B, T, 3, h, dk)
    projection, out and grads written into packed buffers, give the bits of
    the contiguous call."""
    B, T, H, dk = 2, 70, 3, 32
    rng = np.random.default_rng(7)
    qkv = rand(rng, (B, T, 3, H, dk))
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # (B, h, T, dk) views
    mask = rng.random((B, T)) < 0.2
    args = (mask, True, 0.1, 4, 5, 6)
    out, lse = ops.attention_forward(*(np.ascontiguousarray(a) for a in (q, k, v)), *args, impl="flash")
    ctx = np.empty((B, T, H, dk), np.float32)  # the merged-heads layout the output projection reads
    lse2 = np.empty((B, H, T), np.float32)
    ff._C._attention_forward_views(ctx.transpose(0, 2, 1, 3), lse2, q, k, v, *args)
    assert np.array_equal(ctx.transpose(0, 2, 1, 3), out) and np.array_equal(lse2, lse)
    dout = rand(rng, out.shape)
    grads = ops.attention_backward(dout, *(np.ascontiguousarray(a) for a in (q, k, v)), out, lse, *args,
                                   impl="flash")
    dqkv = np.empty_like(qkv)
    dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)
    ff._C._attention_backward_views(dq, dk, dv, dout, q, k, v, ctx.transpose(0, 2, 1, 3), lse2, *args)
    for a, b in zip((dq, dk, dv), grads):
        assert np.array_equal(a, b)
