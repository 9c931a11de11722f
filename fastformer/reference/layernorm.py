"""LayerNorm over the last axis with an optional fused residual add:
y = LN(x + residual), biased variance."""
import numpy as np

from fastformer.reference.activations import gradient_into, into_out


def layer_norm_forward(x, weight, bias, eps=1e-5, residual=None, *, out=None, out_mean=None,
                       out_rstd=None):
    """x: (..., d), weight, bias: (d,), residual: like x or None ->
    (y like x, mean (...), rstd (...)), rstd = 1 / sqrt(var + eps).
    out, out_mean, out_rstd: arrays to write the results into, or None."""
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a last axis of at least 1 feature, got shape {x.shape}")
    z = x if residual is None else x + residual
    mean = z.mean(axis=-1)
    zc = z - mean[..., None]
    var = np.einsum("...i,...i->...", zc, zc) / z.shape[-1]
    rstd = 1.0 / np.sqrt(var + eps)
    zc *= rstd[..., None]
    zc *= weight
    zc += bias
    return into_out(out, zc), into_out(out_mean, mean), into_out(out_rstd, rstd)


def layer_norm_backward(dy, x, weight, mean, rstd, residual=None, *, out=None, dweight=None, dbias=None,
                        accumulate=False):
    """dy, x: (..., d), weight: (d,), mean, rstd: (...) from the forward,
    residual like x or None -> (dx like x, dweight (d,), dbias (d,)).
    dx is also the gradient of residual (the add is fused); written into `out` if given.
    dweight, dbias: arrays to write the parameter gradients into, or with
    accumulate=True to add them to."""
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a last axis of at least 1 feature, got shape {x.shape}")
    z = x if residual is None else x + residual
    xhat = (z - mean[..., None]) * rstd[..., None]
    d = x.shape[-1]
    dy2 = dy.reshape(-1, d)
    dweight = gradient_into(dweight, np.einsum("ni,ni->i", dy2, xhat.reshape(-1, d)), accumulate, "dweight")
    dbias = gradient_into(dbias, dy2.sum(axis=0), accumulate, "dbias")
    g = dy * weight
    # dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    g_mean = g.mean(axis=-1, keepdims=True)
    gx_mean = np.einsum("...i,...i->...", g, xhat)[..., None] / d
    g -= g_mean
    g -= xhat * gx_mean
    g *= rstd[..., None]
    return into_out(out, g), dweight, dbias
