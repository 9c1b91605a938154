/*
 * simd.h — marks the few elementwise loops that dominate training at small
 * shapes (Adam, ReLU masks, bias sums) for function multi-versioning: GCC
 * builds an AVX-512, an AVX2 and a baseline copy and the loader picks one
 * for the CPU. The copies compute bit-identical results: -std=c11 keeps
 * floating-point contraction off, so no copy fuses a multiply and an add
 * that another does not, and sqrt and division are correctly rounded in all.
 * Not under ASan or TSan: the loader runs the ifunc resolvers that pick a
 * copy before the sanitizer's run-time is set up (TSan's build crashed
 * there, in lsmi_adam_update's resolver).
 */
#ifndef LSMI_SIMD_H
#define LSMI_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&         \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define LSMI_VECTOR_CLONES                                                     \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LSMI_VECTOR_CLONES
#endif

#endif
