# Dropout with the counter-based Philox mask (csrc/nn/dropout.c).
import operator as _operator

cdef extern from "nn/dropout.h" nogil:
    void ff_dropout_forward(float *y, const float *x, size_t n, double p, uint64_t seed, uint64_t step,
                            uint64_t site)
    void ff_dropout_mask(uint8_t *keep, size_t n, double p, uint64_t seed, uint64_t step, uint64_t site)


cdef double _check_p(object p) except? -1.0:
    cdef double pv = check_real("p", p)
    if not 0.0 <= pv <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return pv


cdef tuple _rng_words(object seed, object step, object site):
    return (check_int("seed", seed, INT64_MIN, UINT64_MAX) & 0xFFFFFFFFFFFFFFFF, check_int("step", step, INT64_MIN, UINT64_MAX) & 0xFFFFFFFF,
            check_int("site", site, INT64_MIN, UINT64_MAX) & 0xFFFFFFFF)


def dropout_mask(shape, p, seed, step, site):
    """dropout_mask(shape, p, seed, step, site) -> bool array of `shape`, True where
    the element survives dropout p (bit for bit the reference's Philox mask)."""
    cdef double pv = _check_p(p)
    cdef uint64_t s, st, si
    s, st, si = _rng_words(seed, step, site)
    try:
        shape = (tuple(_operator.index(dim) for dim in shape) if isinstance(shape, (tuple, list))
                 else (_operator.index(shape),))
        if any(dim < 0 for dim in shape):
            raise ValueError(shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a tuple of non-negative ints, got {shape!r}") from None
    keep = new_array("the mask", shape, np.bool_)
    cdef size_t n = keep.size
    cdef uint8_t *kp = _u8p(keep)
    with nogil:
        ff_dropout_mask(kp, n, pv, s, st, si)
    return keep


cdef object _dropout(str name, object x, object p, object seed, object step, object site, object out):
    check_float32(name, x)
    cdef double pv = _check_p(p)
    cdef uint64_t s, st, si
    s, st, si = _rng_words(seed, step, site)
    y = check_out("out", out, x.shape)
    _dropout_run(x, pv, s, st, si, y)
    return y


cdef void _dropout_run(object x, double p, uint64_t seed, uint64_t step, uint64_t site, object y) except *:
    cdef size_t n = x.size
    cdef float *yp = _f32p(y)
    cdef const float *xp = _f32p(x)
    with nogil:
        ff_dropout_forward(yp, xp, n, p, seed, step, site)


def _dropout_into(x, double p, seed, step, site, out):
    """dropout_forward (or _backward: the same mask) of the model's own arrays
    into out (checked only when internal checks are on)."""
    if _internal_checks:
        _dropout("x", x, p, seed, step, site, out)
    else:
        _dropout_run(x, p, seed & 0xFFFFFFFFFFFFFFFF, step & 0xFFFFFFFF, site & 0xFFFFFFFF, out)
    return out


def dropout_forward(x, p, seed, step, site, *, out=None):
    """dropout_forward(x, p, seed, step, site, *, out=None) -> y like x:
    x * float32(1 / (1 - p)) where kept, else 0. `out` may be x (in place)."""
    return _dropout("x", x, p, seed, step, site, out)


def dropout_backward(dy, p, seed, step, site, *, out=None):
    """dropout_backward(dy, p, seed, step, site, *, out=None) -> dx: the forward's
    mask regenerated and applied to dy."""
    return _dropout("dy", dy, p, seed, step, site, out)
