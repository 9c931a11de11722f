# Cross-entropy fused with log-softmax (csrc/nn/cross_entropy*.c).

cdef extern from "nn/cross_entropy.h" nogil:
    double ff_cross_entropy(float *dlogits, const float *logits, const int64_t *targets, size_t rows, size_t V,
                            int64_t ignore_index, double label_smoothing)


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, *, out=None):
    """cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, *, out=None) -> (loss, dlogits)

    As torch.nn.functional.cross_entropy with mean reduction: logits (..., V) float32,
    targets (...) any integer dtype, each in [0, V) or ignore_index. loss is a Python
    float (nan when every target is ignored); dlogits like logits (`out` may be logits)."""
    check_float32("logits", logits)
    if logits.ndim < 1 or logits.shape[logits.ndim - 1] < 1:
        raise ValueError(f"logits must have at least 1 axis with >= 1 class, got shape {logits.shape}")
    if not isinstance(targets, np.ndarray):
        raise TypeError(f"targets must be a numpy.ndarray of integers, got {type(targets).__name__}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must have an integer dtype, got {targets.dtype}")
    if targets.shape != logits.shape[:logits.ndim - 1]:
        raise ValueError(f"targets must have shape {logits.shape[:logits.ndim - 1]} (logits without its last axis), "
                         f"got {targets.shape}")
    cdef int64_t ign = check_int("ignore_index", ignore_index)
    cdef double eps = check_real("label_smoothing", label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    cdef size_t V = logits.shape[logits.ndim - 1]
    t = as_int64(targets)
    valid = t[t != ign]
    if valid.size and (valid.min() < 0 or valid.max() >= <int64_t>V):
        raise ValueError(f"targets must be in [0, {V}) or ignore_index={ign}")
    dl = check_out("out", out, logits.shape)
    cdef size_t rows = t.size
    cdef float *dlp = _f32p(dl)
    cdef const float *lp = _f32p(logits)
    cdef const int64_t *tp = _i64p(t)
    cdef double loss
    if rows == 0:
        return float("nan"), dl  # no targets: the mean over none, as torch
    with nogil:
        loss = ff_cross_entropy(dlp, lp, tp, rows, V, ign, eps)
    return float(loss), dl
