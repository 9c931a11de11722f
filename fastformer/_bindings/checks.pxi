# Argument checks shared by every binding. They run with the GIL held, before
# any C kernel sees a pointer, and name the argument that is wrong.
import os

import numpy as np

from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_STRIDES, PyBUF_WRITABLE, PyBuffer_IsContiguous,
                             PyBuffer_Release, PyObject_GetBuffer)

cdef object _FLOAT32 = np.dtype(np.float32)
cdef object _NDARRAY = np.ndarray


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


cdef object _MEMORY_BYTES = _physical_memory()

# The model's own calls (the `_`-prefixed bindings it uses on arrays it made)
# skip the argument checks, which cost microseconds per call (decoding makes
# dozens per token). FASTFORMER_CHECK_INTERNAL=1 turns them back on, so a
# debug or sanitizer run reports a wrong internal call as the public one would.
cdef bint _internal_checks = os.environ.get("FASTFORMER_CHECK_INTERNAL", "0") not in ("", "0")


def _set_internal_checks(on):
    """Tests: turn the checks of the model's own calls on or off; returns the previous setting."""
    global _internal_checks
    previous, _internal_checks = _internal_checks, bool(on)
    return previous


cdef object new_array(str name, tuple shape, object dtype=_FLOAT32):
    """np.empty(shape, dtype), refused with MemoryError when it could not fit
    this machine's memory: a lazily committed giant array that the kernel then
    writes would be killed by the OS instead of raising."""
    cdef object nbytes = 4 if dtype is _FLOAT32 else np.dtype(dtype).itemsize
    for n in shape:
        nbytes *= n
    if _MEMORY_BYTES is not None and nbytes > _MEMORY_BYTES:
        raise MemoryError(f"{name} of shape {shape} would take {nbytes >> 30:,} GiB; "
                          f"this machine has {_MEMORY_BYTES >> 30:,} GiB")
    return np.empty(shape, dtype=dtype)


cdef bint _is_float32_c(object a, int ndim, bint writeable):
    """Whether a is a C-contiguous, aligned, native float32 ndarray of rank ndim
    (any if -1), writeable if asked: the common case in one buffer request
    (attribute by attribute it cost microseconds per argument, which decoding
    pays on every step). Anything else takes check_float32's slow path."""
    if type(a) is not _NDARRAY:
        return False
    cdef Py_buffer v
    cdef int flags = PyBUF_FORMAT | PyBUF_STRIDES | (PyBUF_WRITABLE if writeable else 0)
    try:
        PyObject_GetBuffer(a, &v, flags)
    except Exception:
        return False
    cdef bint ok = (v.itemsize == 4 and v.format != NULL and v.format[0] == b'f' and v.format[1] == 0
                    and (ndim < 0 or v.ndim == ndim) and PyBuffer_IsContiguous(&v, b'C')
                    and (<size_t>v.buf) % 4 == 0)
    PyBuffer_Release(&v)
    return ok


cdef object check_float32(str name, object a, int ndim=-1, bint writeable=False):
    """Return `a` if it is a C-contiguous float32 ndarray of rank `ndim` (any rank if -1)."""
    if _is_float32_c(a, ndim, writeable):
        return a
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32, got {type(a).__name__}")
    if a.dtype != _FLOAT32:
        raise TypeError(f"{name} must have dtype float32, got {a.dtype}")
    if ndim >= 0 and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous or not a.flags.aligned:
        raise ValueError(f"{name} must be C-contiguous and aligned (numpy.ascontiguousarray makes it so)")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return a


cdef object _UINT16 = np.dtype(np.uint16)


cdef bint is_bf16_storage(object a):
    """Whether `a` holds bf16 values as np.uint16 (the top halves of float32s)."""
    return isinstance(a, np.ndarray) and a.dtype == _UINT16


cdef object check_bf16_storage(str name, object a, int ndim=-1, bint writeable=False):
    """Return `a` if it is a C-contiguous, aligned uint16 ndarray (bf16 values) of rank `ndim`."""
    if not isinstance(a, np.ndarray) or a.dtype != _UINT16:
        raise TypeError(f"{name} must be a numpy.ndarray of uint16 (bf16 values)")
    if ndim >= 0 and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous or not a.flags.aligned:
        raise ValueError(f"{name} must be C-contiguous and aligned (numpy.ascontiguousarray makes it so)")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return a


cdef void check_same_shape(str name, object a, str other, object b) except *:
    if a.shape != b.shape:
        raise ValueError(f"{name} has shape {a.shape} but {other} has shape {b.shape}; they must match")
