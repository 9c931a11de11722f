# Masked softmax over the last axis (csrc/nn/softmax*.c).

cdef extern from "nn/softmax.h" nogil:
    int FF_MASK_NONE, FF_MASK_BOOL, FF_MASK_ADD
    void ff_softmax_forward(float *y, const float *x, const void *mask, int mask_kind, size_t rows, size_t n,
                            int nlead, const int64_t *lead_shape, const int64_t *mask_strides)
    void ff_softmax_backward(float *dx, const float *dy, const float *y, size_t rows, size_t n)


def softmax_forward(x, mask=None, *, out=None):
    """softmax_forward(x, mask=None, *, out=None) -> y like x, softmax over the last axis.

    mask: None, a bool array broadcastable to x (True = masked out), or a float32
    array broadcastable to x added to the scores (-inf masks out). A row whose
    entries are all masked gives 0."""
    check_float32("x", x)
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 axis, got shape {x.shape}")
    cdef int kind = FF_MASK_NONE
    cdef size_t n = x.shape[x.ndim - 1]
    cdef size_t rows = x.size // n if n else 0
    cdef int nlead = x.ndim - 1
    cdef const void *mp = NULL
    lead_shape = np.array(x.shape[:x.ndim - 1], dtype=np.int64)
    strides = np.zeros(nlead, dtype=np.int64)
    if mask is not None:
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"mask must be None or a numpy.ndarray of bool or float32, got {type(mask).__name__}")
        if mask.dtype == np.bool_:
            kind = FF_MASK_BOOL
        elif mask.dtype == _FLOAT32:
            kind = FF_MASK_ADD
        else:
            raise TypeError(f"mask must have dtype bool or float32, got {mask.dtype}")
        if not mask.flags.c_contiguous:
            raise ValueError("mask must be C-contiguous (numpy.ascontiguousarray makes it so)")
        if mask.ndim > x.ndim:
            raise ValueError(f"mask of shape {mask.shape} has more axes than x of shape {x.shape}")
        try:
            np.broadcast_to(mask, x.shape)
        except ValueError:
            raise ValueError(f"mask of shape {mask.shape} cannot be broadcast to x's shape {x.shape}") from None
        if mask.ndim == 0 or mask.shape[mask.ndim - 1] != n:  # last axis broadcast: give each row its n entries
            mask = np.ascontiguousarray(np.broadcast_to(mask, mask.shape[:mask.ndim - 1] + (n,)))
        mb = np.broadcast_to(mask, x.shape)
        strides = np.array([s // mask.itemsize for s in mb.strides[:mb.ndim - 1]], dtype=np.int64)
        mp = <const void *>_u8p(mask) if kind == FF_MASK_BOOL else <const void *>_f32p(mask)
    y = check_out("out", out, x.shape)
    cdef float *yp = _f32p(y)
    cdef const float *xp = _f32p(x)
    cdef const int64_t *shp = _i64p(lead_shape) if nlead else NULL
    cdef const int64_t *stp = _i64p(strides) if nlead else NULL
    with nogil:
        ff_softmax_forward(yp, xp, mp, kind, rows, n, nlead, shp, stp)
    return y


def softmax_backward(dy, y, *, out=None):
    """softmax_backward(dy, y, *, out=None) -> dx = y * (dy - sum(dy * y, -1)).
    `out` may be dy (in place)."""
    check_float32("dy", dy)
    check_float32("y", y)
    check_same_shape("dy", dy, "y", y)
    if y.ndim < 1:
        raise ValueError(f"y must have at least 1 axis, got shape {y.shape}")
    cdef size_t n = y.shape[y.ndim - 1]
    cdef size_t rows = y.size // n if n else 0
    dx = check_out("out", out, y.shape)
    cdef float *dxp = _f32p(dx)
    cdef const float *dyp = _f32p(dy)
    cdef const float *yp = _f32p(y)
    with nogil:
        ff_softmax_backward(dxp, dyp, yp, rows, n)
    return dx
