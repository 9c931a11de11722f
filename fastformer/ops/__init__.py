"""Compiled kernels (float32), each with a NumPy twin of the same name and
signature in `fastformer.reference`. Arguments are checked with the GIL held
(TypeError/ValueError naming the argument); the C work runs without it."""
from fastformer._C import (
    # matrix products (csrc/gemm) and the measured FMA peak the benchmarks divide by;
    # a right operand packed once for many products (decoding's weights); which
    # path bf16 products (compute_dtype="bfloat16") take on this CPU
    matmul, bmm, fma_peak, PackedMatrix, pack_matrix, matmul_packed, bf16_path,
    # float32 -> bf16 values (uint16), which bf16 products read at half the bytes
    to_bf16,
    # attention (csrc/attention): flash, materialised (impl="materialized"), or query
    # by query for a few queries per head (impl="rows")
    ATTENTION_MATERIALIZED_MAX_TK, ATTENTION_ROWS_MAX_TQ, attention_forward, attention_backward,
    # layers (csrc/nn)
    linear_forward, linear_backward, column_sum, ffn_forward, ffn_backward,
    relu_forward, relu_backward, gelu_forward, gelu_backward,
    layer_norm_forward, layer_norm_backward, softmax_forward, softmax_backward,
    embedding_forward, embedding_backward, dropout_mask, dropout_forward, dropout_backward,
    cross_entropy,
    # optimizers over flat buffers (csrc/optim)
    adam_step, sgd_step, grad_norm, clip_grad_norm,
    # vector kernels (csrc/vector)
    dot,
    # beam-search steps (csrc/decode)
    beam_topk,
)

__all__ = [
    "matmul", "bmm", "fma_peak", "PackedMatrix", "pack_matrix", "matmul_packed", "bf16_path", "to_bf16",
    "attention_forward", "attention_backward",
    "linear_forward", "linear_backward", "column_sum", "ffn_forward", "ffn_backward",
    "relu_forward", "relu_backward", "gelu_forward", "gelu_backward",
    "layer_norm_forward", "layer_norm_backward", "softmax_forward", "softmax_backward",
    "embedding_forward", "embedding_backward", "dropout_mask", "dropout_forward", "dropout_backward",
    "cross_entropy",
    "adam_step", "sgd_step", "grad_norm", "clip_grad_norm",
    "dot",
    "beam_topk",
]
