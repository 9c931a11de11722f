"""The bindings' internal entry points, which the compiled model calls on
arrays it made itself and checked once per forward (inputs, masks and
targets in `fastformer.layout`): they skip the per-call argument checks of
the public ops, which cost microseconds a call (skipping them made the
decoding of small models 7-12% faster). FASTFORMER_CHECK_INTERNAL=1 turns
the checks back on (the sanitizer job does), so a wrong internal call fails
as the public op would. Each gives the bits of its public op
(tests/test_internal_calls.py)."""
from fastformer import _C

matmul_into = _C._matmul_into                      # ops.matmul(..., out=) in f32 or bf16 products
linear_packed = _C._linear_packed                  # ops.matmul_packed(..., out=)
column_sum_into = _C._column_sum_into              # ops.column_sum(..., accumulate=True)
layer_norm_into = _C._layer_norm_into              # ops.layer_norm_forward(..., out=...)
layer_norm_backward_into = _C._layer_norm_backward_into  # ops.layer_norm_backward(..., accumulate=True)
activation_into = _C._activation_into              # ops.relu_forward / gelu_forward(..., out=)
activation_backward_into = _C._activation_backward_into  # ops.relu_backward / gelu_backward(..., out=)
dropout_into = _C._dropout_into                    # ops.dropout_forward / dropout_backward(..., out=)
attention_forward_into = _C._attention_forward_views    # on strided views (and the rows kernel's cache)
attention_backward_into = _C._attention_backward_views
cross_entropy_rows = _C._cross_entropy_rows        # the loss of a chunk of rows, continuing a sum
round_bf16_inplace = _C._round_bf16_inplace
to_bf16_into = _C._to_bf16_into                    # ops.to_bf16(..., out=)
