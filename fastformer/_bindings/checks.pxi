# Argument checks shared by every binding. They run with the GIL held, before
# any C kernel sees a pointer, and name the argument that is wrong.
import os

import numpy as np

cdef object _FLOAT32 = np.dtype(np.float32)


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


cdef object _MEMORY_BYTES = _physical_memory()


cdef object new_array(str name, tuple shape, object dtype=_FLOAT32):
    """np.empty(shape, dtype), refused with MemoryError when it could not fit
    this machine's memory: a lazily committed giant array that the kernel then
    writes would be killed by the OS instead of raising."""
    cdef object nbytes = np.dtype(dtype).itemsize
    for n in shape:
        nbytes *= n
    if _MEMORY_BYTES is not None and nbytes > _MEMORY_BYTES:
        raise MemoryError(f"{name} of shape {shape} would take {nbytes >> 30:,} GiB; "
                          f"this machine has {_MEMORY_BYTES >> 30:,} GiB")
    return np.empty(shape, dtype=dtype)


cdef object check_float32(str name, object a, int ndim=-1, bint writeable=False):
    """Return `a` if it is a C-contiguous float32 ndarray of rank `ndim` (any rank if -1)."""
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


cdef void check_same_shape(str name, object a, str other, object b) except *:
    if a.shape != b.shape:
        raise ValueError(f"{name} has shape {a.shape} but {other} has shape {b.shape}; they must match")
