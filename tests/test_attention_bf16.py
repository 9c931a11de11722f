"""Flash attention with compute_dtype="bfloat16" against the float64 twin
that rounds the same product inputs (fastformer.reference.attention), on
every bf16 path, with masks and dropout, bitwise across thread counts, and
its bad options."""
import numpy as np
import pytest

from fastformer import ops
from fastformer import reference as ref
from test_attention import CASES, ROWS_CASES, f64, inputs

BF16_CASES = CASES + [(1, 2, 40, 90, 200, True, True)]  # dk > 128: the leaf's depth in chunks


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run(case, dropout_p, compute_dtype="bfloat16"):
    q, k, v, dout, mask, causal = inputs(case)
    kw = dict(key_padding_mask=mask, causal=causal, dropout_p=dropout_p, seed=11, step=3, site=0x01000000)
    out, lse = ops.attention_forward(q, k, v, compute_dtype=compute_dtype, **kw)
    grads = ops.attention_backward(dout, q, k, v, out, lse, compute_dtype=compute_dtype, **kw)
    return (q, k, v, dout, kw), out, lse, grads


@pytest.mark.parametrize("dropout_p", [0.0, 0.25])
@pytest.mark.parametrize("case", BF16_CASES, ids=str)
def test_matches_bf16_twin(bf16_simd, case, dropout_p):
    """Norm-wise within a few float32 roundings of the twin (an intermediate
    rounded to the other side of a bf16 tie moves one term by 2^-8), where
    the float32 kernel is 3e-3 to 9e-3 away: the test sees the rounding."""
    (q, k, v, dout, kw), out, lse, grads = run(case, dropout_p)
    out64, lse64 = ref.attention_forward(*f64(q, k, v), compute_dtype="bfloat16", **kw)
    assert np.array_equal(np.isneginf(lse), np.isneginf(lse64))
    np.testing.assert_allclose(lse, lse64, rtol=1e-5, atol=1e-5)
    # one key block (128) rounds exp(S - max) as the twin does; beyond, against a running maximum
    assert rel(out, out64) <= (1e-4 if case[3] <= 128 else 2e-3)
    grads64 = ref.attention_backward(*f64(dout, q, k, v, out, lse), compute_dtype="bfloat16", **kw)
    for name, g, g64 in zip(("dq", "dk", "dv"), grads, grads64):
        assert g.dtype == np.float32 and rel(g, g64) <= 1e-3, name


@pytest.mark.parametrize("case", ROWS_CASES, ids=str)
def test_rows_matches_bf16_twin(bf16_simd, case):
    """The query-by-query forward (cached decoding's) rounds as the flash
    forward does on one key block: the twin's numbers, and flash's."""
    q, k, v, dout, mask, causal = inputs(case)
    out, lse = ops.attention_forward(q, k, v, mask, causal, impl="rows", compute_dtype="bfloat16")
    out64, lse64 = ref.attention_forward(*f64(q, k, v), key_padding_mask=mask, causal=causal,
                                         compute_dtype="bfloat16")
    assert np.array_equal(np.isneginf(lse), np.isneginf(lse64))
    np.testing.assert_allclose(lse, lse64, rtol=1e-5, atol=1e-5)
    assert rel(out, out64) <= 1e-4
    flash, _ = ops.attention_forward(q, k, v, mask, causal, impl="flash", compute_dtype="bfloat16")
    assert rel(out, flash) <= (1e-4 if case[3] <= 128 else 2e-3)
    if mask is not None:
        assert not out[0].any() and np.isneginf(lse[0]).all()


def test_differs_from_float32():
    """The bf16 products are not the float32 ones (the rounding happens)."""
    _, out, _, grads = run(CASES[0], 0.0)
    _, out32, _, grads32 = run(CASES[0], 0.0, "float32")
    assert rel(out, out32) > 1e-3 and all(rel(g, g32) > 1e-3 for g, g32 in zip(grads, grads32))


@pytest.mark.parametrize("case", [CASES[1], CASES[5]], ids=str)
def test_bitwise_over_threads(bf16_simd, threads, case):
    results = []
    for n in (1, 2, 3):
        threads(n)
        _, out, lse, grads = run(case, 0.25)
        results.append((out, lse) + tuple(grads))
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))


def test_bad_options():
    q, k, v, dout, mask, causal = inputs(CASES[0])
    with pytest.raises(ValueError, match="compute_dtype='bfloat16' needs impl='flash' or 'rows'"):
        ops.attention_forward(q, k, v, impl="materialized", compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="compute_dtype='bfloat16' needs impl='flash' or 'rows'"):
        ops.attention_backward(dout, q, k, v, q, np.zeros(q.shape[:3], np.float32), impl="materialized", compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="compute_dtype must be"):
        ops.attention_forward(q, k, v, compute_dtype="float16")
    with pytest.raises(TypeError, match="compute_dtype must be"):
        ops.attention_backward(dout, q, k, v, q, np.zeros(q.shape[:3], np.float32), compute_dtype=None)
    with pytest.raises(ValueError, match="compute_dtype must be"):
        ref.attention_forward(q, k, v, compute_dtype="half")


def test_rows_on_bf16_values_skips_nothing(bf16_simd):
    """Keys and values rounded once (a bf16 decoder's cache, kv_bf16=True)
    give the bits of rounding them on every call."""
    from fastformer import _C

    q, k, v, dout, mask, causal = inputs((3, 8, 4, 64, 64, False, True))
    kr, vr = (_C._round_bf16_inplace(a.copy()) for a in (k, v))
    np.testing.assert_array_equal(kr, ref.round_bf16(k))
    results = []
    for keys, values, rounded in ((k, v, False), (kr, vr, True)):
        out, lse = np.empty_like(q), np.empty(q.shape[:3], np.float32)
        _C._attention_forward_views(out, lse, q, keys, values, mask, causal, impl="rows", compute_dtype="bfloat16",
                                    kv_bf16=rounded)
        results.append((out, lse))
    assert all(np.array_equal(a, b) for a, b in zip(*results))


def test_round_bf16_inplace_matches_twin(simd):
    from fastformer import _C

    x = np.random.default_rng(1).standard_normal(1037).astype(np.float32) * 1e3
    x[:6] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1.00390625]  # 1 + 2^-8: a tie, to even (1.0)
    expect = ref.round_bf16(x)
    got = _C._round_bf16_inplace(x)
    assert got is x and np.array_equal(got, expect, equal_nan=True)
    with pytest.raises(TypeError):
        _C._round_bf16_inplace(x.astype(np.float64))
    with pytest.raises(ValueError):
        _C._round_bf16_inplace(np.zeros((4, 4), np.float32)[:, ::2])


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("impl", ["flash", "rows"])
def test_nan_query_gives_nan_not_zero(impl, compute_dtype):
    """A NaN score is no 'key unseen' (lse -inf, a zero gradient): the
    query's output and log-sum-exp are NaN; the other queries are finite."""
    q, k, v, dout, mask, causal = inputs((2, 2, 1, 5, 8, False, False))
    q[0, 0, 0, :] = np.nan
    out, lse = ops.attention_forward(q, k, v, impl=impl, compute_dtype=compute_dtype)
    assert np.isnan(out[0, 0, 0]).all() and np.isnan(lse[0, 0, 0])
    assert np.isfinite(out[1]).all() and np.isfinite(lse[1]).all()


# ----- q, k and v stored as bf16 values (uint16) -----------------------------------------


def stored(*arrays):
    """Each float32 array as bf16 values (uint16), and those values as float32."""
    bits = [ops.to_bf16(a) for a in arrays]
    return bits, [ref.from_bf16(b) for b in bits]


def run_both(case, dropout_p):
    """Forward and backward on bf16 values (uint16) and on their float32s."""
    q, k, v, dout, mask, causal = inputs(case)
    kw = dict(key_padding_mask=mask, causal=causal, dropout_p=dropout_p, seed=11, step=3, site=0x01000000,
              compute_dtype="bfloat16", impl="flash")  # (impl=None takes rows for a few float queries)
    results = []
    for qkv in stored(q, k, v):
        out, lse = ops.attention_forward(*qkv, **kw)
        results.append((out, lse) + tuple(ops.attention_backward(dout, *qkv, out, lse, **kw)))
    return results


@pytest.mark.parametrize("dropout_p", [0.0, 0.25])
@pytest.mark.parametrize("case", BF16_CASES, ids=str)
def test_bf16_values_give_the_bits_of_their_floats(bf16_simd, case, dropout_p):
    """Stored bf16 inputs are widened, and rounding keeps bf16 values: the
    products are those on their float32 copies, bit for bit."""
    bits, floats = run_both(case, dropout_p)
    for name, a, b in zip(("out", "lse", "dq", "dk", "dv"), bits, floats):
        assert a.dtype == np.float32 and np.array_equal(a, b, equal_nan=True), name


@pytest.mark.parametrize("case", [CASES[1], CASES[4]], ids=str)
def test_bf16_values_bitwise_over_threads(bf16_simd, threads, case):
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(run_both(case, 0.25)[0])
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))


def test_bf16_values_in_strided_views(bf16_simd):
    """The model's case: q, k, v as head views of one packed (B, T, 3, h, dk)
    projection held in bf16 values, and the twin on those values."""
    from fastformer import _C

    B, T, h, dk = 2, 45, 3, 24
    rng = np.random.default_rng(5)
    qkv = rng.standard_normal((B * T, 3 * h * dk)).astype(np.float32)
    dout = rng.standard_normal((B, h, T, dk)).astype(np.float32)
    mask = rng.random((B, T)) < 0.2
    kw = dict(key_padding_mask=mask, causal=True, dropout_p=0.1, seed=3, step=1, site=7, compute_dtype="bfloat16")
    results = []
    for packed in stored(qkv)[0] + stored(qkv)[1]:
        q, k, v = packed.reshape(B, T, 3, h, dk).transpose(2, 0, 3, 1, 4)
        out, lse = np.empty((B, h, T, dk), np.float32), np.empty((B, h, T), np.float32)
        _C._attention_forward_views(out, lse, q, k, v, **kw)
        grads = [np.empty((B, h, T, dk), np.float32) for _ in range(3)]
        _C._attention_backward_views(*grads, dout, q, k, v, out, lse, **kw)
        results.append([out, lse] + grads)
    assert all(np.array_equal(a, b) for a, b in zip(*results))
    q, k, v = stored(qkv)[0][0].reshape(B, T, 3, h, dk).transpose(2, 0, 3, 1, 4)
    out64, _ = ref.attention_forward(q, k, v, **kw)
    assert rel(results[0][0], out64) <= 1e-5


def test_bf16_values_bad_input():
    q, k, v, dout, mask, causal = inputs(CASES[0])
    (qb, kb, vb), _ = stored(q, k, v)
    lse = np.zeros(q.shape[:3], np.float32)
    with pytest.raises(TypeError, match="needs? compute_dtype='bfloat16'"):
        ops.attention_forward(qb, kb, vb)
    with pytest.raises(TypeError, match="needs? compute_dtype='bfloat16'"):
        ops.attention_backward(dout, qb, kb, vb, q, lse)
    with pytest.raises(TypeError, match="k must be a numpy.ndarray of uint16"):
        ops.attention_forward(qb, k, vb, compute_dtype="bfloat16")
    with pytest.raises(TypeError, match="q must have dtype float32"):
        ops.attention_forward(qb.astype(np.int16), k, v, compute_dtype="bfloat16")
    few = np.ascontiguousarray(qb[:, :, :2])  # two queries a head: impl=None's rows, were q float32
    with pytest.raises(ValueError, match="need impl='flash'"):
        ops.attention_forward(few, kb, vb, impl="rows", compute_dtype="bfloat16")
    with pytest.raises(TypeError, match="needs? compute_dtype='bfloat16'"):
        ref.attention_forward(qb, kb, vb)
    out, _ = ops.attention_forward(few, kb, vb, compute_dtype="bfloat16")
    assert np.array_equal(out, ops.attention_forward(few, kb, vb, impl="flash", compute_dtype="bfloat16")[0])
