# Cross-entropy fused with log-softmax (csrc/nn/cross_entropy*.c).

cdef extern from "nn/cross_entropy.h" nogil:
    double ff_cross_entropy(float *dlogits, const float *logits, const int64_t *targets, size_t rows, size_t V,
                            int64_t ignore_index, double label_smoothing)
    int ff_cross_entropy_rows(float *dlogits, const float *logits, const int64_t *targets, size_t rows, size_t V,
                              int64_t ignore_index, double label_smoothing, double inv_n, double *total)


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, *, out=None, normalizer=None):
    """cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, *, out=None, normalizer=None)
    -> (loss, dlogits)

    As torch.nn.functional.cross_entropy with mean reduction: logits (..., V) float32,
    targets (...) any integer dtype, each in [0, V) or ignore_index. loss is a Python
    float (nan when every target is ignored); dlogits like logits (`out` may be logits).
    normalizer: what the summed loss is divided by (a positive number; default the
    count of targets not ignored), e.g. a whole step's count for one micro-batch."""
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
    cdef double norm = 0.0
    if normalizer is not None:
        norm = check_real("normalizer", normalizer)
        if not norm > 0.0:
            raise ValueError(f"normalizer must be positive, got {normalizer!r}")
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
    cdef double loss, total = 0.0
    cdef int rc = 0
    if normalizer is None:
        if rows == 0:
            return float("nan"), dl  # no targets: the mean over none, as torch
        with nogil:
            loss = ff_cross_entropy(dlp, lp, tp, rows, V, ign, eps)
        return float(loss), dl
    with nogil:
        rc = ff_cross_entropy_rows(dlp, lp, tp, rows, V, ign, eps, 1.0 / norm, &total)
    if rc != 0:
        raise MemoryError("cross_entropy: out of memory for the row losses")
    return float(total * (1.0 / norm)), dl


def _cross_entropy_rows(dlogits, logits, targets, int64_t ignore_index, double label_smoothing, double inv_n,
                        double total):
    """The model's trusted path (its own C-contiguous arrays, targets int64 and
    checked once per batch): ff_cross_entropy_rows on one chunk of rows ->
    total plus their losses."""
    cdef size_t rows = targets.shape[0], V = logits.shape[1]
    cdef float *dlp = _f32p(dlogits)
    cdef const float *lp = _f32p(logits)
    cdef const int64_t *tp = _i64p(targets)
    cdef int rc
    with nogil:
        rc = ff_cross_entropy_rows(dlp, lp, tp, rows, V, ignore_index, label_smoothing, inv_n, &total)
    if rc != 0:
        raise MemoryError("cross_entropy: out of memory for the row losses")
    return total
