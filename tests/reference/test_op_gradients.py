"""Finite-difference gradient checks (float64) of every reference op."""
import numpy as np
import pytest

from fastformer import reference as R
from fd_check import assert_grad

rng = np.random.default_rng(1234)


def randn(*shape):
    return rng.standard_normal(shape)


def weighted_sum(r):
    """Scalar loss L = sum(out * r), so dL/dout = r."""
    return lambda out: float(np.sum(out * r))


def test_linear():
    x, w, b = randn(2, 3, 5), randn(4, 5), randn(4)
    r = randn(2, 3, 4)
    loss = lambda: float(np.sum(R.linear_forward(x, w, b) * r))  # noqa: E731
    dx, dw, db = R.linear_backward(r, x, w)
    for arr, g, name in [(x, dx, "x"), (w, dw, "weight"), (b, db, "bias")]:
        assert_grad(loss, arr, g, name=name)
    assert R.linear_backward(r, x, w, need_dx=False)[0] is None
    np.testing.assert_allclose(R.linear_forward(x, w), x @ w.T, rtol=1e-12)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive", "full_rows"])
def test_softmax(mask_kind):
    x, r = randn(2, 3, 6), randn(2, 3, 6)
    mask = None
    if mask_kind == "bool":
        mask = rng.random((2, 1, 6)) < 0.4
        mask[..., 0] = False
    elif mask_kind == "additive":
        mask = np.where(rng.random((3, 6)) < 0.3, -np.inf, randn(3, 6))
        mask[:, 0] = 0.0
    elif mask_kind == "full_rows":
        mask = rng.random((2, 3, 6)) < 0.3
        mask[0, 1] = True  # a fully masked row
    y = R.softmax_forward(x, mask)
    assert np.all(np.isfinite(y))
    dx = R.softmax_backward(r, y)
    assert_grad(lambda: float(np.sum(R.softmax_forward(x, mask) * r)), x, dx)
    if mask_kind == "full_rows":
        assert np.all(y[0, 1] == 0) and np.all(dx[0, 1] == 0)


@pytest.mark.parametrize("residual", [False, True])
def test_layer_norm(residual):
    x, w, b, r = randn(2, 3, 7), randn(7), randn(7), randn(2, 3, 7)
    res = randn(2, 3, 7) if residual else None
    loss = lambda: float(np.sum(R.layer_norm_forward(x, w, b, 1e-5, res)[0] * r))  # noqa: E731
    _, mean, rstd = R.layer_norm_forward(x, w, b, 1e-5, res)
    dx, dw, db = R.layer_norm_backward(r, x, w, mean, rstd, res)
    for arr, g, name in [(x, dx, "x"), (w, dw, "weight"), (b, db, "bias")]:
        assert_grad(loss, arr, g, name=name)
    if residual:  # the fused add: the residual's gradient is dx
        assert_grad(loss, res, dx, name="residual")


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_ffn(activation):
    x, r = randn(2, 3, 4), randn(2, 3, 4)
    w1, b1, w2, b2 = randn(6, 4), randn(6), randn(4, 6), randn(4)
    loss = lambda: float(np.sum(R.ffn_forward(x, w1, b1, w2, b2, activation)[0] * r))  # noqa: E731
    _, hidden_pre = R.ffn_forward(x, w1, b1, w2, b2, activation)
    grads = R.ffn_backward(r, x, hidden_pre, w1, w2, activation)
    for arr, g, name in zip([x, w1, b1, w2, b2], grads, ["x", "w1", "b1", "w2", "b2"]):
        assert_grad(loss, arr, g, name=name)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_activation_backward(activation):
    x = randn(50)
    x = x[np.abs(x) > 1e-3]  # keep relu's kink out of the differences' reach
    r = randn(x.size)
    fwd = getattr(R, f"{activation}_forward")
    bwd = getattr(R, f"{activation}_backward")
    assert_grad(lambda: float(np.sum(fwd(x) * r)), x, bwd(r, x))


def _attention_inputs(B=2, h=2, Tq=4, Tk=5, dk=3, padding=True, empty_row=False):
    q, k, v = randn(B, h, Tq, dk), randn(B, h, Tk, dk), randn(B, h, Tk, dk)
    mask = None
    if padding:
        mask = np.zeros((B, Tk), dtype=bool)
        mask[0, -2:] = True
        if empty_row:
            mask[1] = True  # every key of batch item 1 is padding
    return q, k, v, mask


@pytest.mark.parametrize("padding,causal,empty_row,dropout_p,Tq", [
    (False, False, False, 0.0, 4),
    (True, False, False, 0.0, 4),
    (False, True, False, 0.0, 4),
    (True, True, False, 0.0, 6),
    (True, False, True, 0.0, 4),
    (True, True, False, 0.3, 4),
    (True, False, True, 0.5, 3),
])
def test_attention(padding, causal, empty_row, dropout_p, Tq):
    q, k, v, mask = _attention_inputs(Tq=Tq, padding=padding, empty_row=empty_row)
    r = randn(*q.shape)
    kw = dict(key_padding_mask=mask, causal=causal, dropout_p=dropout_p, seed=7, step=3, site=11)
    loss = lambda: float(np.sum(R.attention_forward(q, k, v, **kw)[0] * r))  # noqa: E731
    out, lse = R.attention_forward(q, k, v, **kw)
    dq, dk, dv = R.attention_backward(r, q, k, v, out, lse, **kw)
    for arr, g, name in [(q, dq, "q"), (k, dk, "k"), (v, dv, "v")]:
        assert_grad(loss, arr, g, name=name)
    if empty_row:
        assert np.all(np.isneginf(lse[1])) and np.all(out[1] == 0)
        assert np.all(dq[1] == 0) and np.all(dk[1] == 0) and np.all(dv[1] == 0)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("cross,padding,causal,dropout_p", [
    (False, False, False, 0.0),
    (False, True, True, 0.0),
    (False, True, False, 0.2),
    (True, False, False, 0.0),
    (True, True, False, 0.2),
])
def test_mha(cross, padding, causal, dropout_p):
    B, Tq, Tk, d, h = 2, 4, 5 if cross else 4, 6, 2
    x_q = randn(B, Tq, d)
    x_kv = randn(B, Tk, d) if cross else x_q
    w_in, b_in, w_out, b_out = randn(3 * d, d), randn(3 * d), randn(d, d), randn(d)
    mask = None
    if padding:
        mask = np.zeros((B, Tk), dtype=bool)
        mask[1, -2:] = True
    r = randn(B, Tq, d)
    kw = dict(key_padding_mask=mask, causal=causal, dropout_p=dropout_p, seed=3, step=1, site=5)

    def loss():
        y, _ = R.mha_forward(x_q, x_kv, w_in, b_in, w_out, b_out, h, **kw)
        return float(np.sum(y * r))

    _, cache = R.mha_forward(x_q, x_kv, w_in, b_in, w_out, b_out, h, **kw)
    dx_q, dx_kv, dw_in, db_in, dw_out, db_out = R.mha_backward(r, cache)
    checks = [(x_q, dx_q, "x_q"), (w_in, dw_in, "in_proj_weight"), (b_in, db_in, "in_proj_bias"),
              (w_out, dw_out, "out_proj_weight"), (b_out, db_out, "out_proj_bias")]
    if cross:
        checks.append((x_kv, dx_kv, "x_kv"))
    else:
        assert dx_kv is None
    for arr, g, name in checks:
        assert_grad(loss, arr, g, name=name)


def test_embedding():
    V, d = 7, 4
    w = randn(V, d)
    ids = np.array([[1, 3, 3, 0], [6, 1, 1, 1]])  # repeated ids accumulate
    pe = R.sinusoidal_positions(10, d, np.float64)
    r = randn(2, 4, d)
    dw = R.embedding_backward(r, ids, V)
    assert_grad(lambda: float(np.sum(R.embedding_forward(ids, w, pe) * r)), w, dw)
    out = np.ones((V, d))
    R.embedding_backward(r, ids, V, out=out, accumulate=True)
    np.testing.assert_allclose(out, dw + 1, rtol=1e-15)
    R.embedding_backward(r, ids, V, out=out)
    np.testing.assert_array_equal(out, dw)


@pytest.mark.parametrize("label_smoothing,ignore", [(0.0, False), (0.1, True), (0.3, False)])
def test_cross_entropy(label_smoothing, ignore):
    logits = randn(3, 4, 6)
    targets = rng.integers(0, 6, (3, 4))
    if ignore:
        targets[0, 1] = targets[2, 3] = -100
    _, dlogits = R.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    assert_grad(lambda: R.cross_entropy(logits, targets, label_smoothing=label_smoothing)[0],
                logits, dlogits)
    if ignore:
        assert np.all(dlogits[0, 1] == 0)
