"""Cross-entropy over the last axis, as torch.nn.functional.cross_entropy
(mean reduction, ignore_index, label_smoothing)."""
import numpy as np


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, *, out=None, normalizer=None):
    """logits: (..., V) float, targets: (...) integer -> (loss, dlogits).

    loss = mean over targets != ignore_index of
    (1 - eps) * (-log p[target]) + eps * mean_c(-log p[c]), eps = label_smoothing,
    a Python float; dlogits: like logits, the gradient of loss. As torch, a
    batch whose targets are all ignore_index gives loss nan (0 / 0) and
    dlogits 0. normalizer: what the summed loss is divided by instead of the
    count of targets (a positive number; e.g. a step's count for one micro-batch).
    """
    logits = np.asarray(logits)
    targets = np.asarray(targets)
    if logits.dtype not in (np.float32, np.float64):
        raise TypeError(f"logits must be float32 or float64, got {logits.dtype}")
    if logits.ndim < 1:
        raise ValueError("logits must have at least one axis (the classes)")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must be an integer array, got {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets must have shape {logits.shape[:-1]} (logits without its "
                         f"last axis), got {targets.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if normalizer is not None:
        if isinstance(normalizer, bool) or not isinstance(normalizer, (int, float, np.integer, np.floating)):
            raise TypeError(f"normalizer must be a real number, got {type(normalizer).__name__}")
        if not 0 < normalizer < np.inf:
            raise ValueError(f"normalizer must be positive and finite, got {normalizer!r}")
    if out is not None and (not isinstance(out, np.ndarray) or out.shape != logits.shape
                            or out.dtype != logits.dtype):
        raise ValueError(f"out must be an array of the logits' shape {logits.shape} and dtype {logits.dtype}")
    V = logits.shape[-1]
    x = logits.reshape(-1, V)
    t = targets.reshape(-1).astype(np.int64)
    valid = t != ignore_index
    if np.any((t[valid] < 0) | (t[valid] >= V)):
        raise ValueError(f"targets must be in [0, {V}) or ignore_index={ignore_index}")
    n = int(valid.sum()) if normalizer is None else float(normalizer)

    shifted = x - x.max(axis=-1, keepdims=True)
    rows = np.flatnonzero(valid)
    picked = shifted[rows, t[rows]]
    # sum_c log p[c] = sum_c shifted[c] - V log_total: no (N, V) log-probabilities needed.
    shifted_sum = shifted.sum(axis=-1)[rows].sum() if label_smoothing else 0.0
    probs = np.exp(shifted, out=shifted)
    total = probs.sum(axis=-1, keepdims=True)
    log_total = np.log(total[rows, 0])
    nll = log_total.sum() - picked.sum()
    smooth = (V * log_total.sum() - shifted_sum) / V
    eps = label_smoothing
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = float(((1.0 - eps) * nll + eps * smooth) / n)

    # d loss / d logits = (softmax - (1 - eps) onehot - eps / V) / n on valid rows.
    dlogits = probs
    dlogits /= total
    dlogits[rows, t[rows]] -= dlogits.dtype.type(1.0 - eps)
    if eps:
        dlogits -= dlogits.dtype.type(eps / V)
    dlogits[~valid] = 0
    if n:
        dlogits *= dlogits.dtype.type(1.0 / n)
    if out is None:
        return loss, dlogits.reshape(logits.shape)
    out[...] = dlogits.reshape(logits.shape)
    return loss, out
