"""Gradient norm and clipping over the model's whole flat gradient buffer."""
import numbers

from fastformer._kernels import flat_buffers, kernel


def grad_norm(model):
    """L2 norm of all of the model's gradients together (a Python float)."""
    grads = flat_buffers(model)[1]
    return kernel("grad_norm", grads.dtype)(grads)


def clip_grad_norm(model, max_norm):
    """Scale all gradients so their joint L2 norm is at most `max_norm`, as
    torch.nn.utils.clip_grad_norm_; returns the norm before clipping."""
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or not max_norm > 0:
        raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
    grads = flat_buffers(model)[1]
    return kernel("clip_grad_norm", grads.dtype)(grads, float(max_norm))
