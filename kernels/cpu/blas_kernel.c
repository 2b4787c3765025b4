// OpenBLAS's kernel choice (blas_kernel.h).
#include "kernels/cpu/blas_kernel.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Set on the restart: the kernels OpenBLAS had named.
#define FALLBACK_ENV "MV_OPENBLAS_FALLBACK_FROM"

// OpenBLAS's x86 kernel sets older than AVX2 (what it falls back to for a CPU it does not know).
static int is_pre_avx2(const char *core) {
    static const char *const OLD[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai",
                                      "Coppermine", "Northwood", "Banias", "Opteron", "Opteron_SSE3", "Barcelona",
                                      "Bobcat", "Unknown"};
    for (size_t i = 0; i < sizeof OLD / sizeof *OLD; i++)
        if (!strcasecmp(core, OLD[i])) return 1;
    return 0;
}

void blas_kernel_check(char **argv) {
#if defined(__x86_64__)
    if (getenv("OPENBLAS_CORETYPE")) return;
    // Under valgrind the restart would run outside it (valgrind follows no exec by default).
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) return;
    const char *core = openblas_get_corename();
    if (!core || !is_pre_avx2(core)) return;
    __builtin_cpu_init();
    const char *want = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want) return;
    char from[64];
    snprintf(from, sizeof from, "%s", core);
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv(FALLBACK_ENV, from, 1);
    // The executable's own path, not /proc/self/exe: the process name (ps, pgrep, pkill) comes
    // from the path executed and would read "exe".
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        execv(self, argv);
    }
    // Not restarted (no /proc): go on with the generic kernels, as OpenBLAS chose.
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(FALLBACK_ENV);
#else
    (void)argv;
#endif
}

const char *blas_kernel_note(void) {
    static char note[256];
    const char *from = getenv(FALLBACK_ENV), *to = getenv("OPENBLAS_CORETYPE");
    if (!from || !to) return NULL;
    snprintf(note, sizeof note, "OpenBLAS named this CPU %.40s (generic kernels): maskvim restarted with "
             "OPENBLAS_CORETYPE=%.40s (set OPENBLAS_CORETYPE to choose)", from, to);
    return note;
}
