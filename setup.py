"""Build the compiled core `fastformer._C`: every C kernel under csrc/ plus the
Cython bindings in fastformer/_bindings/, in one extension so that all kernels
share one thread setting, one SIMD choice and one set of workspaces.

OpenMP is detected by compiling a small program; without it the build still
succeeds, single-threaded, and says so (and `fastformer.build_info()` reports it).
No -march=native and no -ffast-math: SIMD kernels carry their own target
attributes and are chosen at run time.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""

# Each candidate is (compile flags, link flags). Apple clang needs libomp
# (brew install libomp) and the -Xpreprocessor spelling.
OPENMP_CANDIDATES = [
    (["-fopenmp"], ["-fopenmp"]),
    (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),
]


def _compiler_command(compiler):
    cc = getattr(compiler, "compiler_so", None) or [os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"]
    return list(cc)


def detect_openmp(compiler):
    """Return (cflags, ldflags) that build and run an OpenMP program, or None."""
    if os.environ.get("FASTFORMER_NO_OPENMP"):
        return None
    cc = _compiler_command(compiler)
    tmp = tempfile.mkdtemp(prefix="ff-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        for cflags, ldflags in OPENMP_CANDIDATES:
            cmd = cc + cflags + [src, "-o", exe] + ldflags
            try:
                subprocess.run(cmd, check=True, capture_output=True)
                subprocess.run([exe], check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError):
                continue
            return cflags, ldflags
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        omp = detect_openmp(self.compiler)
        if omp is None:
            msg = ("fastformer: OpenMP not found; building the SINGLE-THREADED core. "
                   "Install a compiler with OpenMP (gcc, or clang with libomp) for multi-core kernels.")
            print("\n" + "*" * 78 + "\nWARNING: " + msg + "\n" + "*" * 78 + "\n", file=sys.stderr)
        for ext in self.extensions:
            if omp is not None:
                ext.extra_compile_args += omp[0]
                ext.extra_link_args += omp[1]
                ext.define_macros.append(("FF_HAVE_OPENMP", "1"))
            else:
                ext.define_macros.append(("FF_HAVE_OPENMP", "0"))
        super().build_extensions()


def c_sources():
    return sorted(glob.glob(os.path.join("csrc", "**", "*.c"), recursive=True))


def c_headers():
    """Every header: a change to one rebuilds the core (build_ext compares dates, not includes)."""
    return sorted(glob.glob(os.path.join("csrc", "**", "*.h"), recursive=True))


CFLAGS = [
    "-O3",
    "-std=gnu11",
    "-fno-strict-aliasing",
    "-ffp-contract=off",  # no silent FMA contraction: scalar code rounds exactly as written
    "-Wall",
    "-Wno-unused-function",
    "-Wno-unknown-pragmas",
]

# FASTFORMER_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer
# (the CI sanitizer job, .ci/sanitize); load libasan first with LD_PRELOAD to run it.
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


def sanitize_flags():
    return list(SANITIZE_FLAGS) if os.environ.get("FASTFORMER_SANITIZE") else []


def emulate_avx512_flags():
    """FASTFORMER_EMULATE_AVX512=1: a test build whose AVX-512 kernels run on an
    AVX2 CPU through SIMDe (pip install cmeel-simde), bit for bit as on the
    hardware (csrc/runtime/emulate_avx512.h), so every path is tested anywhere."""
    if not os.environ.get("FASTFORMER_EMULATE_AVX512"):
        return []
    include = os.environ.get("SIMDE_INCLUDE") or os.path.join(sysconfig.get_paths()["purelib"], "cmeel.prefix", "include")
    if not os.path.exists(os.path.join(include, "simde", "x86", "avx512.h")):
        sys.exit(f"FASTFORMER_EMULATE_AVX512: SIMDe headers not found under {include} (pip install cmeel-simde, "
                 "or set SIMDE_INCLUDE)")
    return ["-DFF_EMULATE_AVX512=1", "-mavx2", "-mfma", "-I" + include, "-include", "runtime/emulate_avx512.h"]


def extensions():
    from Cython.Build import cythonize

    ext = Extension(
        "fastformer._C",
        sources=["fastformer/_C.pyx"] + c_sources(),
        depends=c_headers(),
        include_dirs=["csrc"],
        extra_compile_args=CFLAGS + sanitize_flags() + emulate_avx512_flags(),
        extra_link_args=sanitize_flags(),
        define_macros=[],
    )
    return cythonize(
        [ext],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
            "embedsignature": True,
        },
        include_path=["fastformer"],
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
