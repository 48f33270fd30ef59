/* cpu_clock.h — the clock rate the benchmarks compute the machine's peak from.
 *
 * Reads the first "cpu MHz" line of /proc/cpuinfo (the current, not the
 * turbo, frequency: a lower bound on the peak, so MFU figures err high
 * rather than flatter); 0 when it cannot be read, and the caller then asks
 * for --peak-gflops / --ghz.
 */
#ifndef DPOC_BENCH_CPU_CLOCK_H
#define DPOC_BENCH_CPU_CLOCK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline double bench_cpu_ghz(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    double mhz = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu MHz", 7)) {
            const char *c = strchr(line, ':');
            if (c) mhz = atof(c + 1);
            break;
        }
    if (f) fclose(f);
    return mhz > 0 ? mhz / 1000.0 : 0;
}

#endif
