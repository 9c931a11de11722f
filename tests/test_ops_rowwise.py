"""Softmax, LayerNorm, cross-entropy, embedding and dropout kernels against
their float64 NumPy twins, on every SIMD path, bitwise across thread counts,
and with bad input."""
import numpy as np
import pytest

import fastformer as ff
from fastformer import ops
from fastformer import reference as ref

ROWS = [1, 7, 1000]
WIDTHS = [1, 5, 8, 31, 512, 8000]
SHAPES = [(r, n) for r in ROWS for n in WIDTHS if r * n <= 1_000_000] + [(2, 3, 5, 17)]


def f64(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


def rand(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def bitwise_over_threads(threads, fn):
    """fn() returns a tuple of arrays/floats; assert 1, 2, 3 threads give the same bytes."""
    runs = []
    for n in (1, 2, 3):
        threads(n)
        runs.append([np.asarray(v).tobytes() for v in fn()])
    assert runs[0] == runs[1] == runs[2]


# ---------------------------------------------------------------- softmax


def softmax_masks(rng, shape):
    bmask = rng.random(shape) < 0.3
    bmask.reshape(-1, shape[-1])[0] = True  # a fully masked row
    return [None, bmask, np.where(bmask, -np.inf, rng.standard_normal(shape)).astype(np.float32)]


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_matches_float64(simd, shape):
    rng = np.random.default_rng(sum(shape))
    x = rand(rng, shape, 3.0)
    dy = rand(rng, shape)
    for mask in softmax_masks(rng, shape):
        y = ops.softmax_forward(x, mask)
        m64 = mask.astype(np.float64) if mask is not None and mask.dtype == np.float32 else mask
        y64 = ref.softmax_forward(x.astype(np.float64), m64)
        np.testing.assert_allclose(y, y64, rtol=2e-6, atol=1e-7)
        if mask is not None and mask.dtype == bool:
            assert not y.reshape(-1, shape[-1])[0].any()  # fully masked row: 0, not NaN
        dx = ops.softmax_backward(dy, y)
        dx64 = ref.softmax_backward(dy.astype(np.float64), y.astype(np.float64))
        np.testing.assert_allclose(dx, dx64, rtol=1e-5, atol=2e-6 * np.abs(dx64).max() + 1e-12)


@pytest.mark.parametrize("mask_shape", [(4, 1, 1, 33), (1, 33), (33,), (3, 33, 1), (4, 3, 1, 1), ()])
def test_softmax_broadcast_masks(simd, mask_shape):
    rng = np.random.default_rng(3)
    x = rand(rng, (4, 3, 33, 33), 2.0)
    mask = rng.random(mask_shape) < 0.4
    mask = np.asarray(mask)
    np.testing.assert_allclose(ops.softmax_forward(x, mask), ref.softmax_forward(x.astype(np.float64), mask),
                               rtol=2e-6, atol=1e-7)
    add = np.where(mask, -np.inf, 0.5).astype(np.float32)
    np.testing.assert_allclose(ops.softmax_forward(x, add),
                               ref.softmax_forward(x.astype(np.float64), add.astype(np.float64)),
                               rtol=2e-6, atol=1e-7)


def test_softmax_causal_mask(simd):
    rng = np.random.default_rng(4)
    x = rand(rng, (2, 8, 37, 37))
    causal = np.triu(np.ones((37, 37), bool), 1)
    y = ops.softmax_forward(x, causal)
    np.testing.assert_allclose(y, ref.softmax_forward(x.astype(np.float64), causal), rtol=2e-6, atol=1e-7)
    assert (y[..., causal] == 0).all()


def test_softmax_bitwise_across_threads(simd, threads):
    rng = np.random.default_rng(5)
    x = rand(rng, (300, 257))
    dy = rand(rng, (300, 257))
    mask = rng.random((300, 257)) < 0.2

    def run():
        y = ops.softmax_forward(x, mask)
        return y, ops.softmax_backward(dy, y)

    bitwise_over_threads(threads, run)


# ---------------------------------------------------------------- layer norm


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_residual", [False, True])
def test_layer_norm_matches_float64(simd, shape, with_residual):
    rng = np.random.default_rng(sum(shape) + with_residual)
    d = shape[-1]
    x = rand(rng, shape, 2.0) + 1.5
    r = rand(rng, shape) if with_residual else None
    w, b = rand(rng, d), rand(rng, d)
    dy = rand(rng, shape)
    y, mean, rstd = ops.layer_norm_forward(x, w, b, 1e-5, r)
    y64, mean64, rstd64 = ref.layer_norm_forward(*f64(x, w, b), 1e-5, *f64(r))
    assert mean.shape == rstd.shape == shape[:-1]
    np.testing.assert_allclose(mean, mean64, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rstd, rstd64, rtol=1e-5)
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-5 * np.abs(y64).max())
    dx, dw, db = ops.layer_norm_backward(dy, x, w, mean, rstd, r)
    dx64, dw64, db64 = ref.layer_norm_backward(*f64(dy, x, w, mean64, rstd64), *f64(r))
    for got, want in ((dx, dx64), (dw, dw64), (db, db64)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * (np.abs(want).max() + 1e-30))


def test_layer_norm_bitwise_across_threads(simd, threads):
    rng = np.random.default_rng(6)
    shape = (1003, 96)  # rows not a multiple of the row chunk
    x, r, dy = rand(rng, shape), rand(rng, shape), rand(rng, shape)
    w, b = rand(rng, 96), rand(rng, 96)

    def run():
        y, m, s = ops.layer_norm_forward(x, w, b, 1e-5, r)
        return (y, m, s) + ops.layer_norm_backward(dy, x, w, m, s, r)

    bitwise_over_threads(threads, run)


# ---------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_matches_float64(simd, shape, eps):
    rng = np.random.default_rng(sum(shape))
    V = shape[-1]
    logits = rand(rng, shape, 4.0)
    targets = rng.integers(0, V, shape[:-1]).astype(np.int32)
    if targets.size > 1:
        targets.reshape(-1)[::3] = -100
    loss, dl = ops.cross_entropy(logits, targets, -100, eps)
    loss64, dl64 = ref.cross_entropy(logits.astype(np.float64), targets, -100, eps)
    assert isinstance(loss, float)
    assert loss == pytest.approx(loss64, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(dl, dl64, rtol=1e-5, atol=1e-6 * np.abs(dl64).max())


@pytest.mark.parametrize("module", [ops, ref], ids=["compiled", "reference"])
def test_cross_entropy_in_place_is_bitwise_the_fresh_gradient(simd, module):
    """out=logits (the trainer's way: no second (B, T, V) array) gives the
    loss and the bits of a fresh dlogits (every x[j] is read before dl[j] is
    written, x[t] included); a wrong out is refused."""
    rng = np.random.default_rng(5)
    logits = rand(rng, (3, 7, 50), 4.0)
    targets = rng.integers(0, 50, (3, 7))
    targets[0, 2] = -100
    loss, fresh = module.cross_entropy(logits, targets, -100, 0.1)
    buf = logits.copy()
    loss2, same = module.cross_entropy(buf, targets, -100, 0.1, out=buf)
    assert same is buf and loss2 == loss
    np.testing.assert_array_equal(buf, fresh)
    with pytest.raises((ValueError, TypeError), match="out"):
        module.cross_entropy(logits, targets, out=np.empty((3, 7, 49), np.float32))


def test_cross_entropy_matches_torch(torch):
    rng = np.random.default_rng(8)
    logits = rand(rng, (37, 11), 3.0)
    targets = rng.integers(0, 11, 37)
    targets[::5] = 3  # ignore_index=3
    lt = torch.tensor(logits, requires_grad=True)
    want = torch.nn.functional.cross_entropy(lt, torch.tensor(targets), ignore_index=3, label_smoothing=0.2)
    want.backward()
    loss, dl = ops.cross_entropy(logits, targets, 3, 0.2)
    assert loss == pytest.approx(want.item(), rel=1e-5)
    np.testing.assert_allclose(dl, lt.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_cross_entropy_all_ignored():
    logits = np.ones((4, 6), np.float32)
    loss, dl = ops.cross_entropy(logits, np.full(4, -100), -100, 0.1)
    loss_ref, dl_ref = ref.cross_entropy(logits, np.full(4, -100), -100, 0.1)
    assert np.isnan(loss) and np.isnan(loss_ref)
    assert (dl == 0).all() and (dl_ref == 0).all()


def test_cross_entropy_normalizer(simd):
    """normalizer=N divides the summed loss by N (a micro-batch's share of a
    step's mean), its gradient too; N = the count of targets is the default's
    bits; a batch with every target ignored then gives 0, not nan."""
    rng = np.random.default_rng(4)
    logits = rand(rng, (37, 130), 2.0)
    targets = rng.integers(0, 130, 37)
    targets[::5] = -100
    n = int((targets != -100).sum())
    default = ops.cross_entropy(logits, targets, -100, 0.1)
    same = ops.cross_entropy(logits, targets, -100, 0.1, normalizer=n)
    assert same[0] == default[0]
    np.testing.assert_array_equal(same[1], default[1])
    loss, dl = ops.cross_entropy(logits, targets, -100, 0.1, normalizer=100)
    loss64, dl64 = ref.cross_entropy(logits.astype(np.float64), targets, -100, 0.1, normalizer=100)
    assert abs(loss - default[0] * n / 100) <= 1e-12 * abs(loss) and abs(loss - loss64) <= 1e-6 * abs(loss64)
    np.testing.assert_allclose(dl, dl64, rtol=1e-4, atol=1e-9)
    for module in (ops, ref):
        assert module.cross_entropy(logits, np.full(37, -100), -100, 0.1, normalizer=8)[0] == 0.0
        for bad, error in [(0, ValueError), (-1.0, ValueError), (float("inf"), ValueError), ("2", TypeError),
                           (True, TypeError)]:
            with pytest.raises(error, match="normalizer"):
                module.cross_entropy(logits, targets, -100, 0.1, normalizer=bad)


def test_cross_entropy_bitwise_across_threads(simd, threads):
    rng = np.random.default_rng(9)
    logits = rand(rng, (301, 1001), 3.0)
    targets = rng.integers(0, 1001, 301)
    targets[::7] = -100
    bitwise_over_threads(threads, lambda: ops.cross_entropy(logits, targets, -100, 0.1))


# ---------------------------------------------------------------- embedding


@pytest.mark.parametrize("B, T, V, d", [(1, 1, 1, 1), (2, 7, 5, 8), (3, 31, 10, 31), (4, 100, 13, 512)])
def test_embedding_matches_reference_bitwise(simd, B, T, V, d):
    rng = np.random.default_rng(B * T + d)
    ids = rng.integers(0, V, (B, T)).astype(np.int16)  # few ids: many repeats
    weight = rand(rng, (V, d))
    pos = ref.sinusoidal_positions(T + 5, d)
    y = ops.embedding_forward(ids, weight, pos)
    np.testing.assert_array_equal(y, ref.embedding_forward(ids, weight, pos))  # same float32 roundings
    y64 = ref.embedding_forward(ids, weight.astype(np.float64), pos.astype(np.float64))
    np.testing.assert_allclose(y, y64, rtol=1e-6, atol=1e-6)
    dx = rand(rng, (B, T, d))
    dw = ops.embedding_backward(dx, ids, V + 2)  # two rows never used: zero
    np.testing.assert_array_equal(dw, ref.embedding_backward(dx, ids, V + 2))  # same summation order
    dw64 = ref.embedding_backward(dx.astype(np.float64), ids, V + 2)
    np.testing.assert_allclose(dw, dw64, rtol=1e-5, atol=1e-5 * np.abs(dw64).max())
    assert not dw[V:].any()


def test_embedding_bitwise_across_threads(simd, threads):
    rng = np.random.default_rng(10)
    ids = rng.integers(0, 50, (8, 300))
    dx = rand(rng, (8, 300, 64))
    weight = rand(rng, (50, 64))
    pos = ref.sinusoidal_positions(300, 64)
    bitwise_over_threads(threads, lambda: (ops.embedding_forward(ids, weight, pos), ops.embedding_backward(dx, ids, 50)))


# ---------------------------------------------------------------- dropout


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (1000, 31), (4096, 512)])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.999, 1.0])
def test_dropout_bit_identical_to_reference(simd, shape, p):
    seed, step, site = 0x123456789ABC, 7, ref.dropout_site(2, 3, 4)
    np.testing.assert_array_equal(ops.dropout_mask(shape, p, seed, step, site),
                                  ref.dropout_mask(shape, p, seed, step, site))
    x = rand(np.random.default_rng(0), shape)
    y = ops.dropout_forward(x, p, seed, step, site)
    np.testing.assert_array_equal(y, ref.dropout_forward(x, p, seed, step, site))
    np.testing.assert_array_equal(ops.dropout_backward(x, p, seed, step, site),
                                  ref.dropout_backward(x, p, seed, step, site))


def test_dropout_counter_fields():
    # Elements past 2^34 would use counter word 1; check the key's high word and the 32-bit wrap of step/site.
    shape = (37,)
    for seed, step, site in [(2**64 - 1, 2**32 + 5, 0), (2**32, 0, 2**32 + 1)]:
        np.testing.assert_array_equal(ops.dropout_mask(shape, 0.5, seed, step, site),
                                      ref.dropout_mask(shape, 0.5, seed, step & 0xFFFFFFFF, site & 0xFFFFFFFF))


def test_dropout_rate_and_scale():
    x = np.ones((1000, 1000), np.float32)
    for p in (0.1, 0.5):
        y = ops.dropout_forward(x, p, 42, 1, 0)
        kept = y != 0
        # binomial: 5 standard deviations
        assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / x.size)
        assert (y[kept] == np.float32(1 / (1 - p))).all()
    a = ops.dropout_mask((1000,), 0.5, 42, 1, 0)
    assert not np.array_equal(a, ops.dropout_mask((1000,), 0.5, 42, 2, 0))  # another step, another mask
    assert not np.array_equal(a, ops.dropout_mask((1000,), 0.5, 42, 1, 1))  # another site, another mask


def test_dropout_in_place_and_across_threads(simd, threads):
    x = rand(np.random.default_rng(1), (999, 77))
    want = ref.dropout_forward(x, 0.3, 5, 6, 7)
    bitwise_over_threads(threads, lambda: (ops.dropout_forward(x, 0.3, 5, 6, 7), ops.dropout_mask(x.shape, 0.3, 5, 6, 7)))
    x2 = x.copy()
    assert ops.dropout_forward(x2, 0.3, 5, 6, 7, out=x2) is x2
    np.testing.assert_array_equal(x2, want)


# ---------------------------------------------------------------- bad input

F = np.ones((4, 8), np.float32)
W = np.ones(8, np.float32)
MS = np.ones(4, np.float32)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ops.softmax_forward(F.tolist()), TypeError, "x must be a numpy.ndarray"),
        (lambda: ops.softmax_forward(F.astype(np.float64)), TypeError, "x must have dtype float32"),
        (lambda: ops.softmax_forward(F[:, ::2]), ValueError, "x must be C-contiguous"),
        (lambda: ops.softmax_forward(F, np.ones((4, 7), bool)), ValueError, "mask of shape"),
        (lambda: ops.softmax_forward(F, np.ones((4, 8), np.int32)), TypeError, "mask must have dtype"),
        (lambda: ops.softmax_forward(F, [[True]]), TypeError, "mask must be None or a numpy.ndarray"),
        (lambda: ops.softmax_backward(F, F[:2]), ValueError, "dy has shape"),
        (lambda: ops.layer_norm_forward(F, W[:4], W), ValueError, "weight must have shape"),
        (lambda: ops.layer_norm_forward(F, W, W.astype(np.float64)), TypeError, "bias must have dtype"),
        (lambda: ops.layer_norm_forward(F, W, W, 1e-5, F[:2]), ValueError, "residual has shape"),
        (lambda: ops.layer_norm_backward(F, F, W, MS[:3], MS), ValueError, "mean must have shape"),
        (lambda: ops.cross_entropy(F, np.array([0, 1, 2, 8])), ValueError, "targets must be in"),
        (lambda: ops.cross_entropy(F, np.zeros(4, np.float32)), TypeError, "targets must have an integer dtype"),
        (lambda: ops.cross_entropy(F, np.zeros(3, np.int64)), ValueError, "targets must have shape"),
        (lambda: ops.cross_entropy(F, np.zeros(4, np.int64), -100, 1.5), ValueError, "label_smoothing"),
        (lambda: ops.embedding_forward(np.array([[0, 9]]), np.ones((9, 8), np.float32), F), ValueError,
         r"ids must be in \[0, 9\)"),
        (lambda: ops.embedding_forward(np.array([[0.0]]), np.ones((9, 8), np.float32), F), TypeError,
         "ids must have an integer dtype"),
        (lambda: ops.embedding_forward(np.zeros((1, 5), int), np.ones((9, 8), np.float32), F), ValueError,
         "positions must have at least 5 rows"),
        (lambda: ops.embedding_forward(np.zeros((1, 2), int), np.ones((9, 8), np.float32), F[:, :4].copy()),
         ValueError, "positions must have 8 columns"),
        (lambda: ops.embedding_backward(F, np.zeros((4,), int), 0), ValueError, "num_embeddings must be >= 1"),
        (lambda: ops.embedding_backward(F, np.zeros((3,), int), 5), ValueError, "dx must have shape"),
        (lambda: ops.embedding_backward(F, np.array([0, 1, 2, 5]), 5), ValueError, "ids must be in"),
        (lambda: ops.dropout_forward(F, 1.5, 0, 0, 0), ValueError, "p must be in"),
        (lambda: ops.dropout_forward(F, "0.1", 0, 0, 0), TypeError, "p must be a real number"),
        (lambda: ops.dropout_forward(F, 0.1, 0.5, 0, 0), TypeError, "seed must be an int"),
        (lambda: ops.dropout_forward(F.astype(np.float16), 0.1, 0, 0, 0), TypeError, "x must have dtype float32"),
        (lambda: ops.dropout_backward(F, 0.1, 0, 0, 0, out=np.ones(3, np.float32)), ValueError, "out must have shape"),
        (lambda: ops.dropout_mask((2, -1), 0.1, 0, 0, 0), ValueError, "shape must be"),
    ],
)
def test_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
