# Vector kernels (csrc/vector/).

cdef extern from "vector/dot.h" nogil:
    float ff_dot(size_t n, const float *x, const float *y)


def dot(x, y):
    """dot(x, y) -> float: sum of x * y over two float32 vectors of one length.

    Summed in fixed-size chunks combined in a fixed order: bitwise identical
    for any thread count."""
    check_float32("x", x, 1)
    check_float32("y", y, 1)
    check_same_shape("x", x, "y", y)
    cdef const float[::1] xv = x
    cdef const float[::1] yv = y
    cdef size_t n = xv.shape[0]
    cdef float r
    if n == 0:
        return 0.0
    with nogil:
        r = ff_dot(n, &xv[0], &yv[0])
    return float(r)
