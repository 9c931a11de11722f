"""A right operand packed once (`ops.pack_matrix`) and used by many products
(`ops.matmul_packed`, decoding's weights): bitwise `ops.matmul` on every SIMD
path and thread count, the twin's answer, and clear errors."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref

# (m, n, k): decoding's few rows, edges of the 6x16 / 12x32 tiles, k in one KC block and over several
# (fp32's KC is 256 or 512, AMX's 2048)
SHAPES = [(1, 1, 1), (16, 256, 256), (7, 33, 300), (13, 1000, 64), (64, 130, 1100), (200, 47, 520), (5, 9, 0),
          (9, 40, 4200)]


def rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("trans_b", [True, False])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_bitwise_matmul(simd, m, n, k, trans_b):
    rng = np.random.default_rng(m * 7 + n + k)
    a, bias, c = rand(rng, (m, k)), rand(rng, n), rand(rng, (m, n))
    b = rand(rng, (n, k) if trans_b else (k, n))
    p = ops.pack_matrix(b, trans_b=trans_b)
    assert p.shape == (k, n)
    for kw in (dict(), dict(bias=bias, activation="relu"), dict(bias=bias, activation="gelu"),
               dict(alpha=0.5, beta=1.0), dict(alpha=-2.0, beta=0.25, bias=bias)):
        want = ops.matmul(a, b, trans_b=trans_b, out=c.copy() if "beta" in kw else None, **kw)
        got = ops.matmul_packed(a, p, out=c.copy() if "beta" in kw else None, **kw)
        assert np.array_equal(got, want), kw
    twin = ref.matmul_packed(a.astype(np.float64), ref.pack_matrix(b.astype(np.float64), trans_b), bias=bias)
    np.testing.assert_allclose(ops.matmul_packed(a, p, bias=bias), twin, rtol=1e-4, atol=1e-4 * (1 + k ** 0.5))


@pytest.mark.parametrize("m,n,k", [(16, 512, 256), (3, 100, 700), (150, 64, 96)])
def test_bitwise_over_threads(simd, threads, m, n, k):
    rng = np.random.default_rng(5)
    a, b, bias = rand(rng, (m, k)), rand(rng, (n, k)), rand(rng, n)
    runs = []
    for nth in (1, 2, 3):
        threads(nth)
        p = ops.pack_matrix(b, trans_b=True)
        runs.append((p.data.tobytes(), ops.matmul_packed(a, p, bias=bias).tobytes()))
    assert runs[0] == runs[1] == runs[2]


def test_packed_copy_does_not_follow_b():
    rng = np.random.default_rng(1)
    a, b = rand(rng, (4, 8)), rand(rng, (8, 6))
    p = ops.pack_matrix(b)
    want = ops.matmul(a, b)
    b[:] = 0
    assert np.array_equal(ops.matmul_packed(a, p), want)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_repacking_into_the_same_memory(compute_dtype):
    """pack_matrix(reuse=p) packs into p when it fits (shape, compute_dtype,
    kernel layout): the bits of a fresh pack; otherwise it makes a new one."""
    rng = np.random.default_rng(2)
    a, b = rand(rng, (5, 300)), rand(rng, (40, 300))
    p = ops.pack_matrix(b, trans_b=True, compute_dtype=compute_dtype)
    data = p.data
    b2 = rand(rng, (40, 300))
    assert ops.pack_matrix(b2, trans_b=True, compute_dtype=compute_dtype, reuse=p) is p and p.data is data
    fresh = ops.pack_matrix(b2, trans_b=True, compute_dtype=compute_dtype)
    np.testing.assert_array_equal(p.data, fresh.data)
    np.testing.assert_array_equal(ops.matmul_packed(a, p),
                                  ops.matmul(a, b2, trans_b=True, compute_dtype=compute_dtype))
    other = "float32" if compute_dtype == "bfloat16" else "bfloat16"
    for b3, kwargs in [(rand(rng, (41, 300)), dict(trans_b=True)), (rand(rng, (40, 301)), dict(trans_b=True)),
                       (b2, dict(trans_b=True, compute_dtype=other))]:
        q = ops.pack_matrix(b3, **{"compute_dtype": compute_dtype, **kwargs}, reuse=p)
        assert q is not p and not np.shares_memory(q.data, p.data)
    with pytest.raises(TypeError, match="reuse must be a PackedMatrix"):
        ops.pack_matrix(b2, reuse=np.ones(3, np.float32))


def test_stale_layout_is_refused():
    levels = ff.simd_levels()
    if len(levels) < 2:
        pytest.skip("one SIMD level only: every packed matrix fits it")  # never on x86-64 (generic + avx2)
    before = ff.get_simd()
    try:
        ff.set_simd(levels[-1])
        p = ops.pack_matrix(np.ones((8, 40), np.float32))
        ff.set_simd("generic")
        with pytest.raises(ValueError, match="pack it again"):
            ops.matmul_packed(np.ones((2, 8), np.float32), p)
        with pytest.raises(ValueError, match="pack it again"):  # the model's calls check it too
            ff._C._linear_packed(np.ones((2, 8), np.float32), p, np.empty((2, 40), np.float32))
    finally:
        ff.set_simd(before)


def test_bad_input_names_the_argument():
    p = ops.pack_matrix(np.ones((8, 5), np.float32))
    a = np.ones((3, 8), np.float32)
    bad = [
        (TypeError, "b", lambda: ops.pack_matrix(np.ones((8, 5), np.float64))),
        (ValueError, "b", lambda: ops.pack_matrix(np.ones(8, np.float32))),
        (TypeError, "trans_b", lambda: ops.pack_matrix(np.ones((8, 5), np.float32), trans_b="no")),
        (TypeError, "b", lambda: ops.matmul_packed(a, np.ones((8, 5), np.float32))),
        (TypeError, "b", lambda: ops.matmul_packed(a, None)),
        (ValueError, "inner dimensions", lambda: ops.matmul_packed(np.ones((3, 7), np.float32), p)),
        (TypeError, "a", lambda: ops.matmul_packed(a.astype(np.float64), p)),
        (ValueError, "bias", lambda: ops.matmul_packed(a, p, bias=np.ones(4, np.float32))),
        (ValueError, "out", lambda: ops.matmul_packed(a, p, out=np.ones((3, 4), np.float32))),
        (ValueError, "beta", lambda: ops.matmul_packed(a, p, beta=1.0)),
        (ValueError, "activation", lambda: ops.matmul_packed(a, p, activation="tanh")),
        (ValueError, "alpha", lambda: ops.matmul_packed(a, p, alpha=float("inf"))),
    ]
    for exc, name, fn in bad:
        with pytest.raises(exc, match=name):
            fn()


@pytest.mark.parametrize("trans_b", [True, False])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_bf16_bitwise_matmul_bf16(bf16_simd, m, n, k, trans_b):
    """Packed with compute_dtype="bfloat16": bitwise matmul(..., compute_dtype="bfloat16"),
    the bf16 twin's answer, and not the fp32 products'."""
    rng = np.random.default_rng(m * 5 + n + k)
    a, bias, c = rand(rng, (m, k)), rand(rng, n), rand(rng, (m, n))
    b = rand(rng, (n, k) if trans_b else (k, n))
    p = ops.pack_matrix(b, trans_b=trans_b, compute_dtype="bfloat16")
    assert p.shape == (k, n) and p.compute_dtype == "bfloat16"
    for kw in (dict(), dict(bias=bias, activation="gelu"), dict(alpha=-2.0, beta=0.25, bias=bias)):
        want = ops.matmul(a, b, trans_b=trans_b, out=c.copy() if "beta" in kw else None, compute_dtype="bfloat16",
                          **kw)
        got = ops.matmul_packed(a, p, out=c.copy() if "beta" in kw else None, **kw)
        assert np.array_equal(got, want), kw
    twin = ref.matmul_packed(a.astype(np.float64), ref.pack_matrix(b.astype(np.float64), trans_b,
                                                                   compute_dtype="bfloat16"))
    np.testing.assert_allclose(ops.matmul_packed(a, p), twin, rtol=1e-5, atol=1e-5 * (1 + k ** 0.5))


def test_bf16_and_fp32_packings_are_told_apart():
    b = np.random.default_rng(2).standard_normal((64, 40)).astype(np.float32)
    fp32, bf16 = ops.pack_matrix(b), ops.pack_matrix(b, compute_dtype="bfloat16")
    assert fp32.layout != bf16.layout and fp32.compute_dtype == "float32"
    with pytest.raises(ValueError, match="compute_dtype"):
        ops.pack_matrix(b, compute_dtype="half")
    with pytest.raises(TypeError, match="compute_dtype"):
        ops.pack_matrix(b, compute_dtype=None)
