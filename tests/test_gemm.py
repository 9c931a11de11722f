"""fastformer.ops.matmul / bmm (csrc/gemm) against a float64 NumPy oracle
(fastformer.reference.matmul / bmm), on every SIMD path this CPU has."""
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastformer
from fastformer import ops
from fastformer import reference as ref

LEVELS = ["generic", "avx2", "avx512"]
AVAILABLE = LEVELS[: LEVELS.index(fastformer._C.simd_detected()) + 1]
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(params=AVAILABLE)
def simd(request):
    before = fastformer.get_simd()
    assert fastformer.set_simd(request.param) == request.param
    yield request.param
    fastformer.set_simd(before)


def _operands(rng, m, n, k, ta, tb, batch=None):
    pre = () if batch is None else (batch,)
    a = rng.standard_normal(pre + ((k, m) if ta else (m, k)), dtype=np.float32)
    b = rng.standard_normal(pre + ((n, k) if tb else (k, n)), dtype=np.float32)
    return a, b


def _check(a, b, ta=False, tb=False, alpha=1.0, beta=0.0, c=None, bias=None, activation=None, batched=False):
    """Run the kernel and the float64 oracle; assert agreement to float32
    rounding, scaled by sqrt(k) and by the size of what was summed."""
    f, twin = (ops.bmm, ref.bmm) if batched else (ops.matmul, ref.matmul)
    out = None if c is None else c.copy()
    got = f(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=out, bias=bias, activation=activation)
    if out is not None:
        assert got is out
    d = lambda x: None if x is None else x.astype(np.float64)  # noqa: E731
    want = twin(d(a), d(b), ta, tb, alpha, beta, d(c), d(bias), activation)
    assert got.dtype == np.float32 and got.shape == want.shape
    # Size of the terms: |alpha| |op(a)| @ |op(b)| + |beta c| + |bias|.
    mag = abs(alpha) * twin(np.abs(d(a)), np.abs(d(b)), ta, tb)
    if beta != 0:
        mag = mag + abs(beta) * np.abs(d(c))
    if bias is not None:
        mag = mag + np.abs(d(bias))
    k = (a.shape[-2] if ta else a.shape[-1])
    tol = 8 * EPS32 * (np.sqrt(k) + 2) * mag + 1e-30
    bad = ~(np.abs(got - want) <= tol)
    assert not bad.any(), f"{bad.sum()} elements off, worst {np.abs(got - want)[bad].max()}"
    return got


# Sizes around every blocking edge of every kernel: MR (6, 6, 12), NR (8, 16, 32),
# MC (144), KC (256/512), NC (4080/4096) -- kept small in the other dimensions.
SHAPES = [
    (1, 1, 1), (2, 3, 5), (7, 11, 13), (17, 31, 37), (53, 59, 61),
    (3, 4, 2), (5, 7, 3), (6, 9, 4), (6, 16, 8), (11, 15, 9), (12, 32, 10), (13, 33, 12), (25, 65, 17),
    (143, 40, 9), (144, 31, 20), (145, 33, 7), (289, 17, 5),
    (9, 20, 255), (10, 17, 256), (7, 33, 257), (5, 9, 513), (4, 3, 1000),
    (3, 4079, 5), (2, 4081, 6), (3, 4095, 5), (2, 4096, 3), (5, 4097, 4), (1, 8193, 2),
    (1000, 3, 5), (2000, 1, 7), (3, 1000, 7), (1, 1, 3000),
]


@pytest.mark.parametrize("m,n,k", SHAPES)
def test_shapes_all_transposes(simd, m, n, k):
    rng = np.random.default_rng(m * 1000003 + n * 1009 + k)
    for ta in (False, True):
        for tb in (False, True):
            a, b = _operands(rng, m, n, k, ta, tb)
            _check(a, b, ta, tb)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (13, 35, 300), (150, 70, 33), (40, 4100, 3)])
@pytest.mark.parametrize("activation", [None, "relu", "gelu"])
def test_epilogue(simd, m, n, k, activation):
    rng = np.random.default_rng(7)
    for ta, tb in ((False, False), (False, True), (True, False), (True, True)):
        a, b = _operands(rng, m, n, k, ta, tb)
        c = rng.standard_normal((m, n), dtype=np.float32)
        bias = rng.standard_normal(n, dtype=np.float32)
        for alpha, beta, bb in ((1.0, 0.0, None), (0.5, 1.0, None), (-1.5, 0.25, bias), (2.0, 0.0, bias)):
            _check(a, b, ta, tb, alpha, beta, c if beta else None, bb, activation)


def test_beta_zero_never_reads_out(simd):
    rng = np.random.default_rng(3)
    for m, n, k in ((5, 7, 3), (150, 70, 600), (13, 33, 1)):
        a, b = _operands(rng, m, n, k, False, False)
        out = np.full((m, n), np.nan, dtype=np.float32)
        ops.matmul(a, b, out=out)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_accumulate_gradients(simd):
    """beta = 1, as gradient accumulation uses it: two products summed into out."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 40), dtype=np.float32)
    dy = rng.standard_normal((300, 50), dtype=np.float32)
    g = np.zeros((50, 40), dtype=np.float32)
    ops.matmul(dy, x, trans_a=True, beta=1.0, out=g)
    ops.matmul(dy, x, trans_a=True, beta=1.0, out=g)
    np.testing.assert_allclose(g, 2 * (dy.T.astype(np.float64) @ x), rtol=1e-4, atol=1e-3)


def test_k_zero(simd):
    a = np.zeros((3, 0), np.float32)
    b = np.zeros((0, 4), np.float32)
    np.testing.assert_array_equal(ops.matmul(a, b), np.zeros((3, 4)))
    c = np.ones((3, 4), np.float32)
    bias = np.arange(4, dtype=np.float32) - 2
    ops.matmul(a, b, beta=2.0, out=c, bias=bias, activation="relu")
    np.testing.assert_array_equal(c, np.maximum(2 + bias, 0)[None, :].repeat(3, 0))
    assert ops.matmul(np.zeros((0, 5), np.float32), np.zeros((5, 2), np.float32)).shape == (0, 2)


def test_gelu_epilogue_accuracy(simd):
    """The in-register GELU (vectorised erfc) against the float64 twin over its
    whole range, on full tiles and on edge tiles."""
    x = np.linspace(-16, 16, 64 * 1001, dtype=np.float32)
    with np.errstate(all="ignore"):
        want = ref.gelu_forward(x.astype(np.float64))
    eye = np.eye(64, dtype=np.float32)
    full = ops.matmul(x.reshape(-1, 64), eye, activation="gelu").reshape(-1)
    edge = ops.matmul(x.reshape(-1, 1), np.ones((1, 1), np.float32), activation="gelu").reshape(-1)
    for got in (full, edge):
        assert np.all(np.abs(got - want) <= 4 * EPS32 * np.abs(x) + 1e-37)
    special = np.array([[np.nan], [np.inf], [0.0]], np.float32)
    got = ops.matmul(special, np.ones((1, 1), np.float32), activation="gelu").ravel()
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == 0


def test_gelu_op_gives_the_epilogues_bits(simd):
    """One GELU: ops.gelu_forward and the GEMM's fused epilogue agree bitwise
    on every path (odd length: the op's vector tail runs)."""
    x = np.random.default_rng(3).standard_normal((37, 29)).astype(np.float32) * 4
    eye = np.eye(29, dtype=np.float32)
    np.testing.assert_array_equal(ops.gelu_forward(x), ops.matmul(x, eye, activation="gelu"))


def test_relu_keeps_nan(simd):
    a = np.array([[np.nan, 1.0]], np.float32)
    b = np.ones((2, 3), np.float32)
    assert np.isnan(ops.matmul(a, b, activation="relu")).all()


@pytest.mark.parametrize("batch,m,n,k", [(1, 5, 7, 3), (3, 33, 17, 65), (8, 128, 64, 128), (5, 13, 40, 300),
                                         (2, 200, 150, 70)])
def test_bmm(simd, batch, m, n, k):
    rng = np.random.default_rng(batch + m)
    for ta in (False, True):
        for tb in (False, True):
            a, b = _operands(rng, m, n, k, ta, tb, batch)
            _check(a, b, ta, tb, batched=True)
    c = rng.standard_normal((batch, m, n), dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    a, b = _operands(rng, m, n, k, False, True, batch)
    _check(a, b, False, True, 0.125, 0.5, c, bias, "gelu", batched=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 70), n=st.integers(1, 90), k=st.integers(1, 300), ta=st.booleans(), tb=st.booleans(),
       alpha=st.sampled_from([1.0, -0.5, 3.0]), beta=st.sampled_from([0.0, 1.0, -2.0]),
       use_bias=st.booleans(), activation=st.sampled_from([None, "relu", "gelu"]), seed=st.integers(0, 2**31))
def test_hypothesis(simd, m, n, k, ta, tb, alpha, beta, use_bias, activation, seed):
    rng = np.random.default_rng(seed)
    a, b = _operands(rng, m, n, k, ta, tb)
    c = rng.standard_normal((m, n), dtype=np.float32) if beta else None
    bias = rng.standard_normal(n, dtype=np.float32) if use_bias else None
    _check(a, b, ta, tb, alpha, beta, c, bias, activation)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 9), m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 80),
       ta=st.booleans(), tb=st.booleans(), seed=st.integers(0, 2**31))
def test_hypothesis_bmm(simd, batch, m, n, k, ta, tb, seed):
    rng = np.random.default_rng(seed)
    a, b = _operands(rng, m, n, k, ta, tb, batch)
    _check(a, b, ta, tb, batched=True)


@pytest.mark.parametrize("m,n,k,ta,tb", [(300, 500, 700, False, False), (531, 257, 300, False, True),
                                         (37, 4200, 40, True, False), (1000, 40, 600, True, True)])
def test_bitwise_identical_for_any_thread_count(simd, threads, m, n, k, ta, tb):
    rng = np.random.default_rng(11)
    a, b = _operands(rng, m, n, k, ta, tb)
    bias = rng.standard_normal(n, dtype=np.float32)
    c = rng.standard_normal((m, n), dtype=np.float32)
    results = []
    for t in (1, 2, 3):
        threads(t)
        results.append(ops.matmul(a, b, ta, tb, alpha=0.5, beta=0.5, out=c.copy(), bias=bias,
                                  activation="gelu").tobytes())
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("batch,m,n,k", [(2, 300, 200, 500), (7, 128, 64, 128), (64, 33, 17, 200)])
def test_bmm_bitwise_identical_for_any_thread_count(simd, threads, batch, m, n, k):
    rng = np.random.default_rng(12)
    a, b = _operands(rng, m, n, k, False, True, batch)
    results = []
    for t in (1, 2, 3):
        threads(t)
        results.append(ops.bmm(a, b, trans_b=True).tobytes())
    assert results[0] == results[1] == results[2]
    # An item of the batch is the same product as a lone matmul.
    assert ops.bmm(a, b, trans_b=True)[1].tobytes() == ops.matmul(a[1], b[1], trans_b=True).tobytes()


def test_concurrent_python_threads(threads):
    """Two Python threads in matmul at once (GIL released) each get their own
    pack buffers and the right answer."""
    threads(2)
    rng = np.random.default_rng(5)
    jobs = []
    for i in range(2):
        a, b = _operands(rng, 200 + 37 * i, 300 - 41 * i, 400 + 13 * i, bool(i), False)
        jobs.append((a, b, bool(i), ops.matmul(a, b, trans_a=bool(i)).tobytes()))
    errors = []

    def worker(a, b, ta, want):
        try:
            for _ in range(30):
                if ops.matmul(a, b, trans_a=ta).tobytes() != want:
                    errors.append("mismatch")
                    return
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=job) for job in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def test_reference_float32_and_float64():
    rng = np.random.default_rng(6)
    a, b = _operands(rng, 5, 6, 7, False, True)
    for dt in (np.float32, np.float64):
        y = ref.matmul(a.astype(dt), b.astype(dt), trans_b=True, bias=np.ones(6, dt), activation="relu")
        assert y.dtype == dt
        np.testing.assert_allclose(y, np.maximum(a.astype(np.float64) @ b.T.astype(np.float64) + 1, 0),
                                   rtol=1e-5, atol=1e-5)
    assert ref.bmm(a[None], b[None], trans_b=True).shape == (1, 5, 6)


def test_fma_peak():
    for level in AVAILABLE:
        assert ops.fma_peak(level, 0.01, 1) > 0
    with pytest.raises(ValueError):
        ops.fma_peak("sse9", 0.01)
    with pytest.raises(TypeError):
        ops.fma_peak(3, 0.01)


F = np.float32


@pytest.mark.parametrize("call,err", [
    (lambda: ops.matmul([[1.0]], np.ones((1, 1), F)), TypeError),
    (lambda: ops.matmul(np.ones((2, 2)), np.ones((2, 2), F)), TypeError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), np.int32)), TypeError),
    (lambda: ops.matmul(np.ones(2, F), np.ones((2, 2), F)), ValueError),
    (lambda: ops.matmul(np.ones((2, 2, 2), F), np.ones((2, 2), F)), ValueError),
    (lambda: ops.bmm(np.ones((2, 2), F), np.ones((2, 2), F)), ValueError),
    (lambda: ops.bmm(np.ones((2, 2, 2), F), np.ones((3, 2, 2), F)), ValueError),
    (lambda: ops.matmul(np.ones((2, 3), F), np.ones((2, 3), F)), ValueError),
    (lambda: ops.matmul(np.ones((2, 3), F), np.ones((2, 3), F), trans_a=True, trans_b=True), ValueError),
    (lambda: ops.matmul(np.ones((4, 4), F)[:, ::2], np.ones((2, 2), F)), ValueError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), activation="tanh"), ValueError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), activation=1), TypeError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), beta=1.0), ValueError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), out=np.ones((2, 3), F)), ValueError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), out=np.ones((2, 2))), TypeError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), out=np.ones((4, 4), F)[::2, ::2]), ValueError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), bias=np.ones(3, F)), ValueError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), bias=np.ones(2)), TypeError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), alpha="1"), TypeError),
    (lambda: ops.matmul(np.ones((2, 2), F), np.ones((2, 2), F), trans_a="yes"), TypeError),
])
def test_bad_input_raises(call, err):
    with pytest.raises(err):
        call()


def test_out_not_writeable_or_overlapping():
    a = np.ones((2, 2), F)
    ro = np.zeros((2, 2), F)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        ops.matmul(a, a, out=ro)
    with pytest.raises(ValueError):
        ops.matmul(a, np.ones((2, 2), F), out=a)
