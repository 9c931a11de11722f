/* One thread count for every parallel region of the core. Kept here rather
 * than in OpenMP's per-thread ICV so that a setting made from any Python
 * thread applies to kernels called from any other. */
#include "runtime/runtime.h"

static int g_num_threads = 1;

void ff_cpu_init(void);

int ff_get_num_threads(void) { return g_num_threads; }

void ff_set_num_threads(int n) {
#if FF_HAVE_OPENMP
    g_num_threads = n < 1 ? 1 : n;
#else
    (void)n;
    g_num_threads = 1;
#endif
}

int ff_threads_for(size_t work, size_t grain) {
#if FF_HAVE_OPENMP
    if (omp_in_parallel()) return 1;
    size_t by_work = grain ? work / grain : work;
    if (by_work < 1) by_work = 1;
    return by_work < (size_t)g_num_threads ? (int)by_work : g_num_threads;
#else
    (void)work;
    (void)grain;
    return 1;
#endif
}

int ff_have_openmp(void) { return FF_HAVE_OPENMP; }

const char *ff_proc_bind(void) {
#if FF_HAVE_OPENMP
    switch (omp_get_proc_bind()) {
    case omp_proc_bind_false: return "false";
    case omp_proc_bind_true: return "true";
    case omp_proc_bind_close: return "close";
    case omp_proc_bind_spread: return "spread";
    default: return "primary";
    }
#else
    return "none";
#endif
}

const char *ff_compiler(void) {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

void ff_runtime_init(void) {
#if FF_HAVE_OPENMP
    g_num_threads = omp_get_max_threads(); /* honours OMP_NUM_THREADS */
    if (g_num_threads < 1) g_num_threads = 1;
#endif
    ff_cpu_init();
}
