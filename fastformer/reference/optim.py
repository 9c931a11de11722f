"""Optimizer updates over flat parameter buffers, with PyTorch's exact rules.

Each function updates `param` (and its state buffers) in place; all arrays are
1-D of one length and one dtype. `step` counts from 1 (the first update).
These are the twins of the compiled one-pass updates over the model's flat
buffers.
"""
import numpy as np


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False):
    """Adam (decoupled=False, L2 penalty added to the gradient, as torch.optim.Adam)
    or AdamW (decoupled=True, weight decay applied to the parameter, as torch.optim.AdamW).

    param, grad, exp_avg, exp_avg_sq: (n,); exp_avg and exp_avg_sq start at 0.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if weight_decay != 0.0:
        if decoupled:
            param *= 1.0 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1.0 - beta1) * grad
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * grad * grad
    bias_correction1 = 1.0 - beta1**step
    bias_correction2 = 1.0 - beta2**step
    denom = np.sqrt(exp_avg_sq) / np.sqrt(bias_correction2) + eps
    param -= (lr / bias_correction1) * (exp_avg / denom)


def sgd_step(param, grad, momentum_buffer, step, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0):
    """SGD with optional momentum and Nesterov, as torch.optim.SGD.

    param, grad, momentum_buffer: (n,); the buffer is set from the gradient at step 1.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if weight_decay != 0.0:
        grad = grad + weight_decay * param
    if momentum != 0.0:
        if step == 1:
            momentum_buffer[...] = grad
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1.0 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * grad


def grad_norm(grad):
    """L2 norm of a flat gradient buffer, accumulated in float64."""
    g = grad.astype(np.float64, copy=False)
    return float(np.sqrt(np.dot(g, g)))


def clip_grad_norm(grad, max_norm):
    """Scale `grad` in place so its L2 norm is at most max_norm, as
    torch.nn.utils.clip_grad_norm_ (coefficient max_norm / (norm + 1e-6), capped at 1).
    Returns the norm before clipping; a non-finite norm leaves `grad` as it is."""
    norm = grad_norm(grad)
    coef = max_norm / (norm + 1e-6)
    if np.isfinite(norm) and coef < 1.0:
        grad *= grad.dtype.type(coef)
    return norm
