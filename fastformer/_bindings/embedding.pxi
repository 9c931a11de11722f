# Token embedding with the sqrt(d) scale and positions fused (csrc/nn/embedding.c).
from libc.math cimport sqrt

cdef extern from "nn/embedding.h" nogil:
    void ff_embedding_forward(float *y, const int64_t *ids, const float *weight, const float *positions,
                              size_t ntok, size_t T, size_t d, float scale)
    int ff_embedding_backward(float *dweight, const float *dx, const int64_t *ids, size_t ntok, size_t V,
                              size_t d, float scale, int accumulate)


def embedding_forward(ids, weight, positions, *, out=None):
    """embedding_forward(ids, weight, positions, *, out=None) -> x (..., T, d)

    x = weight[ids] * float32(sqrt(d)) + positions[:T]; ids (..., T) any integer
    dtype, each in [0, V); weight (V, d); positions (>= T, d)."""
    check_float32("weight", weight, 2)
    check_float32("positions", positions, 2)
    cdef Py_ssize_t V = weight.shape[0], d = weight.shape[1]
    ids = check_ids("ids", ids, V)
    if ids.ndim < 1:
        raise ValueError(f"ids must have at least 1 axis (the positions), got shape {ids.shape}")
    cdef size_t T = ids.shape[ids.ndim - 1]
    if positions.shape[1] != d:
        raise ValueError(f"positions must have {d} columns (weight's), got shape {positions.shape}")
    if <size_t>positions.shape[0] < T:
        raise ValueError(f"positions must have at least {T} rows (ids' last axis), got shape {positions.shape}")
    y = check_out("out", out, ids.shape + (d,))
    cdef size_t ntok = ids.size
    cdef float scale = <float>sqrt(<double>d)
    cdef float *yp = _f32p(y)
    cdef const int64_t *ip = _i64p(ids)
    cdef const float *wp = _f32p(weight)
    cdef const float *pp = _f32p(positions)
    if ntok == 0 or d == 0:
        return y
    with nogil:
        ff_embedding_forward(yp, ip, wp, pp, ntok, T, d, scale)
    return y


def embedding_backward(dx, ids, num_embeddings, *, out=None, accumulate=False):
    """embedding_backward(dx, ids, num_embeddings, *, out=None, accumulate=False) -> dweight (num_embeddings, d)

    The scaled gradient scatter-added by id, each table row summing its tokens in
    token order: the same bits for any thread count, repeated ids included.
    Written into `out` (float32 (num_embeddings, d)) when given, or, with
    accumulate=True, added to it: a model accumulates into its gradient buffer
    without a (V, d) temporary."""
    check_float32("dx", dx)
    cdef Py_ssize_t V = check_int("num_embeddings", num_embeddings, 1)
    ids = check_ids("ids", ids, V)
    if dx.ndim != ids.ndim + 1 or dx.shape[:dx.ndim - 1] != ids.shape:
        raise ValueError(f"dx must have shape {ids.shape} + (d,) (ids' shape plus the model width), got {dx.shape}")
    cdef size_t d = dx.shape[dx.ndim - 1]
    dweight = check_grad_out("out", out, (V, <Py_ssize_t>d), accumulate)
    if np.may_share_memory(dweight, dx):
        raise ValueError("out must not overlap dx")
    cdef int acc = 1 if accumulate else 0
    cdef size_t ntok = ids.size
    cdef float scale = <float>sqrt(<double>d)
    cdef float *dwp = _f32p(dweight)
    cdef const float *dxp = _f32p(dx)
    cdef const int64_t *ip = _i64p(ids)
    cdef int rc
    if d == 0:
        return dweight
    with nogil:
        rc = ff_embedding_backward(dwp, dxp, ip, ntok, V, d, scale, acc)
    if rc != 0:
        raise MemoryError("embedding_backward: out of memory for the id sort")
    return dweight
