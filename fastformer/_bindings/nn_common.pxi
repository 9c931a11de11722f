# Helpers shared by the nn and optim bindings: raw pointers from checked
# arrays, and argument checks for integers, ids and scalars.
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


cdef object check_int(str name, object v):
    """A Python int from an int or NumPy integer (not bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    return int(v)


cdef double check_real(str name, object v) except? -1.0:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    return float(v)


cdef object check_ids(str name, object ids, Py_ssize_t V):
    """ids as a C-contiguous int64 array, each in [0, V)."""
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of integers, got {type(ids).__name__}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {ids.dtype}")
    if ids.dtype != _INT64 or not ids.flags.c_contiguous:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"{name} must be in [0, {V}), got values in [{ids.min()}, {ids.max()}]")
    return ids


cdef object check_out(str name, object out, tuple shape):
    """A fresh float32 array of `shape`, or `out` checked to be one (writeable)."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    check_float32(name, out, -1, True)
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    return out
