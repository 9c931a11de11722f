# Scaled dot-product attention, fused (flash) and materialised (csrc/attention/).

cdef extern from "attention/attention.h" nogil:
    ctypedef struct ff_attn_view_t:
        size_t batch
        size_t head
        size_t row
    ctypedef struct ff_attn_dims_t:
        size_t B
        size_t H
        size_t Tq
        size_t Tk
        size_t dk
        int causal
        double dropout_p
        uint64_t seed
        uint64_t step
        uint64_t site
        int bf16
        int kv_bf16
        int bf16_inputs
    void ff_attn_round_bf16(float *x, size_t n)
    ff_attn_view_t ff_attn_contiguous(size_t H, size_t T, size_t dk)
    int ff_attention_flash_forward(float *out, ff_attn_view_t so, float *lse, const void *q, ff_attn_view_t sq,
                                   const void *k, ff_attn_view_t sk, const void *v, ff_attn_view_t sv,
                                   const uint8_t *key_padding_mask, const ff_attn_dims_t *d)
    int ff_attention_flash_backward(float *dq, ff_attn_view_t sdq, float *dk, ff_attn_view_t sdk, float *dv,
                                    ff_attn_view_t sdv, const float *dout, ff_attn_view_t sdo, const void *q,
                                    ff_attn_view_t sq, const void *k, ff_attn_view_t sk, const void *v,
                                    ff_attn_view_t sv, const float *out, ff_attn_view_t so, const float *lse,
                                    const uint8_t *key_padding_mask, const ff_attn_dims_t *d)
    int ff_attention_materialized_forward(float *out, ff_attn_view_t so, float *lse, const float *q,
                                          ff_attn_view_t sq, const float *k, ff_attn_view_t sk, const float *v,
                                          ff_attn_view_t sv, const uint8_t *key_padding_mask, const ff_attn_dims_t *d)
    int ff_attention_rows_forward(float *out, ff_attn_view_t so, float *lse, const float *q, ff_attn_view_t sq,
                                  const float *k, ff_attn_view_t sk, const float *v, ff_attn_view_t sv,
                                  const uint8_t *key_padding_mask, const int64_t *key_rows, size_t key_rows_ld,
                                  const ff_attn_dims_t *d)
    int ff_attention_materialized_backward(float *dq, ff_attn_view_t sdq, float *dk, ff_attn_view_t sdk, float *dv,
                                           ff_attn_view_t sdv, const float *dout, ff_attn_view_t sdo, const float *q,
                                           ff_attn_view_t sq, const float *k, ff_attn_view_t sk, const float *v,
                                           ff_attn_view_t sv, const float *out, ff_attn_view_t so, const float *lse,
                                           const uint8_t *key_padding_mask, const ff_attn_dims_t *d)

# impl=None takes the materialised path when the key length is at most this.
# Measured (python -m fastformer.bench.ops_attention --sweep, Zen 5, 2 threads):
# flash was faster at every length tried, 1.2x at S=64 with B*h=1 up to 3x at
# S=4 with B*h=128 (the materialised path pays per-head GEMM calls and a
# malloc of the score matrices), so the threshold is 0: flash always.
ATTENTION_MATERIALIZED_MAX_TK = 0

# impl=None for a forward without dropout takes the rows path when each head
# has at most this many queries (cached decoding: 1 per row, or a sentence's
# beams). Measured on Zen 3, 2 threads, dk 32 and 64, 32 to 128 keys: rows
# takes 0.1-0.3x flash's time at 1 query, 0.3-0.5x at 4, about 1x at 16.
ATTENTION_ROWS_MAX_TQ = 8

_ATTN_IMPLS = (None, "flash", "materialized", "rows")
cdef enum:
    _ATTN_FLASH = 0
    _ATTN_MATERIALIZED = 1
    _ATTN_ROWS = 2


cdef int _attn_impl(object impl, const ff_attn_dims_t *d, bint forward) except -1:
    """The implementation to run: impl checked, or picked when None."""
    names = _ATTN_IMPLS if forward else _ATTN_IMPLS[:3]
    if impl is not None and not isinstance(impl, str):
        raise TypeError(f"impl must be one of {', '.join(map(repr, names))}, got {type(impl).__name__}")
    if impl not in names:
        raise ValueError(f"impl must be one of {', '.join(map(repr, names))}, got {impl!r}")
    if d.bf16 and impl == "materialized":  # its per-head GEMMs have no bf16 rounding of P
        raise ValueError("compute_dtype='bfloat16' needs impl='flash' or 'rows' (or None), got impl='materialized'")
    if d.bf16 and impl is None and not (forward and d.dropout_p == 0.0 and d.Tq <= ATTENTION_ROWS_MAX_TQ):
        return _ATTN_FLASH
    if impl is None:
        if forward and d.dropout_p == 0.0 and d.Tq <= ATTENTION_ROWS_MAX_TQ:
            return _ATTN_ROWS
        return _ATTN_FLASH if d.Tk > ATTENTION_MATERIALIZED_MAX_TK else _ATTN_MATERIALIZED
    if impl == "rows" and d.dropout_p != 0.0:
        raise ValueError("impl='rows' has no dropout: dropout_p must be 0")
    return names.index(impl) - 1


cdef int _attn_run_forward(int impl, float *out, ff_attn_view_t so, float *lse, const void *q, ff_attn_view_t sq,
                           const void *k, ff_attn_view_t sk, const void *v, ff_attn_view_t sv,
                           const uint8_t *mask, const ff_attn_dims_t *d, const int64_t *key_rows=NULL,
                           size_t key_rows_ld=0) noexcept nogil:
    """q, k, v: float32, or bf16 values for flash with d.bf16_inputs."""
    if impl == _ATTN_ROWS:
        return ff_attention_rows_forward(out, so, lse, <const float *>q, sq, <const float *>k, sk, <const float *>v,
                                         sv, mask, key_rows, key_rows_ld, d)
    if impl == _ATTN_MATERIALIZED:
        return ff_attention_materialized_forward(out, so, lse, <const float *>q, sq, <const float *>k, sk,
                                                 <const float *>v, sv, mask, d)
    return ff_attention_flash_forward(out, so, lse, q, sq, k, sk, v, sv, mask, d)


cdef object _attn_check_qkv(object q, object k, object v):
    """Check q (B, h, Tq, dk), k and v (B, h, Tk, dk): float32, or all three
    bf16 values (uint16)."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if is_bf16_storage(q):
            check_bf16_storage(name, x, 4)
        else:
            check_float32(name, x, 4)
    if k.shape[0] != q.shape[0] or k.shape[1] != q.shape[1] or k.shape[3] != q.shape[3]:
        raise ValueError(f"k must have shape (B, h, Tk, dk) = ({q.shape[0]}, {q.shape[1]}, Tk, {q.shape[3]}) "
                         f"to match q of shape {q.shape}, got {k.shape}")
    if v.shape != k.shape:
        raise ValueError(f"v must have the shape of k {k.shape}, got {v.shape}")
    if q.shape[3] == 0:
        raise ValueError(f"q, k and v must have a head width dk of at least 1, got q of shape {q.shape}")


cdef object _attn_dims(ff_attn_dims_t *d, object q, object k, object key_padding_mask, object causal,
                       object dropout_p, object seed, object step, object site, object compute_dtype,
                       bint check=True):
    """Fill d from the arguments, checked here unless not `check` (the
    model's own calls); return the mask (or None)."""
    if check:
        _check_compute_dtype(compute_dtype)
        if not isinstance(causal, (bool, np.bool_)):
            raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
        if not 0.0 <= check_real("dropout_p", dropout_p) < 1.0:
            raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
        for name, v in (("seed", seed), ("step", step), ("site", site)):
            check_int(name, v, INT64_MIN, UINT64_MAX)
        _check_key_padding_mask(key_padding_mask, q.shape[0], k.shape[2])
    d.bf16 = compute_dtype == "bfloat16"
    d.kv_bf16 = 0
    d.bf16_inputs = 0
    d.B, d.H, d.Tq, d.dk = q.shape
    d.Tk = k.shape[2]
    d.causal = bool(causal)
    d.dropout_p = float(dropout_p)
    d.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    d.step = int(step) & 0xFFFFFFFF
    d.site = int(site) & 0xFFFFFFFF
    return key_padding_mask


cdef void _check_key_padding_mask(object mask, Py_ssize_t B, Py_ssize_t Tk) except *:
    if mask is None:
        return
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"key_padding_mask must be None or a numpy.ndarray of bool, got {type(mask).__name__}")
    if mask.dtype != np.bool_:
        raise TypeError(f"key_padding_mask must have dtype bool, got {mask.dtype}")
    if mask.shape != (B, Tk):
        raise ValueError(f"key_padding_mask must have shape (B, Tk) = ({B}, {Tk}), got {mask.shape}")
    if not mask.flags.c_contiguous:
        raise ValueError("key_padding_mask must be C-contiguous (numpy.ascontiguousarray makes it so)")


def attention_forward(q, k, v, key_padding_mask=None, causal=False, dropout_p=0.0, seed=0, step=0, site=0, *,
                      impl=None, compute_dtype="float32"):
    """attention_forward(q, k, v, key_padding_mask=None, causal=False, dropout_p=0.0, seed=0, step=0, site=0, *, impl=None, compute_dtype="float32")
    -> (out (B, h, Tq, dk), lse (B, h, Tq))

    q: (B, h, Tq, dk), k, v: (B, h, Tk, dk) float32; key_padding_mask: (B, Tk)
    bool (True = padding) or None. out = Dropout(softmax(q k^T / sqrt(dk) + M)) v,
    lse the log-sum-exp of the masked scores (-inf for a query that sees no key,
    whose output is 0). impl: 'flash' (fused, O(T) memory), 'materialized'
    (the (Tq, Tk) matrices through GEMMs), 'rows' (query by query, for a few
    queries per head; no dropout), or None to pick by the shape.
    compute_dtype="bfloat16": the products q k^T and P v take bf16-rounded
    inputs summed in float32 (`bf16_path()`), the softmax stays float32;
    flash and rows only. q, k and v may then be bf16 values (uint16,
    `to_bf16`), all three (flash only): the bits of their float32 values."""
    _attn_check_qkv(q, k, v)
    cdef ff_attn_dims_t d
    mask = _attn_dims(&d, q, k, key_padding_mask, causal, dropout_p, seed, step, site, compute_dtype)
    cdef int which = _attn_impl(impl, &d, True)
    if impl is None and is_bf16_storage(q):
        which = _ATTN_FLASH  # the one kernel that reads bf16 values
    d.bf16_inputs = _attn_stored_inputs(q, which, &d)
    if q.size == 0 or d.Tk == 0:  # no query, or no key to see: out 0, lse -inf (the reference's rule)
        return np.zeros(q.shape, dtype=np.float32), np.full(q.shape[:3], -np.inf, dtype=np.float32)
    out = np.empty(q.shape, dtype=np.float32)
    lse = np.empty(q.shape[:3], dtype=np.float32)
    cdef ff_attn_view_t vq = ff_attn_contiguous(d.H, d.Tq, d.dk)
    cdef ff_attn_view_t vk = ff_attn_contiguous(d.H, d.Tk, d.dk)
    cdef float *po = _f32p(out)
    cdef float *pl = _f32p(lse)
    cdef const void *pq = _data_ptr(q)
    cdef const void *pk = _data_ptr(k)
    cdef const void *pv = _data_ptr(v)
    cdef const uint8_t *pm = _u8p(mask) if mask is not None else NULL
    cdef int rc
    with nogil:
        rc = _attn_run_forward(which, po, vq, pl, pq, vq, pk, vk, pv, vk, pm, &d)
    if rc != 0:
        raise MemoryError("attention_forward: could not allocate its workspace")
    return out, lse


def attention_backward(dout, q, k, v, out, lse, key_padding_mask=None, causal=False, dropout_p=0.0, seed=0, step=0,
                       site=0, *, impl=None, compute_dtype="float32"):
    """attention_backward(dout, q, k, v, out, lse, key_padding_mask=None, causal=False, dropout_p=0.0, seed=0, step=0, site=0, *, impl=None, compute_dtype="float32")
    -> (dq, dk, dv) shaped like q, k, v

    dout, out: (B, h, Tq, dk); lse: (B, h, Tq) from attention_forward with the
    same mask, causal, dropout and (seed, step, site): P is recomputed from lse
    and the dropout mask regenerated, never stored. compute_dtype as the
    forward's: all four products (and the recomputed scores) in bf16; q, k
    and v as the forward's (float32, or bf16 values)."""
    _attn_check_qkv(q, k, v)
    check_float32("dout", dout, 4)
    check_float32("out", out, 4)
    check_float32("lse", lse, 3)
    if dout.shape != q.shape:
        raise ValueError(f"dout must have the shape of q {q.shape}, got {dout.shape}")
    if out.shape != q.shape:
        raise ValueError(f"out must have the shape of q {q.shape}, got {out.shape}")
    if lse.shape != q.shape[:3]:
        raise ValueError(f"lse must have shape (B, h, Tq) = {q.shape[:3]}, got {lse.shape}")
    cdef ff_attn_dims_t d
    mask = _attn_dims(&d, q, k, key_padding_mask, causal, dropout_p, seed, step, site, compute_dtype)
    cdef int which = _attn_impl(impl, &d, False)
    d.bf16_inputs = _attn_stored_inputs(q, which, &d)
    if q.size == 0 or k.size == 0:  # no query or no key: every gradient is 0, and C sees no empty buffer
        return np.zeros(q.shape, dtype=np.float32), np.zeros(k.shape, dtype=np.float32), \
            np.zeros(v.shape, dtype=np.float32)
    dq = np.empty(q.shape, dtype=np.float32)
    dk = np.empty(k.shape, dtype=np.float32)
    dv = np.empty(v.shape, dtype=np.float32)
    cdef ff_attn_view_t vq = ff_attn_contiguous(d.H, d.Tq, d.dk)
    cdef ff_attn_view_t vk = ff_attn_contiguous(d.H, d.Tk, d.dk)
    cdef float *pdq = _f32p(dq)
    cdef float *pdk = _f32p(dk)
    cdef float *pdv = _f32p(dv)
    cdef const float *pdo = _f32p(dout)
    cdef const void *pq = _data_ptr(q)
    cdef const void *pk = _data_ptr(k)
    cdef const void *pv = _data_ptr(v)
    cdef const float *po = _f32p(out)
    cdef const float *pl = _f32p(lse)
    cdef const uint8_t *pm = _u8p(mask) if mask is not None else NULL
    cdef int rc
    with nogil:
        if which == _ATTN_FLASH:
            rc = ff_attention_flash_backward(pdq, vq, pdk, vk, pdv, vk, pdo, vq, pq, vq, pk, vk, pv, vk, po, vq, pl,
                                             pm, &d)
        else:
            rc = ff_attention_materialized_backward(pdq, vq, pdk, vk, pdv, vk, pdo, vq, <const float *>pq, vq,
                                                    <const float *>pk, vk, <const float *>pv, vk, po, vq, pl, pm, &d)
    if rc != 0:
        raise MemoryError("attention_backward: could not allocate its workspace")
    return dq, dk, dv


cdef bint _attn_view_fast(object a, tuple shape, bint writeable, ff_attn_view_t *out, bint bf16):
    """The common case of _attn_view in one buffer request; False sends the
    caller to the checks that name what is wrong."""
    if type(a) is not _NDARRAY:
        return False
    cdef Py_buffer v
    try:
        PyObject_GetBuffer(a, &v, PyBUF_FORMAT | PyBUF_STRIDES | (PyBUF_WRITABLE if writeable else 0))
    except Exception:
        return False
    cdef Py_ssize_t size = 2 if bf16 else 4
    cdef bint ok = (v.itemsize == size and v.format != NULL and v.format[0] == (b'H' if bf16 else b'f')
                    and v.format[1] == 0 and v.ndim == 4 and (<size_t>v.buf) % size == 0)
    cdef int i
    if ok:
        for i in range(4):
            ok = ok and v.shape[i] == <Py_ssize_t>shape[i] and v.strides[i] >= 0 and v.strides[i] % size == 0
        ok = ok and (v.shape[3] <= 1 or v.strides[3] == size)
    if ok:
        out.batch, out.head, out.row = v.strides[0] // size, v.strides[1] // size, v.strides[2] // size
    PyBuffer_Release(&v)
    return ok


cdef ff_attn_view_t _attn_view(str name, object a, tuple shape, bint writeable, bint bf16=False) except *:
    """Element strides of a (B, h, T, dk) view whose last axis is contiguous:
    float32, or uint16 bf16 values (bf16)."""
    cdef ff_attn_view_t fast = ff_attn_contiguous(0, 0, 0)
    if _attn_view_fast(a, shape, writeable, &fast, bf16):
        return fast
    dtype = _UINT16 if bf16 else _FLOAT32
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {dtype}, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    size = dtype.itemsize
    if (a.shape[3] > 1 and a.strides[3] != size) or any(s < 0 or s % size for s in a.strides) or not a.flags.aligned:
        raise ValueError(f"{name} must have a contiguous last axis and non-negative strides, got strides {a.strides}")
    cdef ff_attn_view_t v
    v.batch, v.head, v.row = a.strides[0] // size, a.strides[1] // size, a.strides[2] // size
    return v


cdef bint _attn_stored_inputs(object q, int impl, const ff_attn_dims_t *d) except -1:
    """Whether q (and so k and v, checked as their views) holds bf16 values
    (uint16): flash in bf16 only."""
    if not is_bf16_storage(q):
        return False
    if not d.bf16:
        raise TypeError("q, k and v hold bf16 values (uint16): that needs compute_dtype='bfloat16'")
    if impl != _ATTN_FLASH:
        raise ValueError("q, k and v as bf16 values (uint16) need impl='flash'")
    return True


cdef void *_attn_ptr(object a) except? NULL:
    """The first element of a checked view (any strides)."""
    cdef Py_buffer v
    PyObject_GetBuffer(a, &v, PyBUF_STRIDES)
    cdef void *p = v.buf
    PyBuffer_Release(&v)
    return p


cdef bint _rows_within(const int64_t *p, size_t ld, size_t B, size_t T, size_t n):
    """Every entry of the (B, T) rows (row stride ld) in [0, n)."""
    cdef size_t b, j
    for b in range(B):
        for j in range(T):
            if p[b * ld + j] < 0 or <size_t>p[b * ld + j] >= n:
                return False
    return True


def _attention_forward_views(out, lse, q, k, v, key_padding_mask=None, causal=False, dropout_p=0.0, seed=0, step=0,
                             site=0, impl="flash", key_rows=None, compute_dtype="float32", kv_bf16=False):
    """The forward (flash unless impl says otherwise) on strided views (e.g.
    q, k, v = qkv.reshape(B, T, 3, h, dk).transpose(2, 0, 3, 1, 4) of a packed
    projection), writing into out (a view of any layout with a contiguous last
    axis) and lse ((B, h, Tq), contiguous). Outputs must not overlap the inputs.
    key_rows (impl="rows" only): (B, Tk) int64 with a contiguous last axis; key
    j of batch b is then k[key_rows[b, j], :, j] (k and v may hold any number
    of batches: a cache reordered by index). kv_bf16 (impl="rows", bf16): the
    caller vouches that k and v hold bf16 values (`_round_bf16_inplace`), so the
    kernel does not round them again per call."""
    if not isinstance(q, np.ndarray) or q.ndim != 4:
        raise ValueError("q must be a 4-D numpy.ndarray (B, h, Tq, dk)")
    if not isinstance(k, np.ndarray) or k.ndim != 4:
        raise ValueError("k must be a 4-D numpy.ndarray (B, h, Tk, dk)")
    B, H, Tq, dk = q.shape
    Tk = k.shape[2]
    Bk = B if key_rows is None else k.shape[0]
    cdef bint stored = is_bf16_storage(q)
    cdef ff_attn_view_t vq = _attn_view("q", q, (B, H, Tq, dk), False, stored)
    cdef ff_attn_view_t vk = _attn_view("k", k, (Bk, H, Tk, dk), False, stored)
    cdef ff_attn_view_t vv = _attn_view("v", v, (Bk, H, Tk, dk), False, stored)
    cdef const int64_t *pkr = NULL
    cdef size_t kr_ld = 0
    if key_rows is not None:
        if impl != "rows":
            raise ValueError(f"key_rows needs impl='rows', got impl={impl!r}")
        if not isinstance(key_rows, np.ndarray) or key_rows.dtype != _INT64:
            raise TypeError("key_rows must be a numpy.ndarray of int64")
        if key_rows.shape != (B, Tk) or (Tk > 1 and key_rows.strides[1] != 8) or key_rows.strides[0] < 0 \
                or key_rows.strides[0] % 8:
            raise ValueError(f"key_rows must have shape {(B, Tk)} with a contiguous last axis, got shape "
                             f"{key_rows.shape}, strides {key_rows.strides}")
        if key_rows.size:
            pkr = <const int64_t *><size_t>key_rows.__array_interface__["data"][0]
            kr_ld = key_rows.strides[0] // 8
            if _internal_checks and not _rows_within(pkr, kr_ld, B, Tk, Bk):
                raise ValueError(f"key_rows must be in [0, {Bk}) (the batches of k and v)")
    cdef ff_attn_view_t vo = _attn_view("out", out, (B, H, Tq, dk), True)
    if _internal_checks:
        check_float32("lse", lse, 3, True)
        if lse.shape != (B, H, Tq):
            raise ValueError(f"lse must have shape {(B, H, Tq)}, got {lse.shape}")
    cdef ff_attn_dims_t d
    mask = _attn_dims(&d, q, k, key_padding_mask, causal, dropout_p, seed, step, site, compute_dtype,
                      _internal_checks)
    cdef int which = _attn_impl(impl, &d, True)
    d.kv_bf16 = bool(kv_bf16) and d.bf16 != 0
    d.bf16_inputs = _attn_stored_inputs(q, which, &d)
    if B * H * Tq * dk == 0:
        return out, lse
    cdef float *po = <float *>_attn_ptr(out)
    cdef float *pl = _f32p(lse)
    cdef const void *pq = _attn_ptr(q)
    cdef const void *pk = _attn_ptr(k) if Tk else NULL
    cdef const void *pv = _attn_ptr(v) if Tk else NULL
    cdef const uint8_t *pm = _u8p(mask) if mask is not None else NULL
    cdef int rc
    with nogil:
        rc = _attn_run_forward(which, po, vo, pl, pq, vq, pk, vk, pv, vv, pm, &d, pkr, kr_ld)
    if rc != 0:
        raise MemoryError("attention_forward: could not allocate its workspace")
    return out, lse


def _round_bf16_inplace(x):
    """Round a C-contiguous float32 array to bf16 values in place (nearest
    even, as the bf16 kernels round their inputs); returns x."""
    check_float32("x", x, -1, True)
    cdef float *p = _f32p(x) if x.size else NULL
    cdef size_t n = x.size
    with nogil:
        if n:
            ff_attn_round_bf16(p, n)
    return x


def _attention_backward_views(dq, dk, dv, dout, q, k, v, out, lse, key_padding_mask=None, causal=False,
                              dropout_p=0.0, seed=0, step=0, site=0, compute_dtype="float32"):
    """Flash backward on strided views (see _attention_forward_views); dq, dk,
    dv may be views into one packed (B, T, 3, h, dk) gradient buffer."""
    if not isinstance(q, np.ndarray) or q.ndim != 4:
        raise ValueError("q must be a 4-D numpy.ndarray (B, h, Tq, dk)")
    if not isinstance(k, np.ndarray) or k.ndim != 4:
        raise ValueError("k must be a 4-D numpy.ndarray (B, h, Tk, dk)")
    B, H, Tq, dkk = q.shape
    Tk = k.shape[2]
    sq_, sk_ = (B, H, Tq, dkk), (B, H, Tk, dkk)
    cdef bint stored = is_bf16_storage(q)
    cdef ff_attn_view_t vq = _attn_view("q", q, sq_, False, stored)
    cdef ff_attn_view_t vk = _attn_view("k", k, sk_, False, stored)
    cdef ff_attn_view_t vv = _attn_view("v", v, sk_, False, stored)
    cdef ff_attn_view_t vo = _attn_view("out", out, sq_, False)
    cdef ff_attn_view_t vdo = _attn_view("dout", dout, sq_, False)
    cdef ff_attn_view_t vdq = _attn_view("dq", dq, sq_, True)
    cdef ff_attn_view_t vdk = _attn_view("dk", dk, sk_, True)
    cdef ff_attn_view_t vdv = _attn_view("dv", dv, sk_, True)
    if _internal_checks:
        check_float32("lse", lse, 3)
        if lse.shape != (B, H, Tq):
            raise ValueError(f"lse must have shape {(B, H, Tq)}, got {lse.shape}")
    cdef ff_attn_dims_t d
    mask = _attn_dims(&d, q, k, key_padding_mask, causal, dropout_p, seed, step, site, compute_dtype,
                      _internal_checks)
    d.bf16_inputs = _attn_stored_inputs(q, _ATTN_FLASH, &d)
    if B * H * dkk == 0 or Tq + Tk == 0:
        return dq, dk, dv
    cdef float *pdq = <float *>_attn_ptr(dq)
    cdef float *pdk = <float *>_attn_ptr(dk)
    cdef float *pdv = <float *>_attn_ptr(dv)
    cdef const float *pdo = <const float *>_attn_ptr(dout)
    cdef const void *pq = _attn_ptr(q)
    cdef const void *pk = _attn_ptr(k)
    cdef const void *pv = _attn_ptr(v)
    cdef const float *po = <const float *>_attn_ptr(out)
    cdef const float *pl = _f32p(lse) if lse.size else NULL
    cdef const uint8_t *pm = _u8p(mask) if mask is not None else NULL
    cdef int rc
    with nogil:
        rc = ff_attention_flash_backward(pdq, vdq, pdk, vdk, pdv, vdv, pdo, vdo, pq, vq, pk, vk, pv, vv, po, vo, pl,
                                         pm, &d)
    if rc != 0:
        raise MemoryError("attention_backward: could not allocate its workspace")
    return dq, dk, dv
