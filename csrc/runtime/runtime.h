/* Process-wide runtime of the compiled core: which SIMD kernels run, how many
 * threads a parallel region may use, and what the build was compiled with.
 *
 * Kernel families (gemm, attention, ...) ask ff_simd_active() once per call and
 * pick their avx2 / avx512 / generic function; see docs/ARCHITECTURE.md. */
#ifndef FF_RUNTIME_H
#define FF_RUNTIME_H

#include <stddef.h>

#ifndef FF_HAVE_OPENMP
#define FF_HAVE_OPENMP 0
#endif

#if FF_HAVE_OPENMP
#include <omp.h>
#endif

/* The one OpenMP idiom: FF_OMP(parallel for schedule(static) num_threads(n))
 * is that pragma in an OpenMP build and nothing in a serial one, so kernels
 * carry no #if. */
#if FF_HAVE_OPENMP
#define FF_OMP(...) _Pragma(FF_OMP_STRING(omp __VA_ARGS__))
#define FF_OMP_STRING(...) #__VA_ARGS__
#else
#define FF_OMP(...)
#endif

/* Ordered from least to most capable; a CPU that supports a level supports
 * every level below it. */
typedef enum {
    FF_SIMD_GENERIC = 0, /* portable C, any CPU */
    FF_SIMD_AVX2 = 1,    /* x86-64 AVX2 + FMA */
    FF_SIMD_AVX512 = 2,  /* x86-64 AVX-512 F/BW/DQ/VL (detected; kernels may fall back to AVX2) */
} ff_simd_t;

/* What this CPU supports. */
ff_simd_t ff_simd_detected(void);
/* What kernels use: the detected level, capped by FASTFORMER_SIMD at start-up
 * or by ff_simd_set(). */
ff_simd_t ff_simd_active(void);
/* Cap the active level; returns the level now active (never above detected). */
ff_simd_t ff_simd_set(ff_simd_t level);
const char *ff_simd_name(ff_simd_t level);
/* Parse "generic" / "avx2" / "avx512"; returns -1 for an unknown name. */
int ff_simd_parse(const char *name);

/* A leaf written once against simd/ (docs/ARCHITECTURE.md, "adding a kernel")
 * exists as fn_generic, fn_avx2 and fn_avx512: FF_SIMD_LEAVES declares the
 * three, FF_SIMD_PICK gives the active one (only fn_generic off x86). */
#define FF_SIMD_LEAVES(ret, fn, params) ret fn##_generic params; ret fn##_avx2 params; ret fn##_avx512 params
#if defined(__x86_64__) || defined(_M_X64)
#define FF_SIMD_PICK(fn) \
    (ff_simd_active() >= FF_SIMD_AVX512 ? fn##_avx512 : ff_simd_active() >= FF_SIMD_AVX2 ? fn##_avx2 : fn##_generic)
#else
#define FF_SIMD_PICK(fn) (fn##_generic)
#endif

/* Threads that a top-level parallel region may use (>= 1). Read once from
 * OpenMP at start-up, so OMP_NUM_THREADS is honoured. */
int ff_get_num_threads(void);
void ff_set_num_threads(int n);
/* Threads for a region doing `work` units where `grain` units are worth one
 * thread; 1 inside another parallel region (no oversubscription). Only the
 * split of work depends on this, never the arithmetic: results are bitwise
 * identical for any thread count. */
int ff_threads_for(size_t work, size_t grain);

int ff_have_openmp(void);
/* The OpenMP thread binding in effect (omp_get_proc_bind): "false", "true",
 * "primary", "close", "spread", or "none" without OpenMP. */
const char *ff_proc_bind(void);
const char *ff_compiler(void);

/* Call once when the module loads. */
void ff_runtime_init(void);

#endif
