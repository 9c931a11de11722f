"""GEMM twins: the NumPy meaning of fastformer.ops.matmul and .bmm.

    out = act(alpha * op(a) @ op(b) + beta * out + bias),  op(x) = x^T if trans_x

float32 or float64 (the result has the inputs' dtype). beta == 0 never reads
out, as in the compiled kernel (out may hold NaN garbage). compute_dtype=
"bfloat16" rounds op(a) and op(b) to bfloat16 first (round_bf16), as the
compiled bf16 products do; the sums stay in the inputs' precision. a, b and
out may then hold bf16 values as uint16 (to_bf16): out gets the float32
result rounded to bf16."""
import numpy as np

from fastformer.layout import check_compute_dtype
from fastformer.reference.activations import gelu_forward, relu_forward

_ACTIVATIONS = {None: None, "none": None, "relu": relu_forward, "gelu": gelu_forward}


def round_bf16(x):
    """x (float32 values) rounded to the nearest bfloat16, ties to even, in
    x's dtype; NaN and infinities stay what they are."""
    x = np.asarray(x)
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, rounded).astype(x.dtype, copy=False)


def to_bf16(x, *, out=None):
    """The bf16 values nearest x's float32 values (ties to even; NaN a quiet
    NaN) as uint16, the top halves of the float32s they are."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nearest = (bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)) >> 16
    quiet_nan = (bits >> 16) | 0x40
    y = np.where((bits & 0x7FFFFFFF) > 0x7F800000, quiet_nan, nearest).astype(np.uint16)
    if out is None:
        return y
    out[...] = y
    return out


def from_bf16(x):
    """x as float32 if it holds bf16 values (uint16, to_bf16's output), else x."""
    x = np.asarray(x)
    return (x.astype(np.uint32) << 16).view(np.float32) if x.dtype == np.uint16 else x


def _gemm(a, b, ndim, trans_a, trans_b, alpha, beta, out, bias, activation, compute_dtype="float32"):
    check_compute_dtype(compute_dtype)
    a, b = np.asarray(a), np.asarray(b)
    if compute_dtype != "bfloat16" and np.uint16 in (a.dtype, b.dtype):
        raise TypeError("bf16 values (uint16) need compute_dtype='bfloat16'")
    a, b = from_bf16(a), from_bf16(b)
    if a.ndim != ndim or b.ndim != ndim:
        raise ValueError(f"a and b must be {ndim}-D, got shapes {a.shape} and {b.shape}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None, 'relu' or 'gelu', got {activation!r}")
    if beta != 0 and out is None:
        raise ValueError(f"beta={beta} needs out= (the C that is accumulated into)")
    op_a = np.swapaxes(a, -1, -2) if trans_a else a  # (..., m, k)
    op_b = np.swapaxes(b, -1, -2) if trans_b else b  # (..., k, n)
    dtype = np.result_type(a, b)
    if compute_dtype == "bfloat16":
        op_a, op_b = round_bf16(op_a), round_bf16(op_b)
    y = np.matmul(op_a, op_b).astype(dtype, copy=False) * dtype.type(alpha)
    if beta != 0:
        y = y + dtype.type(beta) * from_bf16(out)
    if bias is not None:
        y = y + np.asarray(bias, dtype=dtype)
    act = _ACTIVATIONS[activation]
    if act is not None:
        y = act(y)
    if out is None:
        return y
    if out.dtype == np.uint16:  # bf16 values: the float32 result rounded, as the compiled products store it
        return to_bf16(y, out=out)
    out[...] = y
    return out


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, bias=None, activation=None, *,
           compute_dtype="float32"):
    """act(alpha * op(a) @ op(b) + beta * out + bias) for 2-D a, b; op(a) is (m,k),
    op(b) is (k,n), bias (n,), out (m,n). Returns out (or a new array)."""
    return _gemm(a, b, 2, trans_a, trans_b, alpha, beta, out, bias, activation, compute_dtype)


def bmm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, bias=None, activation=None, *,
        compute_dtype="float32"):
    """matmul over axis 0 of 3-D a (batch, ...) and b (batch, ...); bias (n,),
    out (batch, m, n). Returns out (or a new array)."""
    return _gemm(a, b, 3, trans_a, trans_b, alpha, beta, out, bias, activation, compute_dtype)


class PackedMatrix:
    """The twin's packed right operand: op(b) as a contiguous array (`data`,
    rounded to bf16 for compute_dtype="bfloat16") and the products' compute_dtype."""

    def __init__(self, data, compute_dtype):
        self.data, self.compute_dtype = data, compute_dtype

    @property
    def shape(self):
        return self.data.shape


def pack_matrix(b, trans_b=False, *, compute_dtype="float32", reuse=None):
    """op(b) (k, n) as a contiguous copy: the twin of the compiled pack_matrix,
    whose panel layout is the kernel's business (only matmul_packed reads it).
    reuse: accepted for the compiled signature (whose memory it recycles); a
    new copy is made either way."""
    check_compute_dtype(compute_dtype)
    if reuse is not None and not isinstance(reuse, PackedMatrix):
        raise TypeError(f"reuse must be a PackedMatrix or None, got {type(reuse).__name__}")
    b = np.asarray(b)
    data = np.ascontiguousarray(b.T if trans_b else b)
    return PackedMatrix(round_bf16(data) if compute_dtype == "bfloat16" else data, compute_dtype)


def matmul_packed(a, b, alpha=1.0, beta=0.0, out=None, bias=None, activation=None):
    """matmul(a, op(b0), ..., compute_dtype=b.compute_dtype) for b = pack_matrix(b0, trans_b)."""
    return matmul(a, b.data, False, False, alpha, beta, out, bias, activation, compute_dtype=b.compute_dtype)
