# Threads, SIMD selection and build facts.

cdef extern from "runtime/runtime.h" nogil:
    ctypedef enum ff_simd_t:
        FF_SIMD_GENERIC
        FF_SIMD_AVX2
        FF_SIMD_AVX512
    ff_simd_t ff_simd_detected()
    ff_simd_t ff_simd_active()
    ff_simd_t ff_simd_set(ff_simd_t level)
    const char *ff_simd_name(ff_simd_t level)
    int ff_simd_parse(const char *name)
    int ff_get_num_threads()
    void ff_set_num_threads(int n)
    int ff_have_openmp()
    const char *ff_proc_bind()
    const char *ff_compiler()
    void ff_runtime_init()

ff_runtime_init()


def get_num_threads():
    """Threads every compiled kernel may use."""
    return ff_get_num_threads()


def set_num_threads(n):
    """Set the threads every compiled kernel may use (1 if built without OpenMP)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ff_set_num_threads(min(int(n), 1 << 16))


def simd_detected():
    """The most capable instruction set this CPU supports ("generic", "avx2", "avx512")."""
    return ff_simd_name(ff_simd_detected()).decode()


def get_simd():
    """The instruction set the kernels use now."""
    return ff_simd_name(ff_simd_active()).decode()


def set_simd(name):
    """Cap the kernels' instruction set ("generic", "avx2", "avx512"); returns the level now active,
    which is never above what the CPU supports."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    level = ff_simd_parse(name.encode())
    if level < 0:
        raise ValueError(f"name must be one of 'generic', 'avx2', 'avx512', got {name!r}")
    return ff_simd_name(ff_simd_set(<ff_simd_t>level)).decode()


def have_openmp():
    return bool(ff_have_openmp())


def proc_bind():
    """The OpenMP thread binding in effect: 'false' (threads float, the
    default), 'true', 'primary', 'close' or 'spread' (OMP_PROC_BIND), or
    'none' in a build without OpenMP."""
    return ff_proc_bind().decode()


def compiler():
    return ff_compiler().decode()
