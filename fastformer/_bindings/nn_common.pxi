# Helpers shared by the nn and optim bindings: raw pointers from checked
# arrays, and argument checks for integers, ids and scalars.
import math

from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef object _INT64 = np.dtype(np.int64)


cdef float *_f32p(object a) except? NULL:
    """Data pointer of a checked C-contiguous float32 array (NULL when empty)."""
    cdef const float[::1] v = a.reshape(-1)
    if v.shape[0] == 0:
        return NULL
    return <float *>&v[0]


cdef int64_t *_i64p(object a) except? NULL:
    cdef const int64_t[::1] v = a.reshape(-1)
    if v.shape[0] == 0:
        return NULL
    return <int64_t *>&v[0]


cdef uint8_t *_u8p(object a) except? NULL:
    cdef const uint8_t[::1] v = a.reshape(-1).view(np.uint8)
    if v.shape[0] == 0:
        return NULL
    return <uint8_t *>&v[0]


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


cdef object check_ids(str name, object ids, Py_ssize_t V):
    """ids as a C-contiguous int64 array, each in [0, V)."""
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
