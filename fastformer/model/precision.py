"""What a bf16 model tells its user about the kernel it will run on."""
import warnings

from fastformer.ops import bf16_path

_warned = False


def warn_if_bf16_emulated():
    """Warn once per process when this CPU (or FASTFORMER_SIMD) leaves bf16
    products to the emulated path: the fp32 kernels on rounded inputs, slower
    than plain fp32 (same numbers as the hardware paths, for tests and checks)."""
    global _warned
    if _warned or bf16_path() != "emulated":
        return
    _warned = True
    warnings.warn("compute_dtype='bfloat16' runs on emulated bf16 products on this CPU (no AVX512-BF16, "
                  "or FASTFORMER_SIMD caps it): the same numbers as the hardware path, but slower than "
                  "float32", RuntimeWarning, stacklevel=3)
