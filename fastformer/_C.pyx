"""The compiled core of fastformer: one extension holding every C kernel, so
all kernels share one thread setting, one SIMD choice and one set of
workspaces. Each kernel family's bindings live in _bindings/<family>.pxi;
the public names are re-exported by fastformer.ops and fastformer.

Bindings validate every argument (TypeError/ValueError naming it) while they
hold the GIL, then release it around the C call; C trusts its arguments.
"""
include "_bindings/checks.pxi"
include "_bindings/runtime.pxi"
include "_bindings/vector.pxi"
include "_bindings/gemm.pxi"
include "_bindings/nn_common.pxi"
include "_bindings/dropout.pxi"
include "_bindings/softmax.pxi"
include "_bindings/layernorm.pxi"
include "_bindings/embedding.pxi"
include "_bindings/loss.pxi"
include "_bindings/optim.pxi"
include "_bindings/attention.pxi"
include "_bindings/linear.pxi"
include "_bindings/decode.pxi"
