"""Pure-NumPy twins of every compiled kernel and of the whole model, in
float32 and float64: the oracle of the tests and the NumPy side of every
speed comparison. Each name here has the signature of its compiled twin in
`fastformer.ops`."""
from fastformer.reference import optim
from fastformer.reference.activations import (
    erf, erfc, gelu_backward, gelu_forward, relu_backward, relu_forward)
from fastformer.reference.attention import (
    attention_backward, attention_forward, mha_backward, mha_forward)
from fastformer.reference.decode import beam_topk
from fastformer.reference.dropout import (
    dropout_apply, dropout_backward, dropout_forward, dropout_mask, dropout_site, philox4x32)
from fastformer.reference.embedding import (
    embedding_backward, embedding_forward, sinusoidal_positions)
from fastformer.reference.ffn import ffn_backward, ffn_forward
from fastformer.reference.gemm import bmm, from_bf16, matmul, matmul_packed, pack_matrix, round_bf16, to_bf16
from fastformer.reference.layernorm import layer_norm_backward, layer_norm_forward
from fastformer.reference.linear import column_sum, linear_backward, linear_forward
from fastformer.reference.loss import cross_entropy
from fastformer.reference.optim import adam_step, clip_grad_norm, grad_norm, sgd_step
from fastformer.reference.softmax import softmax_backward, softmax_forward
from fastformer.reference.transformer import Parameter, Transformer
from fastformer.reference.vector import dot

__all__ = [
    "optim", "dot", "matmul", "bmm", "pack_matrix", "matmul_packed", "round_bf16", "to_bf16", "from_bf16",
    "erf", "erfc", "gelu_forward", "gelu_backward", "relu_forward", "relu_backward",
    "linear_forward", "linear_backward", "column_sum", "softmax_forward", "softmax_backward",
    "layer_norm_forward", "layer_norm_backward", "ffn_forward", "ffn_backward",
    "attention_forward", "attention_backward", "mha_forward", "mha_backward",
    "philox4x32", "dropout_mask", "dropout_apply", "dropout_forward", "dropout_backward", "dropout_site",
    "sinusoidal_positions", "embedding_forward", "embedding_backward", "cross_entropy",
    "adam_step", "sgd_step", "grad_norm", "clip_grad_norm",
    "beam_topk",
    "Parameter", "Transformer",
]
