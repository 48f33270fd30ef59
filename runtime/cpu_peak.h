/* cpu_peak.h — the machine's peak f32 FLOP/s, for MFU figures.
 *
 * peak = threads x clock x f32 lanes x 2 (an FMA is two flops) x FMA
 * instructions of that width issued per cycle. Lanes come from the widest
 * vector extension the CPU reports (AVX-512F 16, AVX 8, else 4). The issue
 * rate is 2 except where the core splits a full-width instruction into two
 * halves on narrower pipes: AMD family 17h before model 30h (Zen 1: 256-bit
 * AVX on two 128-bit FMA pipes) and family 19h with AVX-512 (Zen 4: 512-bit
 * AVX-512 on two 256-bit FMA pipes) retire one full-width FMA per cycle.
 * The clock is the highest the kernel reports (cpufreq's cpuinfo_max_freq,
 * else the largest "cpu MHz" of /proc/cpuinfo) or, for the benchmarks, the
 * first "cpu MHz" (the nominal clock, without turbo).
 */
#ifndef DPOC_RUNTIME_CPU_PEAK_H
#define DPOC_RUNTIME_CPU_PEAK_H

#include <stddef.h>

typedef struct CpuVector {
    int lanes;       /* f32 lanes of the widest vector unit */
    int fma_units;   /* full-width FMA instructions retired per cycle */
    const char *isa; /* "AVX-512", "AVX", "SSE", "128-bit SIMD" */
    const char *why; /* how fma_units was decided, for messages */
} CpuVector;

/* The rule above as a pure function of what cpuid says: vendor
 * ("AuthenticAMD", ...), display family and model, and the lanes of the
 * widest extension. */
int cpu_fma_units_for(const char *vendor, int family, int model, int lanes, const char **why);

/* This CPU's vector unit (cpuid on x86; 4 lanes, 2 units elsewhere). */
CpuVector cpu_vector_detect(void);

/* Highest clock in GHz (see above); 2.5 when nothing can be read. */
double cpu_max_clock_ghz(void);
/* First "cpu MHz" of /proc/cpuinfo in GHz; 0 when it cannot be read. */
double cpu_nominal_ghz(void);

/* threads x ghz x v->lanes x 2 x v->fma_units; *how (when not NULL) names
 * every factor. */
double cpu_peak_gflops(int threads, double ghz, const CpuVector *v, char *how, size_t howlen);

#endif
