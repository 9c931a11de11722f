"""Gradient norm and clipping over the model's whole flat gradient buffer."""
import math
import numbers

from fastformer._kernels import flat_buffers, kernel


def grad_norm(model):
    """L2 norm of all of the model's gradients together (a Python float)."""
    grads = flat_buffers(model)[1]
    return kernel("grad_norm", grads.dtype)(grads)


def clip_grad_norm(model, max_norm, error_if_nonfinite=False):
    """Scale all gradients so their joint L2 norm is at most `max_norm`, as
    torch.nn.utils.clip_grad_norm_; returns the norm before clipping.

    A NaN or infinite norm leaves the gradients unchanged and is returned, or
    raises FloatingPointError when `error_if_nonfinite` (as torch's option)."""
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or not 0 < max_norm < float("inf"):
        raise ValueError(f"max_norm must be a positive finite number, got {max_norm!r}")
    grads = flat_buffers(model)[1]
    norm = kernel("clip_grad_norm", grads.dtype)(grads, float(max_norm))
    if error_if_nonfinite and not math.isfinite(norm):
        raise FloatingPointError(f"the total norm of the gradients is {norm}, so they cannot be clipped")
    return norm
