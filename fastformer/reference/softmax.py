"""Softmax over the last axis, with an optional mask; fully masked rows give 0."""
import numpy as np

from fastformer.reference.activations import into_out


def softmax_forward(x, mask=None, *, out=None):
    """x: (..., N). mask: None, bool broadcastable to x (True = masked out), or
    float broadcastable to x (added to x; -inf masks out). Returns y like x
    (in out, when given); a row whose entries are all masked is 0, not NaN."""
    if mask is None:
        s = x.copy()
    elif np.asarray(mask).dtype == np.bool_:
        s = x.copy()
        np.copyto(s, -np.inf, where=mask)
    else:
        s = x + mask
    m = s.max(axis=-1, keepdims=True)
    m[~np.isfinite(m)] = 0  # a fully masked row: exp(-inf - 0) = 0, not exp(nan)
    s -= m
    np.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    np.divide(s, total, out=s, where=total > 0)
    return into_out(out, s)


def softmax_backward(dy, y, *, out=None):
    """dy, y: (..., N) -> dx = y * (dy - sum(dy * y, -1)) (in out, when
    given); 0 on fully masked rows."""
    dot = np.einsum("...i,...i->...", dy, y)[..., None]
    return into_out(out, y * (dy - dot))
