# Argument checks shared by every binding. They run with the GIL held, before
# any C kernel sees a pointer, and name the argument that is wrong.
import numpy as np

cdef object _FLOAT32 = np.dtype(np.float32)


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
