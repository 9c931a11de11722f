"""Linear layer with the PyTorch weight layout: y = x W^T + b, W (out, in)."""


def linear_forward(x, weight, bias=None):
    """x: (..., in), weight: (out, in), bias: (out,) or None -> y: (..., out)."""
    # One 2-D GEMM over all leading axes: a 3-D matmul would run one GEMM per batch item.
    y = x.reshape(-1, x.shape[-1]) @ weight.T
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def linear_backward(dy, x, weight, need_dx=True):
    """dy: (..., out), x: (..., in), weight: (out, in) ->
    (dx (..., in) or None when not need_dx, dweight (out, in), dbias (out,))."""
    dy2 = dy.reshape(-1, dy.shape[-1])
    dweight = dy2.T @ x.reshape(-1, x.shape[-1])
    dbias = dy2.sum(axis=0)
    dx = (dy2 @ weight).reshape(x.shape) if need_dx else None
    return dx, dweight, dbias


def column_sum(x, *, out=None, accumulate=False):
    """x: (..., n) -> out (n,) = x summed over every leading axis (a bias
    gradient), or out += that sum when accumulate."""
    total = x.reshape(-1, x.shape[-1]).sum(axis=0)
    if out is None:
        if accumulate:
            raise ValueError("accumulate=True needs out= (the sum that is added to)")
        return total
    if accumulate:
        out += total
    else:
        out[...] = total
    return out
