/* Compile the rest of a file for one instruction set, whatever the global
 * flags say, so the same build holds portable and SIMD kernels side by side
 * and picks between them at run time.
 *
 * Usage, in a file that holds only leaf kernels (no OpenMP regions: GCC does
 * not always pass the target on to outlined parallel bodies):
 *
 *     #include "runtime/simd_target.h"
 *     #if FF_X86
 *     #include <immintrin.h>
 *     FF_TARGET_AVX2_BEGIN
 *     ... kernels using AVX2/FMA intrinsics ...
 *     FF_TARGET_END
 *     #endif
 */
#ifndef FF_SIMD_TARGET_H
#define FF_SIMD_TARGET_H

#if defined(__x86_64__) || defined(_M_X64)
#define FF_X86 1
#else
#define FF_X86 0
#endif

/* AMX tiles (kernel_amx.c): x86-64 Linux (the OS must grant tile state per
 * process), GCC 11+ or Clang 12+, never in the emulated test build. */
#if FF_X86 && defined(__linux__) && !defined(FF_EMULATE_AVX512) &&                           \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11))
#define FF_HAVE_AMX 1
#else
#define FF_HAVE_AMX 0
#endif

#if defined(FF_EMULATE_AVX512)
/* Test build: AVX-512 code runs through SIMDe on AVX2 (runtime/emulate_avx512.h). */
#define FF_TARGET_AVX2_BEGIN
#define FF_TARGET_AVX512_BEGIN
#define FF_TARGET_AVX512BF16_BEGIN
#define FF_TARGET_END
#elif defined(__clang__)
#define FF_TARGET_AVX2_BEGIN \
    _Pragma("clang attribute push (__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define FF_TARGET_AVX512_BEGIN \
    _Pragma("clang attribute push (__attribute__((target(\"avx512f,avx512bw,avx512dq,avx512vl,avx2,fma\"))), apply_to = function)")
#define FF_TARGET_AVX512BF16_BEGIN \
    _Pragma("clang attribute push (__attribute__((target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma\"))), apply_to = function)")
#define FF_TARGET_AMX_BEGIN \
    _Pragma("clang attribute push (__attribute__((target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,amx-tile,amx-bf16\"))), apply_to = function)")
#define FF_TARGET_END _Pragma("clang attribute pop")
#elif defined(__GNUC__)
#define FF_TARGET_AVX2_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define FF_TARGET_AVX512_BEGIN \
    _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx2,fma\")")
#define FF_TARGET_AVX512BF16_BEGIN                 \
    _Pragma("GCC push_options")                    \
    _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma\")")
#define FF_TARGET_AMX_BEGIN                        \
    _Pragma("GCC push_options")                    \
    _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,amx-tile,amx-bf16\")")
#define FF_TARGET_END _Pragma("GCC pop_options")
#else
#error "fastformer needs GCC or Clang"
#endif

#endif
