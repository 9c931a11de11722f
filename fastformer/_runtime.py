"""Threads, SIMD selection and build facts of the compiled core."""
import os
import warnings

from fastformer import _C
from fastformer._version import __version__

get_num_threads = _C.get_num_threads
set_num_threads = _C.set_num_threads
get_simd = _C.get_simd
set_simd = _C.set_simd

_requested = os.environ.get("FASTFORMER_SIMD")
if _requested is not None and _requested not in ("generic", "avx2", "avx512"):
    warnings.warn(f"FASTFORMER_SIMD={_requested!r} is not one of 'generic', 'avx2', 'avx512'; ignored",
                  RuntimeWarning, stacklevel=2)


def simd_levels():
    """Instruction sets the kernels can use on this CPU, from "generic" up to the most capable."""
    order = ("generic", "avx2", "avx512")
    return list(order[: order.index(_C.simd_detected()) + 1])


def build_info():
    """What the compiled core was built with and what it uses on this machine."""
    return {
        "version": __version__,
        "openmp": _C.have_openmp(),
        "simd": _C.get_simd(),
        "simd_detected": _C.simd_detected(),
        "bf16": _C.bf16_path(),  # the bf16 products' path: "amx", "avx512_bf16" or "emulated"
        "compiler": _C.compiler(),
        "num_threads": _C.get_num_threads(),
        "thread_binding": _C.proc_bind(),  # OMP_PROC_BIND's effect; "false" (threads float) unless set
        "cpu_count": os.cpu_count(),
    }
