# LayerNorm with the residual add fused (csrc/nn/layernorm*.c).

cdef extern from "nn/layernorm.h" nogil:
    void ff_layer_norm_forward(float *y, float *mean, float *rstd, const float *x, const float *r,
                               const float *weight, const float *bias, size_t rows, size_t d, float eps)
    int ff_layer_norm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                               const float *r, const float *weight, const float *mean, const float *rstd,
                               size_t rows, size_t d, int accumulate)


cdef void _check_ln_vec(str name, object v, Py_ssize_t d) except *:
    check_float32(name, v, 1)
    if v.shape[0] != d:
        raise ValueError(f"{name} must have shape ({d},) (x's last axis), got {v.shape}")


def layer_norm_forward(x, weight, bias, eps=1e-5, residual=None, *, out=None, out_mean=None, out_rstd=None):
    """layer_norm_forward(x, weight, bias, eps=1e-5, residual=None, *, out=None, out_mean=None, out_rstd=None)
    -> (y, mean, rstd)

    y = LN(x + residual) over the last axis (biased variance); x, residual (..., d);
    weight, bias (d,); mean and rstd = 1/sqrt(var + eps) are (...). out, out_mean,
    out_rstd: float32 arrays of those shapes to write into (none may overlap x or
    residual), so a model reuses its workspace instead of allocating."""
    y, mean, rstd, ev = _ln_forward_checked(x, weight, bias, eps, residual, out, out_mean, out_rstd)
    _ln_forward_run(x, weight, bias, ev, residual, y, mean, rstd)
    return y, mean, rstd


def _layer_norm_into(x, weight, bias, float eps, residual, out, out_mean, out_rstd):
    """layer_norm_forward on the model's own arrays (checked only when
    internal checks are on); returns out."""
    if _internal_checks:
        _ln_forward_checked(x, weight, bias, eps, residual, out, out_mean, out_rstd)
    _ln_forward_run(x, weight, bias, eps, residual, out, out_mean, out_rstd)
    return out


cdef tuple _ln_forward_checked(object x, object weight, object bias, object eps, object residual, object out,
                               object out_mean, object out_rstd):
    """layer_norm_forward's checks -> (y, mean, rstd (new where None), eps)."""
    check_float32("x", x)
    if x.ndim < 1 or x.shape[x.ndim - 1] == 0:
        raise ValueError(f"x must have a last axis of at least 1 feature, got shape {x.shape}")
    cdef Py_ssize_t d = x.shape[x.ndim - 1]
    _check_ln_vec("weight", weight, d)
    _check_ln_vec("bias", bias, d)
    cdef float ev = <float>check_real("eps", eps)
    if residual is not None:
        check_float32("residual", residual)
        check_same_shape("residual", residual, "x", x)
    return (check_out("out", out, x.shape), check_out("out_mean", out_mean, x.shape[:x.ndim - 1]),
            check_out("out_rstd", out_rstd, x.shape[:x.ndim - 1]), ev)


cdef void _ln_forward_run(object x, object weight, object bias, float eps, object residual, object y, object mean,
                          object rstd) except *:
    cdef size_t d = x.shape[x.ndim - 1]
    cdef size_t rows = x.size // d
    cdef float *yp = _f32p(y)
    cdef float *mp = _f32p(mean)
    cdef float *rp = _f32p(rstd)
    cdef const float *xp = _f32p(x)
    cdef const float *resp = _f32p(residual) if residual is not None else NULL
    cdef const float *wp = _f32p(weight)
    cdef const float *bp = _f32p(bias)
    with nogil:
        ff_layer_norm_forward(yp, mp, rp, xp, resp, wp, bp, rows, d, eps)


def layer_norm_backward(dy, x, weight, mean, rstd, residual=None, *, out=None, dweight=None, dbias=None,
                        accumulate=False):
    """layer_norm_backward(dy, x, weight, mean, rstd, residual=None, *, out=None, dweight=None, dbias=None,
    accumulate=False) -> (dx, dweight, dbias)

    dx (like x; written into `out` when given, which must not overlap the inputs)
    is also the residual's gradient. dweight and dbias (d,) are summed over
    rows in fixed chunks combined in a fixed order: the same bits for any thread
    count; written into `dweight`/`dbias` when given, or, with accumulate=True,
    added to them (a model's gradient buffers)."""
    dx, dweight, dbias = _ln_backward_checked(dy, x, weight, mean, rstd, residual, out, dweight, dbias, accumulate)
    _ln_backward_run(dy, x, weight, mean, rstd, residual, dx, dweight, dbias, accumulate)
    return dx, dweight, dbias


def _layer_norm_backward_into(dy, x, weight, mean, rstd, residual, out, dweight, dbias):
    """layer_norm_backward(..., out=out, dweight=dweight, dbias=dbias,
    accumulate=True) on the model's own arrays (checked only when internal
    checks are on)."""
    if _internal_checks:
        _ln_backward_checked(dy, x, weight, mean, rstd, residual, out, dweight, dbias, True)
    _ln_backward_run(dy, x, weight, mean, rstd, residual, out, dweight, dbias, True)


cdef tuple _ln_backward_checked(object dy, object x, object weight, object mean, object rstd, object residual,
                                object out, object dweight, object dbias, object accumulate):
    """layer_norm_backward's checks -> (dx, dweight, dbias), new where None."""
    check_float32("dy", dy)
    check_float32("x", x)
    check_same_shape("dy", dy, "x", x)
    if x.ndim < 1 or x.shape[x.ndim - 1] == 0:
        raise ValueError(f"x must have a last axis of at least 1 feature, got shape {x.shape}")
    cdef Py_ssize_t d = x.shape[x.ndim - 1]
    _check_ln_vec("weight", weight, d)
    for name, a in (("mean", mean), ("rstd", rstd)):
        check_float32(name, a)
        if a.shape != x.shape[:x.ndim - 1]:
            raise ValueError(f"{name} must have shape {x.shape[:x.ndim - 1]} (x without its last axis), got {a.shape}")
    if residual is not None:
        check_float32("residual", residual)
        check_same_shape("residual", residual, "x", x)
    dx = check_out("out", out, x.shape)
    dweight = check_grad_out("dweight", dweight, (d,), accumulate)
    dbias = check_grad_out("dbias", dbias, (d,), accumulate)
    for name, a in (("dweight", dweight), ("dbias", dbias)):
        for other, oname in ((dx, "out"), (dy, "dy"), (x, "x"), (residual, "residual"), (weight, "weight"),
                             (mean, "mean"), (rstd, "rstd")):
            if other is not None and np.may_share_memory(a, other):
                raise ValueError(f"{name} must not overlap {oname}")
    if np.may_share_memory(dweight, dbias):
        raise ValueError("dweight must not overlap dbias")
    return dx, dweight, dbias


cdef void _ln_backward_run(object dy, object x, object weight, object mean, object rstd, object residual,
                           object dx, object dweight, object dbias, bint accumulate) except *:
    cdef size_t d = x.shape[x.ndim - 1]
    cdef size_t rows = x.size // d
    cdef int acc = 1 if accumulate else 0
    cdef float *dxp = _f32p(dx)
    cdef float *dwp = _f32p(dweight)
    cdef float *dbp = _f32p(dbias)
    cdef const float *dyp = _f32p(dy)
    cdef const float *xp = _f32p(x)
    cdef const float *resp = _f32p(residual) if residual is not None else NULL
    cdef const float *wp = _f32p(weight)
    cdef const float *mp = _f32p(mean)
    cdef const float *rp = _f32p(rstd)
    cdef int rc
    with nogil:
        rc = ff_layer_norm_backward(dxp, dwp, dbp, dyp, xp, resp, wp, mp, rp, rows, d, acc)
    if rc != 0:
        raise MemoryError("layer_norm_backward: out of memory for the partial sums")
