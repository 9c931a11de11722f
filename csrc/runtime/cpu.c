/* Run-time SIMD selection: detect once, allow a cap from FASTFORMER_SIMD. */
#include "runtime/runtime.h"
#include "runtime/simd_target.h"

#include <stdlib.h>
#include <string.h>

static ff_simd_t g_detected = FF_SIMD_GENERIC;
static ff_simd_t g_active = FF_SIMD_GENERIC;

static ff_simd_t detect(void) {
#if FF_X86
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#if defined(FF_EMULATE_AVX512)
    int avx512 = avx2; /* SIMDe runs the AVX-512 kernels on AVX2 */
#else
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    if (avx512) return FF_SIMD_AVX512;
    if (avx2) return FF_SIMD_AVX2;
#endif
    return FF_SIMD_GENERIC;
}

const char *ff_simd_name(ff_simd_t level) {
    switch (level) {
    case FF_SIMD_AVX512: return "avx512";
    case FF_SIMD_AVX2: return "avx2";
    default: return "generic";
    }
}

int ff_simd_parse(const char *name) {
    if (name == NULL) return -1;
    if (strcmp(name, "generic") == 0) return FF_SIMD_GENERIC;
    if (strcmp(name, "avx2") == 0) return FF_SIMD_AVX2;
    if (strcmp(name, "avx512") == 0) return FF_SIMD_AVX512;
    return -1;
}

ff_simd_t ff_simd_detected(void) { return g_detected; }
ff_simd_t ff_simd_active(void) { return g_active; }

ff_simd_t ff_simd_set(ff_simd_t level) {
    g_active = level < g_detected ? level : g_detected;
    return g_active;
}

void ff_cpu_init(void) {
    g_detected = detect();
    g_active = g_detected;
    /* An unknown value is reported by the Python layer, which reads the same variable. */
    int cap = ff_simd_parse(getenv("FASTFORMER_SIMD"));
    if (cap >= 0) ff_simd_set((ff_simd_t)cap);
}
