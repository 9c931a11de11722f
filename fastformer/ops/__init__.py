"""Compiled kernels (float32), each with a NumPy twin of the same name and
signature in `fastformer.reference`."""
from fastformer._C import dot

__all__ = ["dot"]
from fastformer._C import (  # noqa: E402  (row-wise, loss, dropout, embedding and optimizer kernels)
    adam_step,
    clip_grad_norm,
    cross_entropy,
    dropout_backward,
    dropout_forward,
    dropout_mask,
    embedding_backward,
    embedding_forward,
    grad_norm,
    layer_norm_backward,
    layer_norm_forward,
    sgd_step,
    softmax_backward,
    softmax_forward,
)

__all__ += [
    "adam_step",
    "clip_grad_norm",
    "cross_entropy",
    "dropout_backward",
    "dropout_forward",
    "dropout_mask",
    "embedding_backward",
    "embedding_forward",
    "grad_norm",
    "layer_norm_backward",
    "layer_norm_forward",
    "sgd_step",
    "softmax_backward",
    "softmax_forward",
]

from fastformer._C import bmm, fma_peak, matmul  # noqa: E402  (GEMM)

__all__ += ["matmul", "bmm", "fma_peak"]

from fastformer._C import (  # noqa: E402  (attention, linear, activations, feed-forward)
    ATTENTION_MATERIALIZED_MAX_TK,
    attention_backward,
    attention_forward,
    column_sum,
    ffn_backward,
    ffn_forward,
    gelu_backward,
    gelu_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
)

__all__ += [
    "attention_forward",
    "attention_backward",
    "linear_forward",
    "linear_backward",
    "column_sum",
    "relu_forward",
    "relu_backward",
    "gelu_forward",
    "gelu_backward",
    "ffn_forward",
    "ffn_backward",
]
