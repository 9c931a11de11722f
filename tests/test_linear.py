"""Linear layer, activations and the feed-forward sublayer against their
float64 NumPy twins, on every SIMD path, bitwise across thread counts, and
with bad input."""
import numpy as np
import pytest

from fastformer import ops
from fastformer import reference as ref

# (leading shape of x, in, out)
SHAPES = [((1,), 1, 1), ((7,), 5, 3), ((3, 11), 33, 17), ((2, 129), 64, 96), ((300,), 130, 257)]


def rand(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def close(a, b, name=""):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6 * (1 + np.abs(b).max()), err_msg=name)


@pytest.mark.parametrize("lead,n_in,n_out", SHAPES, ids=str)
def test_linear_matches_float64(simd, lead, n_in, n_out):
    rng = np.random.default_rng(n_in * n_out)
    x, w, b = rand(rng, lead + (n_in,)), rand(rng, (n_out, n_in), 0.2), rand(rng, (n_out,))
    dy = rand(rng, lead + (n_out,))
    close(ops.linear_forward(x, w, b), ref.linear_forward(*f64(x, w, b)))
    close(ops.linear_forward(x, w), ref.linear_forward(*f64(x, w)))
    got = ops.linear_backward(dy, x, w)
    want = ref.linear_backward(*f64(dy, x, w))
    for name, g, g64 in zip(("dx", "dweight", "dbias"), got, want):
        assert g.shape == g64.shape and g.dtype == np.float32
        close(g, g64, name)
    dx, dw, db = ops.linear_backward(dy, x, w, need_dx=False)
    assert dx is None and np.array_equal(dw, got[1]) and np.array_equal(db, got[2])


@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_activations_match_float64(simd, act):
    rng = np.random.default_rng(1)
    x = rand(rng, (37, 129), 3.0)
    x[0, :5] = [0.0, -0.0, 40.0, -40.0, 1e-30]
    dy = rand(rng, x.shape)
    fwd, bwd = getattr(ops, act + "_forward"), getattr(ops, act + "_backward")
    close(fwd(x), getattr(ref, act + "_forward")(x.astype(np.float64)))
    close(bwd(dy, x), getattr(ref, act + "_backward")(*f64(dy, x)))


@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("lead,d,d_ff", [((1,), 1, 1), ((2, 37), 24, 50), ((4, 64), 64, 256)], ids=str)
def test_ffn_matches_float64(simd, act, lead, d, d_ff):
    rng = np.random.default_rng(d * d_ff)
    x = rand(rng, lead + (d,))
    w1, b1 = rand(rng, (d_ff, d), d ** -0.5), rand(rng, (d_ff,))
    w2, b2 = rand(rng, (d, d_ff), d_ff ** -0.5), rand(rng, (d,))
    dy = rand(rng, lead + (d,))
    y, hp = ops.ffn_forward(x, w1, b1, w2, b2, act)
    y64, hp64 = ref.ffn_forward(*f64(x, w1, b1, w2, b2), act)
    close(y, y64, "y")
    close(hp, hp64, "hidden_pre")
    got = ops.ffn_backward(dy, x, hp, w1, w2, act)
    want = ref.ffn_backward(*f64(dy, x, hp, w1, w2), act)
    for name, g, g64 in zip(("dx", "dw1", "db1", "dw2", "db2"), got, want):
        assert g.shape == g64.shape and g.dtype == np.float32
        close(g, g64, name)


@pytest.mark.parametrize("lead,n_in,n_out", SHAPES, ids=str)
def test_linear_bf16_is_matmul_bf16_and_matches_its_twin(bf16_simd, lead, n_in, n_out):
    """compute_dtype="bfloat16": the products of matmul(..., compute_dtype="bfloat16"),
    bit for bit, and the bf16-rounding float64 twin's numbers."""
    rng = np.random.default_rng(n_in * n_out + 1)
    x, w, b = rand(rng, lead + (n_in,)), rand(rng, (n_out, n_in), 0.2), rand(rng, (n_out,))
    dy = rand(rng, lead + (n_out,))
    x2, dy2 = x.reshape(-1, n_in), dy.reshape(-1, n_out)
    bf = dict(compute_dtype="bfloat16")
    y = ops.linear_forward(x, w, b, **bf)
    assert np.array_equal(y.reshape(-1, n_out), ops.matmul(x2, w, trans_b=True, bias=b, **bf))
    close(y, ref.linear_forward(*f64(x, w, b), **bf))
    dx, dw, db = ops.linear_backward(dy, x, w, **bf)
    assert np.array_equal(dw, ops.matmul(dy2, x2, trans_a=True, **bf))
    assert np.array_equal(dx.reshape(-1, n_in), ops.matmul(dy2, w, **bf))
    for name, g, g64 in zip(("dx", "dweight", "dbias"), (dx, dw, db), ref.linear_backward(*f64(dy, x, w), **bf)):
        close(g, g64, name)


@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_ffn_bf16_matches_its_twin(bf16_simd, act):
    """All four products in bf16. act(hidden) is rounded to bf16 after an fp32
    (compiled) or float64 (twin) activation, which may round a value the other
    way: norm-wise bounds, ten times below fp32's distance from the twin."""
    rng = np.random.default_rng(7)
    lead, d, d_ff = (3, 29), 40, 72
    x, dy = rand(rng, lead + (d,)), rand(rng, lead + (d,))
    w1, b1 = rand(rng, (d_ff, d), d ** -0.5), rand(rng, (d_ff,))
    w2, b2 = rand(rng, (d, d_ff), d_ff ** -0.5), rand(rng, (d,))
    bf = dict(compute_dtype="bfloat16")

    def near(g, g64, name):
        assert np.linalg.norm(g - g64) <= 1e-4 * np.linalg.norm(g64), name

    y, hp = ops.ffn_forward(x, w1, b1, w2, b2, act, **bf)
    y64, hp64 = ref.ffn_forward(*f64(x, w1, b1, w2, b2), act, **bf)
    near(y, y64, "y")
    close(hp, hp64, "hidden_pre")
    fp32 = ops.ffn_forward(x, w1, b1, w2, b2, act)[0]
    assert np.linalg.norm(fp32 - y64) > 1e-3 * np.linalg.norm(y64)  # the products did round to bf16
    got = ops.ffn_backward(dy, x, hp, w1, w2, act, **bf)
    for name, g, g64 in zip(("dx", "dw1", "db1", "dw2", "db2"), got, ref.ffn_backward(*f64(dy, x, hp, w1, w2), act,
                                                                                       **bf)):
        near(g, g64, name)


def test_bitwise_over_threads(threads):
    rng = np.random.default_rng(3)
    x, dy = rand(rng, (5, 301, 96)), rand(rng, (5, 301, 96))
    w1, b1, w2, b2 = rand(rng, (384, 96), 0.1), rand(rng, (384,)), rand(rng, (96, 384), 0.05), rand(rng, (96,))
    runs = []
    for n in (1, 2, 3):
        threads(n)
        y1 = ops.linear_forward(x, w1, b1)
        out = [y1] + list(ops.linear_backward(y1, x, w1))
        for act in ("relu", "gelu"):
            y, hp = ops.ffn_forward(x, w1, b1, w2, b2, act)
            out += [y, hp] + list(ops.ffn_backward(dy, x, hp, w1, w2, act)) + [ops.gelu_backward(hp, hp)]
        runs.append([a.tobytes() for a in out])
    assert runs[0] == runs[1] == runs[2]


def test_empty_rows():
    x = np.zeros((0, 4), np.float32)
    w, b = np.ones((3, 4), np.float32), np.ones(3, np.float32)
    assert ops.linear_forward(x, w, b).shape == (0, 3)
    dx, dw, db = ops.linear_backward(np.zeros((0, 3), np.float32), x, w)
    assert dx.shape == (0, 4) and not dw.any() and not db.any()


def test_bad_input_names_the_argument():
    x = np.zeros((4, 8), np.float32)
    w = np.zeros((3, 8), np.float32)
    w1, b1, w2, b2 = np.zeros((16, 8), np.float32), np.zeros(16, np.float32), np.zeros((8, 16), np.float32), \
        np.zeros(8, np.float32)
    bad = [
        (TypeError, "x", lambda: ops.linear_forward(x.astype(np.float64), w)),
        (ValueError, "x", lambda: ops.linear_forward(np.zeros((4, 7), np.float32), w)),
        (ValueError, "weight", lambda: ops.linear_forward(x, w[0])),
        (ValueError, "bias", lambda: ops.linear_forward(x, w, np.zeros(4, np.float32))),
        (ValueError, "x", lambda: ops.linear_forward(np.zeros((8, 4), np.float32).T, w)),
        (ValueError, "dy", lambda: ops.linear_backward(np.zeros((4, 4), np.float32), x, w)),
        (TypeError, "need_dx", lambda: ops.linear_backward(np.zeros((4, 3), np.float32), x, w, need_dx="no")),
        (ValueError, "activation", lambda: ops.ffn_forward(x, w1, b1, w2, b2, "tanh")),
        (TypeError, "activation", lambda: ops.ffn_forward(x, w1, b1, w2, b2, None)),
        (ValueError, "w2", lambda: ops.ffn_forward(x, w1, b1, w1, b2)),
        (ValueError, "b1", lambda: ops.ffn_forward(x, w1, b2, w2, b2)),
        (ValueError, "hidden_pre", lambda: ops.ffn_backward(x, x, x, w1, w2)),
        (ValueError, "dy", lambda: ops.ffn_backward(np.zeros((4, 16), np.float32), x, np.zeros((4, 16), np.float32),
                                                    w1, w2)),
        (ValueError, "dy", lambda: ops.relu_backward(np.zeros(3, np.float32), np.zeros(4, np.float32))),
    ]
    for exc, name, fn in bad:
        with pytest.raises(exc, match=name):
            fn()


# ----- column_sum (bias gradients) -------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (127, 33), (128, 8), (129, 1000), (3, 300, 17)])
def test_column_sum_matches_float64(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    expected = ref.column_sum(x.astype(np.float64))
    np.testing.assert_allclose(ops.column_sum(x), expected, rtol=1e-5, atol=1e-5 * np.sqrt(x.size))
    out = rng.standard_normal(shape[-1]).astype(np.float32)
    want = out.astype(np.float64) + expected
    assert ops.column_sum(x, out=out, accumulate=True) is out
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * np.sqrt(x.size))


def test_column_sum_empty_rows_and_accumulate():
    out = np.ones(4, np.float32)
    ops.column_sum(np.zeros((0, 4), np.float32), out=out, accumulate=True)
    assert np.all(out == 1)
    assert np.all(ops.column_sum(np.zeros((0, 4), np.float32)) == 0)


def test_column_sum_bitwise_across_threads(threads):
    x = np.random.default_rng(0).standard_normal((4099, 257)).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(ops.column_sum(x).tobytes())
    assert results[0] == results[1] == results[2]


def test_column_sum_rejects_bad_input():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32"):
        ops.column_sum(x.astype(np.float64))
    with pytest.raises(ValueError, match="out must have shape"):
        ops.column_sum(x, out=np.ones(5, np.float32))
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        ops.column_sum(x, accumulate=True)
    with pytest.raises(ValueError, match="x must have at least 1 axis"):
        ops.column_sum(np.array(1.0, np.float32))
