# GEMM (csrc/gemm/) and the measured FMA peak (csrc/runtime/fma_peak*.c).
from libc.stdint cimport uint16_t

cdef extern from "gemm/gemm.h" nogil:
    ctypedef enum ff_activation_t:
        FF_ACT_NONE
        FF_ACT_RELU
        FF_ACT_GELU
    int ff_sgemm_batched(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A,
                         size_t lda, size_t stride_a, const float *B, size_t ldb, size_t stride_b, float beta,
                         float *C, size_t ldc, size_t stride_c, const float *bias, ff_activation_t act,
                         size_t batch)
    int ff_bgemm_batched(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *A,
                         size_t lda, size_t stride_a, const float *B, size_t ldb, size_t stride_b, float beta,
                         float *C, size_t ldc, size_t stride_c, const float *bias, ff_activation_t act,
                         size_t batch)
    enum:
        FF_GEMM_A_BF16
        FF_GEMM_B_BF16
        FF_GEMM_C_BF16
    int ff_bgemm_stored(int storage, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                        const void *A, size_t lda, size_t stride_a, const void *B, size_t ldb, size_t stride_b,
                        float beta, void *C, size_t ldc, size_t stride_c, const float *bias, ff_activation_t act,
                        size_t batch)
    void ff_to_bf16(uint16_t *dst, const float *src, size_t n)
    const char *ff_bf16_path()
    int ff_bf16_limit(const char *path)
    int ff_bf16_path_built(const char *path)
    size_t ff_gemm_packed_floats(int bf16, size_t n, size_t k)
    size_t ff_gemm_packed_layout(int bf16, size_t k)
    void ff_gemm_pack_b(int bf16, int trans_b, size_t n, size_t k, const float *B, size_t ldb, float *dst)
    int ff_gemm_packed(int bf16, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
                       const float *Bp, float beta, float *C, size_t ldc, const float *bias, ff_activation_t act)

cdef extern from "gemm/gemm_internal.h" nogil:
    void ff_gemm_set_blocking(int bf16, size_t mc, size_t kc, size_t nc)
    void ff_gemm_get_blocking(int bf16, size_t out[5])

cdef extern from "runtime/fma_peak.h" nogil:
    double ff_fma_peak(int simd, int bf16, double seconds, int threads)

import numbers as _numbers

_ACTIVATIONS = {None: FF_ACT_NONE, "none": FF_ACT_NONE, "relu": FF_ACT_RELU, "gelu": FF_ACT_GELU}


cdef bint _check_flag(str name, object v) except -1:
    if not isinstance(v, (bool, np.bool_, int, np.integer)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


cdef float _check_scalar(str name, object v) except? -1:
    """A real number that is finite in float32 (the kernel's precision)."""
    if type(v) is not float and type(v) is not int and (isinstance(v, (bool, np.bool_))
                                                        or not isinstance(v, _numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    cdef double f = check_real(name, v)
    if abs(f) > 3.4028234663852886e38:
        raise ValueError(f"{name} must be within the float32 range, got {v!r}")
    return <float>f


cdef ff_activation_t _check_activation(object activation) except *:
    if activation is not None and not isinstance(activation, str):
        raise TypeError(f"activation must be None, 'relu' or 'gelu', got {type(activation).__name__}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None, 'relu' or 'gelu', got {activation!r}")
    return _ACTIVATIONS[activation]


cdef bint _check_compute_dtype(object compute_dtype) except -1:
    """True for "bfloat16", False for "float32" (the GEMM's input rounding)."""
    if not isinstance(compute_dtype, str):
        raise TypeError(f"compute_dtype must be 'float32' or 'bfloat16', got {type(compute_dtype).__name__}")
    if compute_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', got {compute_dtype!r}")
    return compute_dtype == "bfloat16"


def bf16_path():
    """The path bf16 products take on this CPU under the active SIMD level:
    'amx' (AMX tiles), 'avx512_bf16' (vdpbf16ps) or 'emulated' (fp32 kernels
    on bf16-rounded values)."""
    return ff_bf16_path().decode()


def _bf16_path_built(path):
    """Tests only: whether this build has the kernel of bf16 path `path`
    ('amx': x86-64 Linux; 'avx512_bf16': x86-64; neither in the emulated
    AVX-512 test build, whose bf16 products always take the emulated path)."""
    return bool(ff_bf16_path_built(path.encode()))


def _bf16_limit(path):
    """Tests only: the best bf16 path to take, 'amx' (the default: whatever
    the CPU has), 'avx512_bf16' or 'emulated', to reach the paths that CPUs
    without AMX or without AVX512-BF16 take."""
    if not isinstance(path, str) or ff_bf16_limit(path.encode()) != 0:
        raise ValueError(f"path must be 'amx', 'avx512_bf16' or 'emulated', got {path!r}")


cdef object _gemm(str fname, object a, object b, bint batched, object trans_a, object trans_b, object alpha,
                  object beta, object out, object bias, object activation, object compute_dtype):
    cdef int nd = 3 if batched else 2
    cdef bint bf16 = _check_compute_dtype(compute_dtype)
    for x, xname in ((a, "a"), (b, "b")):
        if not is_bf16_storage(x):
            check_float32(xname, x, nd)
        elif not bf16:
            raise TypeError(f"{xname} holds bf16 values (uint16): that needs compute_dtype='bfloat16'")
        else:
            check_bf16_storage(xname, x, nd)
    cdef bint ta = _check_flag("trans_a", trans_a)
    cdef bint tb = _check_flag("trans_b", trans_b)
    cdef float falpha = _check_scalar("alpha", alpha)
    cdef float fbeta = _check_scalar("beta", beta)
    cdef ff_activation_t act = _check_activation(activation)

    sa = a.shape[nd - 2:]
    sb = b.shape[nd - 2:]
    cdef size_t m = sa[1] if ta else sa[0]
    cdef size_t k = sa[0] if ta else sa[1]
    cdef size_t kb = sb[1] if tb else sb[0]
    cdef size_t n = sb[0] if tb else sb[1]
    if batched and a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same batch size, got a {a.shape} and b {b.shape}")
    if k != kb:
        opa = _op_shape(sa, ta)
        opb = _op_shape(sb, tb)
        raise ValueError(f"inner dimensions differ: op(a) is {opa} and op(b) is {opb} "
                         f"(a {a.shape}, b {b.shape}, trans_a={bool(ta)}, trans_b={bool(tb)})")
    cdef tuple shape_c = (a.shape[0], m, n) if batched else (m, n)

    if bias is not None:
        check_float32("bias", bias, 1)
        if bias.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), got {bias.shape}")
    if out is None:
        if fbeta != 0.0:
            raise ValueError(f"beta={beta} needs out= (the C that is accumulated into)")
        out = new_array("out", tuple(shape_c))
    else:
        if is_bf16_storage(out) and bf16:
            check_bf16_storage("out", out, nd, True)
        else:
            check_float32("out", out, nd, writeable=True)
        if out.shape != shape_c:
            raise ValueError(f"out must have shape {shape_c}, got {out.shape}")
        for other, oname in ((a, "a"), (b, "b"), (bias, "bias")):
            if other is not None and np.may_share_memory(out, other):
                raise ValueError(f"out must not overlap {oname}")
    return _gemm_run(fname, a, b, batched, ta, tb, falpha, fbeta, out, bias, act, bf16)


def _matmul_into(a, b, out, bint trans_a=False, bint trans_b=False, float beta=0.0, bias=None, activation=None,
                 bint bf16=False):
    """matmul(a, b, trans_a, trans_b, beta=beta, out=out, bias=bias,
    activation=activation) on the model's own 2-D arrays, in bf16 products
    when bf16 (checked only when internal checks are on)."""
    if _internal_checks:
        return _gemm("matmul", a, b, False, trans_a, trans_b, 1.0, beta, out, bias, activation,
                     "bfloat16" if bf16 else "float32")
    return _gemm_run("matmul", a, b, False, trans_a, trans_b, 1.0, beta, out, bias, _ACTIVATIONS[activation], bf16)


cdef object _gemm_run(str fname, object a, object b, bint batched, bint ta, bint tb, float alpha, float beta,
                      object out, object bias, ff_activation_t act, bint bf16):
    """out = act(alpha op(a) op(b) + beta out + bias) (per batch) on checked arguments."""
    cdef int nd = 3 if batched else 2
    sa = a.shape[nd - 2:]
    sb = b.shape[nd - 2:]
    cdef size_t m = sa[1] if ta else sa[0]
    cdef size_t k = sa[0] if ta else sa[1]
    cdef size_t n = sb[0] if tb else sb[1]
    cdef size_t batch = a.shape[0] if batched else 1
    if m == 0 or n == 0 or batch == 0:
        return out
    cdef const void *pa = _data_ptr(a) if k else NULL
    cdef const void *pb = _data_ptr(b) if k else NULL
    cdef int storage = ((FF_GEMM_A_BF16 if is_bf16_storage(a) else 0) | (FF_GEMM_B_BF16 if is_bf16_storage(b) else 0)
                        | (FF_GEMM_C_BF16 if is_bf16_storage(out) else 0))
    cdef const float *pbias = _f32p(bias) if bias is not None else NULL
    cdef void *pc = _data_ptr(out)
    cdef size_t lda = sa[1], ldb = sb[1]
    cdef size_t stride_a = sa[0] * sa[1], stride_b = sb[0] * sb[1], stride_c = m * n
    cdef int rc
    with nogil:
        if bf16:
            rc = ff_bgemm_stored(storage, ta, tb, m, n, k, alpha, pa, lda, stride_a, pb, ldb, stride_b, beta,
                                 pc, n, stride_c, pbias, act, batch)
        else:
            rc = ff_sgemm_batched(ta, tb, m, n, k, alpha, <const float *>pa, lda, stride_a, <const float *>pb, ldb,
                                  stride_b, beta, <float *>pc, n, stride_c, pbias, act, batch)
    if rc != 0:
        raise MemoryError(f"{fname}: could not allocate GEMM pack buffers")
    return out


def to_bf16(x, *, out=None):
    """to_bf16(x, *, out=None) -> the bf16 values nearest x's float32 values
    (ties to even; NaN stays a quiet NaN), as uint16: the top halves of the
    float32s they are. matmul and bmm with compute_dtype="bfloat16" take them.
    out: a C-contiguous uint16 array of x's shape."""
    check_float32("x", x)
    if out is None:
        out = new_array("out", x.shape, _UINT16)
    else:
        check_bf16_storage("out", out, -1, True)
        check_same_shape("out", out, "x", x)
    _to_bf16_run(x, out)
    return out


def _to_bf16_into(x, out):
    """to_bf16(x, out=out) on the model's own arrays (checked only when internal checks are on)."""
    if _internal_checks:
        return to_bf16(x, out=out)
    _to_bf16_run(x, out)
    return out


cdef void _to_bf16_run(object x, object out) except *:
    cdef size_t n = x.size
    cdef uint16_t *po = <uint16_t *>_data_ptr(out) if n else NULL
    cdef const float *px = _f32p(x) if n else NULL
    with nogil:
        ff_to_bf16(po, px, n)


def _op_shape(s, t):
    return (s[1], s[0]) if t else (s[0], s[1])


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, bias=None, activation=None, *,
           compute_dtype="float32"):
    """matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, bias=None, activation=None, *,
    compute_dtype="float32")

    out = act(alpha * op(a) @ op(b) + beta * out + bias) for 2-D float32 arrays,
    op(x) = x.T when trans_x. op(a) is (m,k), op(b) is (k,n), bias (n,), out (m,n).
    beta != 0 needs out; beta == 0 never reads out. activation: None, 'relu',
    'gelu' (exact erf form). compute_dtype="bfloat16" rounds every element of
    op(a) and op(b) to bfloat16 (nearest even) and sums the products in
    float32 (bf16_path() says how). Then a, b and out may also hold bf16
    values as uint16 (to_bf16's output): a and b are read at half the bytes
    with the bits of their float32 values; out gets the float32 result
    rounded to bf16 (nearest even). Returns out. Bitwise identical for any
    thread count."""
    return _gemm("matmul", a, b, False, trans_a, trans_b, alpha, beta, out, bias, activation, compute_dtype)


def bmm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, bias=None, activation=None, *,
        compute_dtype="float32"):
    """bmm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, bias=None, activation=None, *,
    compute_dtype="float32")

    matmul over axis 0 of 3-D float32 arrays: out[i] = act(alpha * op(a[i]) @ op(b[i])
    + beta * out[i] + bias); a (batch, ...), b (batch, ...), bias (n,), out (batch, m, n).
    One parallel region over the batch and tiles; compute_dtype as matmul's. Returns out."""
    return _gemm("bmm", a, b, True, trans_a, trans_b, alpha, beta, out, bias, activation, compute_dtype)


cdef class PackedMatrix:
    """op(b) (k, n) in the GEMM kernel's panel layout, packed once by
    pack_matrix for many matmul_packed calls (decoding: each weight matrix,
    every step). Holds its own copy: later changes to b are not seen. The
    layout belongs to the kernel active when it was packed; matmul_packed
    refuses it after a change of SIMD level or blocking. compute_dtype is
    the products' ("bfloat16": stored already rounded, in the bf16 kernel's
    panels, for matmul(..., compute_dtype="bfloat16")'s bits)."""
    cdef readonly object data
    cdef readonly size_t n, k, layout
    cdef readonly str compute_dtype
    cdef bint bf16
    cdef const float *ptr

    @property
    def shape(self):
        """(k, n): the shape of op(b)."""
        return (self.k, self.n)


def pack_matrix(b, trans_b=False, *, compute_dtype="float32", reuse=None):
    """pack_matrix(b, trans_b=False, *, compute_dtype="float32", reuse=None) -> PackedMatrix
    of op(b), a 2-D float32 array (op(b) = b.T when trans_b): the right operand
    of matmul_packed, whose products then run in compute_dtype. reuse: a
    PackedMatrix (or None) packed again in place, and returned, when it has
    this shape, compute_dtype and kernel layout; otherwise a new one is made."""
    check_float32("b", b, 2)
    cdef bint tb = _check_flag("trans_b", trans_b)
    cdef bint bf16 = _check_compute_dtype(compute_dtype)
    if reuse is not None and not isinstance(reuse, PackedMatrix):
        raise TypeError(f"reuse must be a PackedMatrix or None, got {type(reuse).__name__}")
    cdef size_t k = b.shape[1] if tb else b.shape[0]
    cdef size_t n = b.shape[0] if tb else b.shape[1]
    cdef size_t layout = ff_gemm_packed_layout(bf16, k)
    cdef PackedMatrix p = reuse
    cdef size_t nfl = ff_gemm_packed_floats(bf16, n, k)
    if p is None or (p.k, p.n, p.bf16, p.layout) != (k, n, bf16, layout) or np.may_share_memory(p.data, b):
        p = PackedMatrix.__new__(PackedMatrix)
        p.bf16, p.compute_dtype = bf16, compute_dtype
        p.k, p.n, p.layout = k, n, layout
        buf = new_array("packed matrix", (nfl + 16,))
        skip = (-(<size_t>_f32p(buf)) % 64) // 4  # the kernel loads B panels 64-byte aligned
        p.data = buf[skip:skip + nfl]
        p.ptr = _f32p(p.data) if nfl else NULL
    cdef const float *pb = _f32p(b) if b.size else NULL
    cdef float *dst = <float *>p.ptr
    cdef size_t ldb = b.shape[1]
    if nfl:
        with nogil:
            ff_gemm_pack_b(bf16, tb, p.n, p.k, pb, ldb, dst)
    return p


def matmul_packed(a, PackedMatrix b, alpha=1.0, beta=0.0, out=None, bias=None, activation=None):
    """matmul_packed(a, b, alpha=1.0, beta=0.0, out=None, bias=None, activation=None)

    matmul(a, op(b0), ...) for b = pack_matrix(b0, trans_b): out = act(alpha *
    a @ op(b0) + beta * out + bias), a (m, k), out (m, n), bit for bit, in b's
    compute_dtype; B is not packed again. Returns out."""
    out, falpha, fbeta = _packed_checked(a, b, alpha, beta, out, bias, activation)
    return _packed_run(a, b, falpha, fbeta, out, bias, _ACTIVATIONS[activation])


def _linear_packed(a, PackedMatrix b, out, bias=None, activation=None, float beta=0.0):
    """matmul_packed(a, b, beta=beta, out=out, bias=bias, activation=activation)
    on the model's own arrays: checked only when internal checks are on."""
    if _internal_checks:
        _packed_checked(a, b, 1.0, beta, out, bias, activation)
    return _packed_run(a, b, 1.0, beta, out, bias, _ACTIVATIONS[activation])


cdef tuple _packed_checked(object a, PackedMatrix b, object alpha, object beta, object out, object bias,
                           object activation):
    """matmul_packed's argument checks -> (out (new when None), alpha, beta as floats)."""
    if b is None:
        raise TypeError("b must be a PackedMatrix (from pack_matrix), got None")
    check_float32("a", a, 2)
    cdef float falpha = _check_scalar("alpha", alpha)
    cdef float fbeta = _check_scalar("beta", beta)
    _check_activation(activation)
    cdef size_t m = a.shape[0], n = b.n, k = b.k
    if a.shape[1] != k:
        raise ValueError(f"inner dimensions differ: a is {a.shape} and op(b) is {(k, n)}")
    if bias is not None:
        check_float32("bias", bias, 1)
        if bias.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), got {bias.shape}")
    if out is None:
        if fbeta != 0.0:
            raise ValueError(f"beta={beta} needs out= (the C that is accumulated into)")
        return new_array("out", (m, n)), falpha, fbeta
    check_float32("out", out, 2, writeable=True)
    if out.shape != (m, n):
        raise ValueError(f"out must have shape {(m, n)}, got {out.shape}")
    for other, oname in ((a, "a"), (bias, "bias"), (b.data, "b")):
        if other is not None and np.may_share_memory(out, other):
            raise ValueError(f"out must not overlap {oname}")
    return out, falpha, fbeta


cdef object _packed_run(object a, PackedMatrix b, float alpha, float beta, object out, object bias,
                        ff_activation_t act):
    """out = act(alpha a op(b) + beta out + bias) on checked arguments. The
    layout is checked on every call, internal ones too: another thread may
    have changed the SIMD level since b was packed."""
    if b.layout != ff_gemm_packed_layout(b.bf16, b.k):
        raise ValueError("b was packed for another GEMM kernel or blocking (the SIMD level changed): "
                         "pack it again with pack_matrix")
    cdef size_t m = a.shape[0], n = b.n, k = b.k
    if m == 0 or n == 0:
        return out
    cdef const float *pa = _f32p(a) if k else NULL
    cdef const float *pbias = _f32p(bias) if bias is not None else NULL
    cdef float *pc = _f32p(out)
    cdef int rc
    with nogil:
        rc = ff_gemm_packed(b.bf16, m, n, k, alpha, pa, k, b.ptr, beta, pc, n, pbias, act)
    if rc != 0:
        raise MemoryError("matmul_packed: could not allocate its pack buffer")
    return out


def fma_peak(simd=None, seconds=0.2, threads=None, compute_dtype="float32"):
    """Measured float32 FMA throughput in GFLOP/s of `threads` threads (default: all
    kernel threads) using the FMA kernel of `simd` ('generic', 'avx2', 'avx512';
    default: the active level; capped at what the CPU supports).
    compute_dtype="bfloat16": the multiply-adds of the path bf16 products take
    now (`bf16_path()`: AMX's tdpbf16ps, AVX512-BF16's vdpbf16ps; when emulated,
    the float32 FMAs of `simd`)."""
    cdef bint bf16 = _check_compute_dtype(compute_dtype)
    cdef int level
    if simd is None:
        level = ff_simd_active()
    else:
        if not isinstance(simd, str):
            raise TypeError(f"simd must be a str, got {type(simd).__name__}")
        level = ff_simd_parse(simd.encode())
        if level < 0:
            raise ValueError(f"simd must be one of 'generic', 'avx2', 'avx512', got {simd!r}")
    cdef double secs = _check_scalar("seconds", seconds)
    if not secs > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))):
        raise TypeError(f"threads must be an int, got {type(threads).__name__}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    cdef int nth = ff_get_num_threads() if threads is None else min(int(threads), 1 << 16)
    cdef double r
    with nogil:
        r = ff_fma_peak(level, bf16, secs, nth)
    return r


def _gemm_blocking(compute_dtype="float32"):
    """{MR, NR, MC, KC, NC} of the active GEMM kernel for compute_dtype (for benchmarks)."""
    cdef size_t v[5]
    ff_gemm_get_blocking(_check_compute_dtype(compute_dtype), v)
    return {"mr": v[0], "nr": v[1], "mc": v[2], "kc": v[3], "nc": v[4]}


def _gemm_set_blocking(mc=0, kc=0, nc=0, compute_dtype="float32"):
    """Tuning hook: change the active kernel's MC/KC/NC for compute_dtype (0 keeps a value)."""
    ff_gemm_set_blocking(_check_compute_dtype(compute_dtype), mc, kc, nc)
