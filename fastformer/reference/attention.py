"""Scaled dot-product attention on per-head tensors, and multi-head attention
with the PyTorch parameter layout (in_proj_weight rows Wq, Wk, Wv).

Masks: a key is hidden from a query when it is padding (key_padding_mask True)
or, with causal=True, when its position j exceeds the query's position i.
A query that sees no key gets output 0, log-sum-exp -inf and gradient 0.
Dropout acts on the probabilities P (B, h, Tq, Tk), flat index over that
shape, with the counter-based scheme of `fastformer.reference.dropout`.

compute_dtype="bfloat16" rounds the inputs of every product to bfloat16
(r = round_bf16) and sums in the inputs' precision, as the compiled flash
kernels do: S = scale * r(q) r(k)^T; out = r(E) r(v) / rowsum(E) with E the
unnormalised probabilities exp(S - rowmax S) (after dropout); in the backward
P = exp(S - lse), dv = r(Pd)^T r(dout), dP = r(dout) r(v)^T, dq = scale *
r(dS) r(k), dk = scale * r(dS)^T r(q). Softmax statistics stay unrounded.
q, k and v may then be bf16 values (uint16, `to_bf16`): those values.
(The forward kernel rounds E against the running maximum of each 128-key
block, so beyond 128 keys it matches this twin to bf16 rounding, not bits.)
"""
import numpy as np

from fastformer.layout import check_compute_dtype
from fastformer.reference.dropout import dropout_apply, dropout_forward, dropout_mask
from fastformer.reference.gemm import from_bf16, round_bf16
from fastformer.reference.linear import linear_backward, linear_forward


def _hidden(key_padding_mask, causal, Tq, Tk):
    """bool mask broadcastable to (B, h, Tq, Tk), True = hidden; None if nothing is."""
    hidden = None
    if key_padding_mask is not None:
        hidden = key_padding_mask[:, None, None, :]
    if causal:
        future = np.triu(np.ones((Tq, Tk), dtype=bool), k=1)
        hidden = future if hidden is None else hidden | future
    return hidden


def _rounding(compute_dtype):
    """The rounding of a product's inputs: round_bf16 for bfloat16, else none."""
    check_compute_dtype(compute_dtype)
    return round_bf16 if compute_dtype == "bfloat16" else (lambda x: x)


def _inputs(compute_dtype, *arrays):
    """q, k, v as floats: bf16 values (uint16) widened, for bfloat16 only."""
    if compute_dtype != "bfloat16" and any(a.dtype == np.uint16 for a in arrays):
        raise TypeError("bf16 values (uint16) need compute_dtype='bfloat16'")
    return [from_bf16(a) for a in arrays]


def _scores(q, k, key_padding_mask, causal, compute_dtype="float32"):
    """Masked scaled scores S = q k^T / sqrt(dk), -inf where hidden: (B, h, Tq, Tk)."""
    scale = q.dtype.type(1.0 / np.sqrt(q.shape[-1]))
    if compute_dtype == "bfloat16":  # the kernel's order: scale after the product
        s = (round_bf16(q) @ round_bf16(k).swapaxes(-1, -2)) * scale
    else:
        s = (q * scale) @ k.swapaxes(-1, -2)
    hidden = _hidden(key_padding_mask, causal, q.shape[-2], k.shape[-2])
    if hidden is not None:
        np.copyto(s, -np.inf, where=hidden)
    return s


IMPLS = (None, "flash", "materialized", "rows")


def check_impl(impl):
    """The compiled kernels' algorithm choice, which the twin accepts (same
    signature) and has no use for: one algorithm computes every impl's numbers."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be None, 'flash', 'materialized' or 'rows', got {impl!r}")


def attention_forward(q, k, v, key_padding_mask=None, causal=False, dropout_p=0.0,
                      seed=0, step=0, site=0, *, impl=None, compute_dtype="float32"):
    """q: (B, h, Tq, dk), k, v: (B, h, Tk, dk), key_padding_mask: (B, Tk) bool
    (True = padding) or None -> (out (B, h, Tq, dk), lse (B, h, Tq)).

    out = Dropout(softmax(S)) v; lse = log-sum-exp of the masked scores S
    over keys, -inf for a query that sees no key (its output is 0).
    impl: see check_impl.
    """
    check_impl(impl)
    if q.shape[-1] == 0:
        raise ValueError(f"q, k and v must have a head width dk of at least 1, got q of shape {q.shape}")
    r = _rounding(compute_dtype)
    q, k, v = _inputs(compute_dtype, q, k, v)
    p = _scores(q, k, key_padding_mask, causal, compute_dtype)
    m = p.max(axis=-1, initial=-np.inf)  # -inf also where there are no keys at all (Tk = 0)
    m[np.isneginf(m)] = 0  # a query with no visible key: exp(-inf - 0) = 0, not NaN
    p -= m[..., None]
    np.exp(p, out=p)
    total = p.sum(axis=-1)
    with np.errstate(divide="ignore"):
        lse = m + np.log(total)
    if compute_dtype == "bfloat16":  # normalised after the product, as the kernel does
        if dropout_p > 0:
            p = dropout_forward(p, dropout_p, seed, step, site)
        out = r(p) @ r(v)
        np.divide(out, total[..., None], out=out, where=total[..., None] > 0)
        return out, lse
    np.divide(p, total[..., None], out=p, where=total[..., None] > 0)
    if dropout_p > 0:
        p = dropout_forward(p, dropout_p, seed, step, site)
    return p @ v, lse


def attention_backward(dout, q, k, v, out, lse, key_padding_mask=None, causal=False,
                       dropout_p=0.0, seed=0, step=0, site=0, *, impl=None, compute_dtype="float32"):
    """dout, out: (B, h, Tq, dk), q: (B, h, Tq, dk), k, v: (B, h, Tk, dk),
    lse: (B, h, Tq) from the forward -> (dq, dk, dv) shaped like q, k, v.

    Recomputes P = exp(S - lse) instead of storing it. With Pd = Dropout(P),
    out = Pd v, so rowsum(dP * P) = rowsum(dout * out) =: D even with dropout,
    and dS = P * (dP - D). impl: see check_impl.
    """
    check_impl(impl)
    r = _rounding(compute_dtype)
    q, k, v = _inputs(compute_dtype, q, k, v)
    p = _scores(q, k, key_padding_mask, causal, compute_dtype)
    # lse = -inf marks a query with no visible key: use +inf so its P row is 0.
    p -= np.where(np.isneginf(lse), np.inf, lse)[..., None]
    np.exp(p, out=p)
    if dropout_p > 0:
        keep = dropout_mask(p.shape, dropout_p, seed, step, site)  # the forward's mask
        dv = r(dropout_apply(p, keep, dropout_p)).swapaxes(-1, -2) @ r(dout)
        dp = dropout_apply(r(dout) @ r(v).swapaxes(-1, -2), keep, dropout_p)
    else:
        dv = r(p).swapaxes(-1, -2) @ r(dout)
        dp = r(dout) @ r(v).swapaxes(-1, -2)
    d = np.einsum("...i,...i->...", dout, out)
    dp -= d[..., None]
    dp *= p  # dS; zero wherever P is (hidden keys, empty rows)
    scale = q.dtype.type(1.0 / np.sqrt(q.shape[-1]))
    dq = (r(dp) @ r(k)) * scale
    dk = (r(dp).swapaxes(-1, -2) @ r(q)) * scale
    return dq, dk, dv


def _merge_heads(t):
    """(B, h, T, dk) -> (B, T, h * dk): heads concatenated, as the projections see them."""
    B, h, T, dk = t.shape
    return t.transpose(0, 2, 1, 3).reshape(B, T, h * dk)


def mha_forward(x_q, x_kv, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias,
                nhead, key_padding_mask=None, causal=False, dropout_p=0.0, seed=0, step=0,
                site=0, *, compute_dtype="float32"):
    """Multi-head attention, PyTorch layout.

    x_q: (B, Tq, d); x_kv: (B, Tk, d), or x_q itself for self-attention (Q, K, V
    then come from one (3d, d) projection); in_proj_weight: (3d, d) rows
    [Wq; Wk; Wv]; in_proj_bias: (3d,); out_proj_weight: (d, d); out_proj_bias:
    (d,); key_padding_mask: (B, Tk) bool or None. Returns (y (B, Tq, d), cache).
    compute_dtype (as in `fastformer.reference.linear`) is that of the projections
    and of attention's products (see the module's docstring).
    """
    B, Tq, d = x_q.shape
    if nhead < 1 or d % nhead:
        raise ValueError(f"nhead must divide d_model = {d}, got {nhead!r}")
    dk = d // nhead
    self_attn = x_kv is x_q
    if self_attn:
        qkv = linear_forward(x_q, in_proj_weight, in_proj_bias, compute_dtype=compute_dtype)
        # (B, T, 3, h, dk) -> (3, B, h, T, dk): heads by a transpose, no loop.
        q, k, v = qkv.reshape(B, Tq, 3, nhead, dk).transpose(2, 0, 3, 1, 4)
    else:
        q = linear_forward(x_q, in_proj_weight[:d], in_proj_bias[:d], compute_dtype=compute_dtype)
        q = q.reshape(B, Tq, nhead, dk).transpose(0, 2, 1, 3)
        kv = linear_forward(x_kv, in_proj_weight[d:], in_proj_bias[d:], compute_dtype=compute_dtype)
        k, v = kv.reshape(B, x_kv.shape[1], 2, nhead, dk).transpose(2, 0, 3, 1, 4)
    out, lse = attention_forward(q, k, v, key_padding_mask, causal, dropout_p, seed, step, site,
                                 compute_dtype=compute_dtype)
    ctx = _merge_heads(out)
    y = linear_forward(ctx, out_proj_weight, out_proj_bias, compute_dtype=compute_dtype)
    cache = dict(x_q=x_q, x_kv=None if self_attn else x_kv, q=q, k=k, v=v, out=out, lse=lse,
                 ctx=ctx, in_proj_weight=in_proj_weight, out_proj_weight=out_proj_weight,
                 nhead=nhead, key_padding_mask=key_padding_mask, causal=causal,
                 dropout_p=dropout_p, seed=seed, step=step, site=site, compute_dtype=compute_dtype)
    return y, cache


def mha_backward(dy, cache):
    """dy: (B, Tq, d), cache from mha_forward -> (dx_q, dx_kv, d_in_proj_weight,
    d_in_proj_bias, d_out_proj_weight, d_out_proj_bias).

    For self-attention dx_q is the whole gradient of the input and dx_kv is None.
    """
    c = cache
    x_q, x_kv, w_in, cd = c["x_q"], c["x_kv"], c["in_proj_weight"], c["compute_dtype"]
    B, Tq, d = x_q.shape
    dctx, d_out_w, d_out_b = linear_backward(dy, c["ctx"], c["out_proj_weight"], compute_dtype=cd)
    dout = dctx.reshape(B, Tq, c["nhead"], d // c["nhead"]).transpose(0, 2, 1, 3)
    dq, dk, dv = attention_backward(dout, c["q"], c["k"], c["v"], c["out"], c["lse"],
                                    c["key_padding_mask"], c["causal"], c["dropout_p"],
                                    c["seed"], c["step"], c["site"], compute_dtype=cd)
    if x_kv is None:
        # (B, h, 3, T, dk) -> (B, T, 3, h, dk): the layout of the fused projection's output.
        dqkv = np.stack([dq, dk, dv], axis=2).transpose(0, 3, 2, 1, 4).reshape(B, Tq, 3 * d)
        dx_q, d_in_w, d_in_b = linear_backward(dqkv, x_q, w_in, compute_dtype=cd)
        return dx_q, None, d_in_w, d_in_b, d_out_w, d_out_b
    dx_q, dwq, dbq = linear_backward(_merge_heads(dq), x_q, w_in[:d], compute_dtype=cd)
    dkv = np.concatenate([_merge_heads(dk), _merge_heads(dv)], axis=-1)
    dx_kv, dwkv, dbkv = linear_backward(dkv, x_kv, w_in[d:], compute_dtype=cd)
    return (dx_q, dx_kv, np.concatenate([dwq, dwkv]), np.concatenate([dbq, dbkv]),
            d_out_w, d_out_b)
