/* cpu_peak.c — peak f32 FLOP/s of this machine (see cpu_peak.h).
 *
 * On x86 the vendor string comes from cpuid leaf 0 and the display family
 * and model from leaf 1 (the base family plus the extended family when the
 * base is 0xF; the model extended by its high nibble for families 6 and
 * 0xF); the vector extensions from the compiler's cpu-feature probe. The
 * clock comes from sysfs or /proc/cpuinfo, read as text.
 */
#include "runtime/cpu_peak.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

int cpu_fma_units_for(const char *vendor, int family, int model, int lanes, const char **why) {
    const char *w = "2 FMA pipes of full width";
    int units = 2;
    if (vendor && !strcmp(vendor, "AuthenticAMD")) {
        if (family == 0x17 && model < 0x30 && lanes == 8)
            units = 1, w = "AMD Zen 1 (family 17h): 256-bit FMA runs as two halves on 128-bit pipes";
        else if (family == 0x19 && lanes == 16)
            units = 1, w = "AMD Zen 4 (family 19h): 512-bit FMA runs as two halves on 256-bit pipes";
    }
    if (why) *why = w;
    return units;
}

CpuVector cpu_vector_detect(void) {
    CpuVector v = {4, 2, "128-bit SIMD", "2 FMA pipes of full width"};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    v.isa = "SSE";
    if (__builtin_cpu_supports("avx512f"))
        v.lanes = 16, v.isa = "AVX-512";
    else if (__builtin_cpu_supports("avx"))
        v.lanes = 8, v.isa = "AVX";
    unsigned a, b, c, d;
    char vendor[13] = {0};
    int family = 0, model = 0;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
    }
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int base = (int)((a >> 8) & 0xF);
        family = base == 0xF ? base + (int)((a >> 20) & 0xFF) : base;
        model = (int)((a >> 4) & 0xF);
        if (base == 0x6 || base == 0xF) model |= (int)((a >> 16) & 0xF) << 4;
    }
    v.fma_units = cpu_fma_units_for(vendor, family, model, v.lanes, &v.why);
#endif
    return v;
}

/* The largest "cpu MHz" value of /proc/cpuinfo (first_only: the first). */
static double cpuinfo_mhz(int first_only) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[512];
    double mhz = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "cpu MHz", 7)) continue;
        const char *c = strchr(line, ':');
        double m = c ? strtod(c + 1, NULL) : 0;
        if (m > mhz) mhz = m;
        if (first_only) break;
    }
    fclose(f);
    return mhz;
}

double cpu_max_clock_ghz(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "r");
    if (f) {
        double khz = 0;
        int ok = fscanf(f, "%lf", &khz) == 1;
        fclose(f);
        if (ok && khz > 1e5) return khz / 1e6;
    }
    double mhz = cpuinfo_mhz(0);
    return mhz > 100 ? mhz / 1e3 : 2.5;
}

double cpu_nominal_ghz(void) {
    double mhz = cpuinfo_mhz(1);
    return mhz > 0 ? mhz / 1e3 : 0;
}

double cpu_peak_gflops(int threads, double ghz, const CpuVector *v, char *how, size_t howlen) {
    double peak = threads * ghz * v->lanes * 2.0 * v->fma_units;
    if (how)
        snprintf(how, howlen, "%d threads x %.2f GHz x %d f32 lanes (%s) x 2 (FMA) x %d FMA/cycle (%s) = %.1f GFLOP/s",
                 threads, ghz, v->lanes, v->isa, v->fma_units, v->why, peak);
    return peak;
}
