"""Token embedding scaled by sqrt(d_model) plus sinusoidal positions."""
import numpy as np

from fastformer.reference.activations import into_out


def sinusoidal_positions(max_len, d_model, dtype=np.float32):
    """PE: (max_len, d_model), PE[pos, 2i] = sin(pos / 10000^(2i/d_model)),
    PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model)); for odd d_model the last
    column is a sine. Computed in float64, returned in dtype."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    even = np.arange(0, d_model, 2, dtype=np.float64)  # the 2i of every pair
    angle = pos / 10000.0 ** (even / d_model)  # (max_len, ceil(d_model / 2))
    pe = np.empty((max_len, d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return pe.astype(dtype)


def embedding_forward(ids, weight, positions, *, out=None):
    """ids: (B, T) integer, weight: (V, d), positions: (>= T, d) ->
    x: (B, T, d) = weight[ids] * sqrt(d) + positions[:T] (in out, when given)."""
    scale = weight.dtype.type(np.sqrt(weight.shape[1]))
    x = weight[ids]
    x *= scale
    x += positions[: ids.shape[-1]]
    return into_out(out, x)


def embedding_backward(dx, ids, num_embeddings, *, out=None, accumulate=False):
    """dx: (B, T, d), ids: (B, T) -> dweight: (num_embeddings, d), the scaled
    gradient scatter-added by id (a repeated id accumulates). Written into
    `out` (an array of dweight's shape) when given, or with accumulate=True
    added to it: a model accumulates into its gradient buffer without a (V, d)
    temporary."""
    d = dx.shape[-1]
    if out is None:
        if accumulate:
            raise ValueError("accumulate=True needs out= (the gradient that is added to)")
        out = np.zeros((num_embeddings, d), dtype=dx.dtype)
    elif not accumulate:
        out.fill(0)
    np.add.at(out, ids.reshape(-1), dx.reshape(-1, d) * dx.dtype.type(np.sqrt(d)))
    return out
