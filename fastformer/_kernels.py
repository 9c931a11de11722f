"""Pick the kernel that matches a model's dtype.

The compiled kernels in `fastformer.ops` are float32 only; their NumPy twins in
`fastformer.reference` take float32 and float64 with the same signatures. The
optimizers, the loss and the trainer call `kernel(name, dtype)` so that they
use the compiled kernel whenever one exists for the dtype, and keep working
(float64 gradient checks, builds where a kernel is not compiled yet) otherwise.
"""
import numpy as np

import fastformer.ops as _ops
import fastformer.reference as _reference
import fastformer.reference.optim as _reference_optim

# Where each kernel's NumPy twin lives.
_REFERENCE_HOMES = {
    "adam_step": _reference_optim,
    "sgd_step": _reference_optim,
    "grad_norm": _reference_optim,
    "clip_grad_norm": _reference_optim,
    "cross_entropy": _reference,
}


def kernel(name, dtype):
    """The function `name` for arrays of `dtype`: `fastformer.ops.<name>` for
    float32 when it is compiled, else its NumPy twin."""
    if np.dtype(dtype) == np.float32 and hasattr(_ops, name):
        return getattr(_ops, name)
    return getattr(_REFERENCE_HOMES[name], name)


def flat_buffers(model):
    """(parameters, gradients): the model's two flat 1-D buffers of which every
    `named_parameters()` entry is a view, from `model.flat_parameters()` (both
    fastformer models have it; an object with only `_flat` / `_flat_grad`
    attributes, as models had before, still works)."""
    flat_parameters = getattr(model, "flat_parameters", None)
    if callable(flat_parameters):
        params, grads = flat_parameters()
    elif hasattr(model, "_flat") and hasattr(model, "_flat_grad"):
        params, grads = model._flat, model._flat_grad
    else:
        raise TypeError(f"{type(model).__name__} does not keep its parameters in flat buffers "
                        f"(no flat_parameters()); fastformer optimizers need a fastformer model")
    if params.ndim != 1 or params.shape != grads.shape or params.dtype != grads.dtype:
        raise TypeError("the model's flat parameter and gradient buffers must be 1-D arrays "
                        "of one shape and dtype")
    return params, grads


def model_dtype(model):
    """The floating dtype of the model's parameters."""
    return flat_buffers(model)[0].dtype
