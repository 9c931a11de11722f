# Linear layer, activations and the feed-forward sublayer (csrc/nn/linear.c,
# activation.c, ffn.c), all through ff_sgemm.

cdef extern from "nn/linear.h" nogil:
    int ff_linear_forward(float *y, const float *x, const float *weight, const float *bias, ff_activation_t act,
                          size_t rows, size_t n_in, size_t n_out, int bf16)
    int ff_linear_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                           const float *weight, size_t rows, size_t n_in, size_t n_out, int bf16)
    int ff_colsum(float *s, const float *x, size_t rows, size_t n, int accumulate)

cdef extern from "nn/activation.h" nogil:
    void ff_activation_forward(float *y, const float *x, size_t n, ff_activation_t act)
    void ff_activation_backward(float *dx, const float *dy, const float *x, size_t n, ff_activation_t act)
    void ff_relu_backward_bf16(float *dx, const float *dy, const uint16_t *x, size_t n)

cdef extern from "nn/ffn.h" nogil:
    int ff_ffn_forward(float *y, float *hidden_pre, const float *x, const float *w1, const float *b1,
                       const float *w2, const float *b2, ff_activation_t act, size_t rows, size_t d, size_t d_ff,
                       int bf16)
    int ff_ffn_backward(float *dx, float *dw1, float *db1, float *dw2, float *db2, const float *dy, const float *x,
                        const float *hidden_pre, const float *w1, const float *w2, ff_activation_t act, size_t rows,
                        size_t d, size_t d_ff, int bf16)


cdef ff_activation_t _check_act_name(object activation) except *:
    """'relu' or 'gelu' (the FFN's activations; None is not one)."""
    if not isinstance(activation, str):
        raise TypeError(f"activation must be 'relu' or 'gelu', got {type(activation).__name__}")
    if activation == "relu":
        return FF_ACT_RELU
    if activation == "gelu":
        return FF_ACT_GELU
    raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")


cdef void _check_features(str name, object a, str wname, Py_ssize_t n) except *:
    """a is (..., n): at least 1-D with last axis n (the in-features of weight)."""
    if a.ndim < 1:
        raise ValueError(f"{name} must have at least 1 axis, got shape {a.shape}")
    if a.shape[a.ndim - 1] != n:
        raise ValueError(f"{name} must have shape (..., {n}) to match {wname}, got {a.shape}")


def column_sum(x, *, out=None, accumulate=False):
    """column_sum(x, *, out=None, accumulate=False) -> out

    x: (..., n) -> out (n,) = x summed over every leading axis (a bias
    gradient), or out += that sum when accumulate. Summed in fixed row chunks
    combined in order: bitwise identical for any thread count."""
    check_float32("x", x)
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 axis, got shape {x.shape}")
    cdef size_t n = x.shape[x.ndim - 1]
    if out is None:
        if accumulate:
            raise ValueError("accumulate=True needs out= (the gradient that is added to)")
        out = np.empty(n, dtype=np.float32)
    else:
        check_float32("out", out, 1, writeable=True)
        if out.shape != (n,):
            raise ValueError(f"out must have shape ({n},) to match x, got {out.shape}")
    _colsum_run(x, out, accumulate)
    return out


def _column_sum_into(x, out):
    """column_sum(x, out=out, accumulate=True) on the model's own arrays
    (checked only when internal checks are on)."""
    if _internal_checks:
        column_sum(x, out=out, accumulate=True)
    else:
        _colsum_run(x, out, True)


cdef void _colsum_run(object x, object out, bint accumulate) except *:
    cdef size_t n = x.shape[x.ndim - 1]
    cdef size_t rows = x.size // n if n else 0
    cdef float *po = _f32p(out)
    cdef const float *px = _f32p(x)
    cdef int acc = 1 if accumulate else 0
    cdef int rc
    with nogil:
        rc = ff_colsum(po, px, rows, n, acc)
    if rc != 0:
        raise MemoryError("column_sum: could not allocate its chunk buffer")


def linear_forward(x, weight, bias=None, *, compute_dtype="float32"):
    """linear_forward(x, weight, bias=None, *, compute_dtype="float32") -> y = x weight^T + bias

    x: (..., in), weight: (out, in), bias: (out,) or None -> y: (..., out).
    compute_dtype="bfloat16": the product on bf16-rounded inputs (as matmul's)."""
    cdef int bf16 = _check_compute_dtype(compute_dtype)
    check_float32("weight", weight, 2)
    check_float32("x", x)
    _check_features("x", x, "weight", weight.shape[1])
    cdef size_t n_out = weight.shape[0], n_in = weight.shape[1]
    if bias is not None:
        check_float32("bias", bias, 1)
        if bias.shape != (n_out,):
            raise ValueError(f"bias must have shape ({n_out},), got {bias.shape}")
    y = np.empty(x.shape[:x.ndim - 1] + (n_out,), dtype=np.float32)
    cdef size_t rows = 1
    for s in x.shape[:x.ndim - 1]:
        rows *= s
    if rows == 0 or n_out == 0:
        return y
    if n_in == 0:
        y[...] = 0.0 if bias is None else bias
        return y
    cdef float *py = _f32p(y)
    cdef const float *px = _f32p(x)
    cdef const float *pw = _f32p(weight)
    cdef const float *pb = _f32p(bias) if bias is not None else NULL
    cdef int rc
    with nogil:
        rc = ff_linear_forward(py, px, pw, pb, FF_ACT_NONE, rows, n_in, n_out, bf16)
    if rc != 0:
        raise MemoryError("linear_forward: could not allocate GEMM pack buffers")
    return y


def linear_backward(dy, x, weight, need_dx=True, *, compute_dtype="float32"):
    """linear_backward(dy, x, weight, need_dx=True, *, compute_dtype="float32") -> (dx or None, dweight, dbias)

    dy: (..., out), x: (..., in), weight: (out, in) -> dx (..., in) (None when
    not need_dx), dweight (out, in), dbias (out,); compute_dtype as the forward's."""
    cdef int bf16 = _check_compute_dtype(compute_dtype)
    check_float32("weight", weight, 2)
    check_float32("x", x)
    check_float32("dy", dy)
    _check_features("x", x, "weight", weight.shape[1])
    cdef size_t n_out = weight.shape[0], n_in = weight.shape[1]
    if dy.shape != x.shape[:x.ndim - 1] + (n_out,):
        raise ValueError(f"dy must have shape {x.shape[:x.ndim - 1] + (n_out,)} (x's leading axes, out), "
                         f"got {dy.shape}")
    cdef bint want_dx = _check_flag("need_dx", need_dx)
    cdef size_t rows = 1
    for s in x.shape[:x.ndim - 1]:
        rows *= s
    dx = np.empty(x.shape, dtype=np.float32) if want_dx else None
    dweight = np.empty((n_out, n_in), dtype=np.float32)
    dbias = np.empty((n_out,), dtype=np.float32)
    cdef float *pdx = _f32p(dx) if want_dx else NULL
    cdef float *pdw = _f32p(dweight)
    cdef float *pdb = _f32p(dbias)
    cdef const float *pdy = _f32p(dy)
    cdef const float *px = _f32p(x)
    cdef const float *pw = _f32p(weight)
    cdef int rc
    with nogil:
        rc = ff_linear_backward(pdx, pdw, pdb, pdy, px, pw, rows, n_in, n_out, bf16)
    if rc != 0:
        raise MemoryError("linear_backward: could not allocate a workspace")
    return dx, dweight, dbias


cdef object _act_forward(object x, ff_activation_t act, object out):
    check_float32("x", x)
    y = check_out("out", out, x.shape)
    _act_forward_run(x, act, y)
    return y


cdef void _act_forward_run(object x, ff_activation_t act, object y) except *:
    cdef size_t n = x.size
    cdef float *py = _f32p(y)
    cdef const float *px = _f32p(x)
    with nogil:
        ff_activation_forward(py, px, n, act)


cdef object _act_backward(object dy, object x, ff_activation_t act, object out):
    check_float32("dy", dy)
    if act == FF_ACT_RELU and is_bf16_storage(x):
        check_bf16_storage("x", x)
    else:
        check_float32("x", x)
    check_same_shape("dy", dy, "x", x)
    dx = check_out("out", out, x.shape)
    _act_backward_run(dy, x, act, dx)
    return dx


cdef void _act_backward_run(object dy, object x, ff_activation_t act, object dx) except *:
    cdef size_t n = x.size
    cdef float *pdx = _f32p(dx)
    cdef const float *pdy = _f32p(dy)
    cdef const void *px = _data_ptr(x)
    cdef bint x_bf16 = is_bf16_storage(x)
    with nogil:
        if x_bf16:
            ff_relu_backward_bf16(pdx, pdy, <const uint16_t *>px, n)
        else:
            ff_activation_backward(pdx, pdy, <const float *>px, n, act)


def _activation_into(x, activation, out):
    """relu_forward / gelu_forward (activation 'relu' or 'gelu') of the model's
    own arrays into out (checked only when internal checks are on)."""
    cdef ff_activation_t act = _ACTIVATIONS[activation]
    if _internal_checks:
        _act_forward(x, act, out)
    else:
        _act_forward_run(x, act, out)
    return out


def _activation_backward_into(dy, x, activation, out):
    """relu_backward / gelu_backward of the model's own arrays into out
    (checked only when internal checks are on)."""
    cdef ff_activation_t act = _ACTIVATIONS[activation]
    if _internal_checks:
        _act_backward(dy, x, act, out)
    else:
        _act_backward_run(dy, x, act, out)
    return out


def relu_forward(x, *, out=None):
    """relu_forward(x, *, out=None) -> max(x, 0), elementwise.
    out: a float32 array of the result's shape to write into; may be the input."""
    return _act_forward(x, FF_ACT_RELU, out)


def relu_backward(dy, x, *, out=None):
    """relu_backward(dy, x, *, out=None) -> dy where x > 0 else 0.
    x: float32, or bf16 values as uint16 (to_bf16's output).
    out: a float32 array of the result's shape to write into; may be the input."""
    return _act_backward(dy, x, FF_ACT_RELU, out)


def gelu_forward(x, *, out=None):
    """gelu_forward(x, *, out=None) -> 0.5 x (1 + erf(x / sqrt 2)), the exact GELU.
    out: a float32 array of the result's shape to write into; may be the input."""
    return _act_forward(x, FF_ACT_GELU, out)


def gelu_backward(dy, x, *, out=None):
    """gelu_backward(dy, x, *, out=None) -> dy * (Phi(x) + x phi(x)).
    out: a float32 array of the result's shape to write into; may be the input."""
    return _act_backward(dy, x, FF_ACT_GELU, out)


cdef tuple _ffn_check(object x, object w1, object w2):
    """Check x (..., d), w1 (d_ff, d), w2 (d, d_ff); return (rows, d, d_ff)."""
    check_float32("w1", w1, 2)
    check_float32("w2", w2, 2)
    check_float32("x", x)
    d_ff, d = w1.shape
    if w2.shape != (d, d_ff):
        raise ValueError(f"w2 must have shape (d, d_ff) = ({d}, {d_ff}) to match w1 {w1.shape}, got {w2.shape}")
    _check_features("x", x, "w1", d)
    rows = 1
    for s in x.shape[:x.ndim - 1]:
        rows *= s
    return rows, d, d_ff


def ffn_forward(x, w1, b1, w2, b2, activation="relu", *, compute_dtype="float32"):
    """ffn_forward(x, w1, b1, w2, b2, activation="relu", *, compute_dtype="float32") -> (y (..., d), hidden_pre (..., d_ff))

    y = act(x w1^T + b1) w2^T + b2 with w1 (d_ff, d), b1 (d_ff,), w2 (d, d_ff),
    b2 (d,); hidden_pre = x w1^T + b1 is kept for the backward.
    compute_dtype="bfloat16": both products on bf16-rounded inputs."""
    cdef ff_activation_t act = _check_act_name(activation)
    cdef int bf16 = _check_compute_dtype(compute_dtype)
    rows, d, d_ff = _ffn_check(x, w1, w2)
    check_float32("b1", b1, 1)
    check_float32("b2", b2, 1)
    if b1.shape != (d_ff,):
        raise ValueError(f"b1 must have shape ({d_ff},), got {b1.shape}")
    if b2.shape != (d,):
        raise ValueError(f"b2 must have shape ({d},), got {b2.shape}")
    lead = x.shape[:x.ndim - 1]
    y = np.empty(lead + (d,), dtype=np.float32)
    hidden_pre = np.empty(lead + (d_ff,), dtype=np.float32)
    if rows == 0:
        return y, hidden_pre
    if d == 0 or d_ff == 0:  # empty products: only the biases remain
        hidden_pre[...] = b1
        y[...] = b2
        return y, hidden_pre
    cdef size_t r = rows, dd = d, dff = d_ff
    cdef float *py = _f32p(y)
    cdef float *ph = _f32p(hidden_pre)
    cdef const float *px = _f32p(x)
    cdef const float *pw1 = _f32p(w1)
    cdef const float *pb1 = _f32p(b1)
    cdef const float *pw2 = _f32p(w2)
    cdef const float *pb2 = _f32p(b2)
    cdef int rc
    with nogil:
        rc = ff_ffn_forward(py, ph, px, pw1, pb1, pw2, pb2, act, r, dd, dff, bf16)
    if rc != 0:
        raise MemoryError("ffn_forward: could not allocate a workspace")
    return y, hidden_pre


def ffn_backward(dy, x, hidden_pre, w1, w2, activation="relu", *, compute_dtype="float32"):
    """ffn_backward(dy, x, hidden_pre, w1, w2, activation="relu", *, compute_dtype="float32") -> (dx, dw1, db1, dw2, db2)

    dy: (..., d), x: (..., d), hidden_pre: (..., d_ff) from ffn_forward;
    compute_dtype as the forward's (all four products)."""
    cdef ff_activation_t act = _check_act_name(activation)
    cdef int bf16 = _check_compute_dtype(compute_dtype)
    rows, d, d_ff = _ffn_check(x, w1, w2)
    check_float32("dy", dy)
    check_float32("hidden_pre", hidden_pre)
    lead = x.shape[:x.ndim - 1]
    if dy.shape != lead + (d,):
        raise ValueError(f"dy must have shape {lead + (d,)} (x's shape), got {dy.shape}")
    if hidden_pre.shape != lead + (d_ff,):
        raise ValueError(f"hidden_pre must have shape {lead + (d_ff,)} (x's leading axes, d_ff), "
                         f"got {hidden_pre.shape}")
    dx = np.empty(x.shape, dtype=np.float32)
    dw1 = np.empty((d_ff, d), dtype=np.float32)
    db1 = np.empty((d_ff,), dtype=np.float32)
    dw2 = np.empty((d, d_ff), dtype=np.float32)
    db2 = np.empty((d,), dtype=np.float32)
    if rows == 0 or d == 0 or d_ff == 0:
        dx[...] = 0
        dw1[...] = 0
        dw2[...] = 0
        db1[...] = 0
        db2[...] = dy.reshape(-1, d).sum(axis=0) if d else 0
        return dx, dw1, db1, dw2, db2
    cdef size_t r = rows, dd = d, dff = d_ff
    cdef float *pdx = _f32p(dx)
    cdef float *pdw1 = _f32p(dw1)
    cdef float *pdb1 = _f32p(db1)
    cdef float *pdw2 = _f32p(dw2)
    cdef float *pdb2 = _f32p(db2)
    cdef const float *pdy = _f32p(dy)
    cdef const float *px = _f32p(x)
    cdef const float *ph = _f32p(hidden_pre)
    cdef const float *pw1 = _f32p(w1)
    cdef const float *pw2 = _f32p(w2)
    cdef int rc
    with nogil:
        rc = ff_ffn_backward(pdx, pdw1, pdb1, pdw2, pdb2, pdy, px, ph, pw1, pw2, act, r, dd, dff, bf16)
    if rc != 0:
        raise MemoryError("ffn_backward: could not allocate a workspace")
    return dx, dw1, db1, dw2, db2
