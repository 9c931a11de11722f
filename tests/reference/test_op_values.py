"""Values of the reference ops: against PyTorch, against their definitions,
and float32 against float64."""
import math

import numpy as np
import pytest

from conftest import require_torch
from fastformer import reference as R

TOL = {np.float64: 1e-10, np.float32: 1e-4}


def _attention_case(rng, dtype, B=2, h=3, Tq=5, Tk=6, dk=4, causal=False):
    q = rng.standard_normal((B, h, Tq, dk)).astype(dtype)
    k = rng.standard_normal((B, h, Tk, dk)).astype(dtype)
    v = rng.standard_normal((B, h, Tk, dk)).astype(dtype)
    mask = np.zeros((B, Tk), dtype=bool)
    mask[0, -2:] = True
    mask[1, 1] = True
    return q, k, v, mask


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_torch_sdpa(dtype, causal):
    torch = require_torch()
    rng = np.random.default_rng(0)
    q, k, v, mask = _attention_case(rng, dtype, causal=causal)
    dout = rng.standard_normal(q.shape).astype(dtype)
    out, lse = R.attention_forward(q, k, v, mask, causal)
    dq, dk, dv = R.attention_backward(dout, q, k, v, out, lse, mask, causal)

    tq, tk, tv = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (q, k, v))
    allowed = torch.from_numpy(~mask)[:, None, None, :]  # torch: True = may attend
    if causal:
        allowed = allowed & torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).tril()
    t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=allowed)
    t_out.backward(torch.from_numpy(dout))
    rtol = TOL[dtype]
    for ours, theirs in [(out, t_out.detach()), (dq, tq.grad), (dk, tk.grad), (dv, tv.grad)]:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=rtol, atol=rtol * 1e-2)
    scores = (tq @ tk.transpose(-1, -2)).detach() / math.sqrt(q.shape[-1])
    t_lse = torch.logsumexp(scores.masked_fill(~allowed, -math.inf), dim=-1)
    np.testing.assert_allclose(lse, t_lse.numpy(), rtol=rtol)


def test_attention_fully_masked_rows_are_zero():
    rng = np.random.default_rng(1)
    q, k, v, mask = _attention_case(rng, np.float64)
    mask[1] = True
    with np.errstate(all="raise"):  # no NaN, no division by zero on the way
        out, lse = R.attention_forward(q, k, v, mask)
        grads = R.attention_backward(np.ones_like(out), q, k, v, out, lse, mask)
    assert np.all(out[1] == 0) and np.all(np.isneginf(lse[1]))
    assert all(np.all(g[1] == 0) for g in grads)


def test_attention_dropout_acts_on_probabilities():
    """Dropout on P (B, h, Tq, Tk), flat index over that shape, lse undropped."""
    rng = np.random.default_rng(6)
    q, k, v, mask = _attention_case(rng, np.float64)
    p, args = 0.4, (11, 5, 0x01000100)
    out, lse = R.attention_forward(q, k, v, mask, True, p, *args)
    probs = R.softmax_forward(q @ k.swapaxes(-1, -2) / 2.0,  # sqrt(dk) = 2
                              mask[:, None, None, :] | np.triu(np.ones((5, 6), bool), 1))
    np.testing.assert_allclose(out, R.dropout_forward(probs, p, *args) @ v, rtol=1e-12)
    np.testing.assert_allclose(lse, R.attention_forward(q, k, v, mask, True)[1], rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_matches_torch(dtype, label_smoothing):
    torch = require_torch()
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((3, 5, 11)) * 3).astype(dtype)
    targets = rng.integers(0, 11, (3, 5)).astype(np.int32)
    targets[0, :2] = targets[2, 4] = -100
    loss, dlogits = R.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    t = torch.from_numpy(logits.copy()).requires_grad_(True)
    t_loss = torch.nn.functional.cross_entropy(t.reshape(-1, 11), torch.from_numpy(targets).long().reshape(-1),
                                               ignore_index=-100, label_smoothing=label_smoothing)
    t_loss.backward()
    assert isinstance(loss, float)
    assert dlogits.dtype == dtype and dlogits.shape == logits.shape
    np.testing.assert_allclose(loss, t_loss.item(), rtol=TOL[dtype])
    np.testing.assert_allclose(dlogits, t.grad.numpy(), rtol=TOL[dtype], atol=TOL[dtype] * 1e-3)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    loss, dlogits = R.cross_entropy(np.zeros((2, 3)), np.array([-100, -100]), label_smoothing=0.1)
    assert math.isnan(loss) and np.all(dlogits == 0)


def test_cross_entropy_bad_input():
    logits = np.zeros((2, 3))
    with pytest.raises(ValueError, match="targets"):
        R.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="targets"):
        R.cross_entropy(logits, np.array([0, -1]))
    with pytest.raises(ValueError, match="targets"):
        R.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="targets"):
        R.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="logits"):
        R.cross_entropy(logits.astype(np.int64), np.array([0, 1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        R.cross_entropy(logits, np.array([0, 1]), label_smoothing=1.5)
    assert R.cross_entropy(logits, np.array([5, 1]), ignore_index=5)[0] == pytest.approx(math.log(3))


def test_softmax_and_layer_norm_definitions():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7))
    y = R.softmax_forward(x)
    np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(-1, keepdims=True), rtol=1e-14)
    bool_mask = np.zeros(7, dtype=bool)
    bool_mask[2] = True
    np.testing.assert_allclose(R.softmax_forward(x, bool_mask),
                               R.softmax_forward(x, np.where(bool_mask, -np.inf, 0.0)), rtol=1e-15)
    assert np.all(R.softmax_forward(x, np.ones(7, dtype=bool)) == 0)

    w, b = rng.standard_normal(7), rng.standard_normal(7)
    res = rng.standard_normal((4, 7))
    y, mean, rstd = R.layer_norm_forward(x, w, b, 1e-5, residual=res)
    z = x + res
    want = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(y, want, rtol=1e-12)
    np.testing.assert_allclose(mean, z.mean(-1), rtol=1e-14)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(z.var(-1) + 1e-5), rtol=1e-14)


@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoidal_positions(d_model):
    pe = R.sinusoidal_positions(9, d_model, np.float64)
    assert pe.shape == (9, d_model) and pe.dtype == np.float64
    for pos in (0, 3, 8):
        for i in range(d_model):
            angle = pos / 10000 ** (2 * (i // 2) / d_model)
            want = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert pe[pos, i] == pytest.approx(want, rel=1e-14, abs=1e-15)
    assert R.sinusoidal_positions(3, d_model, np.float32).dtype == np.float32


def test_embedding_forward():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((10, 4))
    pe = R.sinusoidal_positions(8, 4, np.float64)
    ids = np.array([[1, 2, 3], [9, 9, 0]], dtype=np.int16)
    np.testing.assert_allclose(R.embedding_forward(ids, w, pe), w[ids] * 2.0 + pe[:3], rtol=1e-15)


def _run_ops(dtype):
    """Every op forward and backward on one fixed input set, computed in dtype."""
    rng = np.random.default_rng(5)
    c = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    x, d = c(2, 4, 6), c(2, 4, 6)
    out = {}
    w1, b1, w2, b2 = c(8, 6), c(8), c(6, 8), c(6)
    for act in ("relu", "gelu"):
        y, hp = R.ffn_forward(x, w1, b1, w2, b2, act)
        out[f"ffn_{act}"] = (y, *R.ffn_backward(d, x, hp, w1, w2, act))
    lw, lb, res = c(6), c(6), c(2, 4, 6)
    y, mean, rstd = R.layer_norm_forward(x, lw, lb, 1e-5, res)
    out["ln"] = (y, *R.layer_norm_backward(d, x, lw, mean, rstd, res))
    mask = np.array([[False, False, True, True], [False] * 4])
    s = R.softmax_forward(c(2, 4, 4), mask[:, None, :])
    out["softmax"] = (s, R.softmax_backward(c(2, 4, 4), s))
    w_in, b_in, w_out, b_out = c(18, 6), c(18), c(6, 6), c(6)
    y, cache = R.mha_forward(x, x, w_in, b_in, w_out, b_out, 2, mask, True, 0.2, 1, 2, 3)
    out["mha"] = (y, *(g for g in R.mha_backward(d, cache) if g is not None))
    loss, dl = R.cross_entropy(c(2, 4, 9), rng.integers(0, 9, (2, 4)), label_smoothing=0.1)
    out["ce"] = (np.array(loss), dl)
    for name, arrays in out.items():
        assert all(a.dtype == dtype for a in arrays if a.ndim), name
    return out


def test_float32_agrees_with_float64():
    f32, f64 = _run_ops(np.float32), _run_ops(np.float64)
    for name in f64:
        for a, b in zip(f32[name], f64[name]):
            scale = np.abs(b).max()
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale, err_msg=name)
