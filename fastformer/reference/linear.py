"""Linear layer with the PyTorch weight layout: y = x W^T + b, W (out, in).

compute_dtype="bfloat16" rounds the inputs of every product to bfloat16
(`round_bf16`), as the compiled bf16 model does; the sums, the bias and its
gradient stay in the inputs' precision."""
from fastformer.layout import check_compute_dtype
from fastformer.reference.activations import gradient_into
from fastformer.reference.gemm import round_bf16


def _operands(compute_dtype, *arrays):
    """The arrays as the products see them: rounded to bf16 for compute_dtype="bfloat16"."""
    if check_compute_dtype(compute_dtype) == "bfloat16":
        return [round_bf16(a) for a in arrays]
    return arrays


def linear_forward(x, weight, bias=None, *, compute_dtype="float32"):
    """x: (..., in), weight: (out, in), bias: (out,) or None -> y: (..., out)."""
    x2, w = _operands(compute_dtype, x.reshape(-1, x.shape[-1]), weight)
    # One 2-D GEMM over all leading axes: a 3-D matmul would run one GEMM per batch item.
    y = x2 @ w.T
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def linear_backward(dy, x, weight, need_dx=True, *, compute_dtype="float32"):
    """dy: (..., out), x: (..., in), weight: (out, in) ->
    (dx (..., in) or None when not need_dx, dweight (out, in), dbias (out,))."""
    dy2 = dy.reshape(-1, dy.shape[-1])
    dbias = dy2.sum(axis=0)
    dy2, x2, w = _operands(compute_dtype, dy2, x.reshape(-1, x.shape[-1]), weight)
    dweight = dy2.T @ x2
    dx = (dy2 @ w).reshape(x.shape) if need_dx else None
    return dx, dweight, dbias


def column_sum(x, *, out=None, accumulate=False):
    """x: (..., n) -> out (n,) = x summed over every leading axis (a bias
    gradient), or out += that sum when accumulate."""
    return gradient_into(out, x.reshape(-1, x.shape[-1]).sum(axis=0), accumulate)
