# Helpers shared by the nn and optim bindings: raw pointers from checked
# arrays, and argument checks for integers, ids and scalars.
import math

from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef object _INT64 = np.dtype(np.int64)


cdef void *_data_ptr(object a) except? NULL:
    """Data pointer of a C-contiguous array (NULL when empty), by one buffer
    request: no reshaped copy, no memoryview object."""
    cdef Py_buffer v
    PyObject_GetBuffer(a, &v, PyBUF_C_CONTIGUOUS)
    cdef void *p = v.buf if v.len else NULL
    PyBuffer_Release(&v)
    return p


cdef float *_f32p(object a) except? NULL:
    """Data pointer of a checked C-contiguous float32 array (NULL when empty)."""
    return <float *>_data_ptr(a)


cdef int64_t *_i64p(object a) except? NULL:
    return <int64_t *>_data_ptr(a)


cdef uint8_t *_u8p(object a) except? NULL:
    return <uint8_t *>_data_ptr(a)


INT64_MIN, INT64_MAX, UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1


cdef object check_int(str name, object v, object lo=None, object hi=None):
    """A Python int in [lo, hi] (default: C's int64 range) from an int or NumPy integer (not bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    v = int(v)
    lo = INT64_MIN if lo is None else lo
    hi = INT64_MAX if hi is None else hi
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if v > hi:
        raise ValueError(f"{name} must be <= {hi} (the kernel's integer range), got {v}")
    return v


cdef double check_real(str name, object v) except? -1.0:
    """A finite Python float from a real number (not bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got {v!r} (beyond the float range)") from None
    if not math.isfinite(f):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    return f


cdef object as_int64(object ids):
    """ids as a C-contiguous, 8-byte aligned int64 array (a copy only when needed)."""
    return np.require(ids, dtype=np.int64, requirements=("C", "A"))


cdef bint _ids_fast(object ids, Py_ssize_t V):
    """Whether ids is already a C-contiguous aligned int64 ndarray with every
    entry in [0, V), checked in one pass over its buffer (the common case;
    numpy's min and max cost microseconds on every decoding step)."""
    if type(ids) is not _NDARRAY or ids.dtype is not _INT64:
        return False
    cdef Py_buffer v
    try:
        PyObject_GetBuffer(ids, &v, PyBUF_C_CONTIGUOUS)
    except Exception:
        return False
    cdef const int64_t *p = <const int64_t *>v.buf
    cdef Py_ssize_t i, n = v.len // 8
    cdef bint ok = (<size_t>v.buf) % 8 == 0
    if ok:
        for i in range(n):
            if p[i] < 0 or p[i] >= V:
                ok = False
                break
    PyBuffer_Release(&v)
    return ok


cdef object check_ids(str name, object ids, Py_ssize_t V):
    """ids as a C-contiguous int64 array, each in [0, V)."""
    if _ids_fast(ids, V):
        return ids
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of integers, got {type(ids).__name__}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {ids.dtype}")
    ids = as_int64(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"{name} must be in [0, {V}), got values in [{ids.min()}, {ids.max()}]")
    return ids


cdef object check_out(str name, object out, tuple shape):
    """A fresh float32 array of `shape`, or `out` checked to be one (writeable)."""
    if out is None:
        return new_array(name, shape)
    check_float32(name, out, -1, True)
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    return out


cdef object check_grad_out(str name, object out, tuple shape, bint accumulate):
    """Where a parameter's gradient goes: `out` checked (with accumulate, the
    gradient is added to it: the one convention of the backward ops), or a
    fresh array."""
    if out is None and accumulate:
        raise ValueError(f"accumulate=True needs {name}= (the gradient that is added to)")
    return check_out(name, out, shape)
