"""Optimizer updates, gradient norm and clipping against their NumPy twins."""
import numpy as np
import pytest

from fastformer import ops
from fastformer.reference import optim as ref

SIZES = [1, 7, 16, 17, 1000, 65536 + 3, 300_007]


def buffers(n, k, seed=0):
    rng = np.random.default_rng(seed + n)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for _ in range(k)]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("decoupled, weight_decay", [(False, 0.0), (False, 0.01), (True, 0.01)])
def test_adam_matches_reference(simd, n, decoupled, weight_decay):
    p, g = buffers(n, 2)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    state32 = [p.copy(), m.copy(), v.copy()]
    state64 = [a.astype(np.float64) for a in (p, m, v)]
    for step in range(1, 4):
        ops.adam_step(p, g, m, v, step, 1e-2, 0.9, 0.999, 1e-8, weight_decay, decoupled)
        ref.adam_step(state32[0], g, state32[1], state32[2], step, 1e-2, 0.9, 0.999, 1e-8, weight_decay, decoupled)
        ref.adam_step(state64[0], g.astype(np.float64), state64[1], state64[2], step, 1e-2, 0.9, 0.999, 1e-8,
                      weight_decay, decoupled)
        g = g[::-1].copy()
    # The kernel rounds exactly where the float32 twin does (no FMA), so every path gives its bits ...
    for got, want in zip((p, m, v), state32):
        np.testing.assert_array_equal(got, want)
    # ... which are float32 roundings of the float64 update.
    np.testing.assert_allclose(p, state64[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, dampening=0.1, weight_decay=1e-2),
                                dict(momentum=0.8, nesterov=True, weight_decay=1e-2)])
def test_sgd_matches_reference(n, kw):
    p, g = buffers(n, 2, 1)
    buf = np.zeros(n, np.float32)
    p32, buf32 = p.copy(), buf.copy()
    p64, buf64 = p.astype(np.float64), buf.astype(np.float64)
    for step in range(1, 4):
        ops.sgd_step(p, g, buf, step, 0.1, **kw)
        ref.sgd_step(p32, g, buf32, step, 0.1, **kw)
        ref.sgd_step(p64, g.astype(np.float64), buf64, step, 0.1, **kw)
    np.testing.assert_array_equal(p, p32)
    np.testing.assert_array_equal(buf, buf32)
    np.testing.assert_allclose(p, p64, rtol=1e-5, atol=1e-6)


def test_sgd_without_momentum_buffer():
    p, g = buffers(10, 2)
    p2 = p.copy()
    ops.sgd_step(p, g, None, 1, 0.5)
    ref.sgd_step(p2, g, None, 1, 0.5)
    np.testing.assert_array_equal(p, p2)


@pytest.mark.parametrize("n", SIZES + [3 * 16384 + 5])
def test_grad_norm_and_clip(simd, n):
    (g,) = buffers(n, 1, 2)
    want = ref.grad_norm(g.astype(np.float64))
    assert ops.grad_norm(g) == pytest.approx(want, rel=1e-12)
    for max_norm in (want * 2, want / 3):
        g1, g2 = g.copy(), g.copy()
        assert ops.clip_grad_norm(g1, max_norm) == pytest.approx(ref.clip_grad_norm(g2, max_norm), rel=1e-12)
        np.testing.assert_array_equal(g1, g2)


def test_bitwise_across_threads(simd, threads):
    n = 1_000_003
    p0, g = buffers(n, 2, 3)
    runs = []
    for t in (1, 2, 3):
        threads(t)
        p, m, v = p0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
        ops.adam_step(p, g, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.01, True)
        g2 = g.copy()
        runs.append((p.tobytes(), m.tobytes(), v.tobytes(), ops.grad_norm(g), ops.clip_grad_norm(g2, 1.0), g2.tobytes()))
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda a: ops.adam_step(a, a, a, a[:3], 1), ValueError, "exp_avg_sq has shape"),
        (lambda a: ops.adam_step(a, a, a, a, 0), ValueError, "step must be >= 1"),
        (lambda a: ops.adam_step(a, a.astype(np.float64), a, a, 1), TypeError, "grad must have dtype float32"),
        (lambda a: ops.adam_step(a.reshape(2, 2), a, a, a, 1), ValueError, "param must be 1-D"),
        (lambda a: ops.adam_step(a, a, a, a, 1, lr="x"), TypeError, "lr must be a real number"),
        (lambda a: ops.sgd_step(a, a, None, 1, momentum=0.9), TypeError, "momentum_buffer must be a numpy"),
        (lambda a: ops.sgd_step(a, a, a, 1.0), TypeError, "step must be an int"),
        (lambda a: ops.grad_norm([1.0]), TypeError, "grad must be a numpy.ndarray"),
        (lambda a: ops.clip_grad_norm(np.ones(8, np.float32)[::2], 1.0), ValueError, "grad must be C-contiguous"),
    ],
)
def test_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(np.ones(4, np.float32))
