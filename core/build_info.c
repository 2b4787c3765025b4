// The build's identity (core/build_info.h). MV_VERSION and MV_GIT_COMMIT come from the header
// cmake/build_info.cmake generates at every build; the libraries are asked at run time.
#include "core/build_info.h"
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/engine.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "dist/comm.h"
#include "mv_build_info.h"
#include <cblas.h>
#include "kernels/cpu/blas_kernel.h"
#include <hdf5.h>
#include <jpeglib.h>
#include <omp.h>
#include <png.h>
#include <stdbool.h>
#include <string.h>
#include <yaml.h>
#include <zlib.h>

const char *mv_version(void) { return MV_VERSION; }
const char *mv_build_commit(void) { return MV_GIT_COMMIT; }

// The widest vector extension the compiler was allowed (-march): the CPU kernels' fast paths.
static const char *vector_isa(void) {
#if defined(__AVX512F__)
    return "AVX-512";
#elif defined(__AVX2__)
    return "AVX2";
#else
    return "SSE2 (no AVX2: the CPU kernels run their portable paths)";
#endif
}

static const char *sanitizers(void) {
#if defined(__SANITIZE_ADDRESS__)
    return ", AddressSanitizer + UBSan";
#else
    return "";
#endif
}

// The predefined macros that change what the compiled code computes (with vector_isa and
// sanitizers: fused multiply-adds, fast math) or checks (assertions).
static const char *code_flags(void) {
    return ""
#if defined(__x86_64__)
           "x86-64"
#elif defined(__aarch64__)
           "aarch64"
#else
           "other-arch"
#endif
#if defined(__OPTIMIZE__)
           " -O"
#endif
#if defined(NDEBUG)
           " NDEBUG"
#endif
#if defined(__FAST_MATH__)
           " fast-math"
#endif
#if defined(__FMA__)
           " FMA"
#endif
#if defined(MV_HAVE_MPI)
           " MPI"
#endif
        ;
}

void mv_build_identity(char id[MV_BUILD_ID_SIZE]) {
    memset(id, 0, MV_BUILD_ID_SIZE);
    snprintf(id, 32, "%s", MV_BUILD_ID_FORMAT);
    const char *commit = MV_GIT_COMMIT;
    size_t lc = strlen(commit);
    bool named = strcmp(commit, "unknown") && !(lc >= 6 && !strcmp(commit + lc - 6, "-dirty"));
    // The executable's own bytes, read once (a few MB: milliseconds), where the commit does not
    // name the sources. /proc/self/exe unreadable: the record says so, and two such ranks agree.
    static char exe[96];
    if (!named && !exe[0]) {
        uint32_t crc = 0;
        int64_t bytes = 0;
        if (file_crc32(&crc, &bytes, "/proc/self/exe") == 0)
            snprintf(exe, sizeof exe, "; binary %lld B, crc32 %08x", (long long)bytes, (unsigned)crc);
        else
            snprintf(exe, sizeof exe, "; binary unreadable");
    }
    const char *gpu = mv_gpu_engine ? "CUDA built in" : mv_gpu_plugin ? mv_gpu_plugin : "no GPU engine";
    snprintf(id + 32, MV_BUILD_ID_SIZE - 32, "maskvim %s %s (%s, gcc %s, %s %s%s; %s; mv_config %zu B, mv_train_state %zu B%s)",
             MV_VERSION, commit, MV_BUILD_TYPE, __VERSION__, code_flags(), vector_isa(), sanitizers(), gpu,
             sizeof(mv_config), sizeof(mv_train_state), named ? "" : exe);
}

void mv_build_identity_text(char *out, size_t n, const char *id) {
    char text[MV_BUILD_ID_SIZE];
    memcpy(text, id + 32, MV_BUILD_ID_SIZE - 32);
    text[MV_BUILD_ID_SIZE - 33] = '\0';
    // Another format keeps the same fixed size; say which when it is not ours.
    char format[33];
    memcpy(format, id, 32);
    format[32] = '\0';
    if (strcmp(format, MV_BUILD_ID_FORMAT)) snprintf(out, n, "%s [record format '%.32s']", text, format);
    else snprintf(out, n, "%s", text);
}

void mv_build_report(FILE *f) {
    fprintf(f, "maskvim %s (commit %s)\n", MV_VERSION, MV_GIT_COMMIT);
    fprintf(f, "  build:   %s, gcc %s, %s%s\n", MV_BUILD_TYPE, __VERSION__, vector_isa(), sanitizers());
    fprintf(f, "  OpenMP:  %d thread%s\n", omp_get_max_threads(), omp_get_max_threads() == 1 ? "" : "s");
    // OpenBLAS's parallel mode: 2 is its OpenMP build (one thread pool with ours), 1 its
    // pthread build (which fights OpenMP for the cores), 0 single-threaded.
    int par = openblas_get_parallel();
    fprintf(f, "  BLAS:    %s (%s)\n", openblas_get_config(),
            par == 2 ? "OpenMP build" : par == 1 ? "pthread build: install libopenblas-openmp-dev" : "sequential build");
    if (blas_kernel_note()) fprintf(f, "           %s\n", blas_kernel_note());
    char mpi[256];
    comm_library_version(mpi, sizeof mpi);
    fprintf(f, "  MPI:     %s\n", mpi);
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    fprintf(f, "  HDF5:    %u.%u.%u (%s)\n", maj, min, rel,
            shard_hdf5_threadsafe() ? "thread-safe: loader workers read in parallel" : "not thread-safe: reads serialised");
    fprintf(f, "  images:  libpng %s, libjpeg %d, zlib %s; YAML: libyaml %s\n", png_get_libpng_ver(NULL), JPEG_LIB_VERSION,
            zlibVersion(), yaml_get_version_string());
    char why[512] = "";
    const mv_engine *gpu = engine_gpu(why, sizeof why);
    if (!gpu && !mv_gpu_plugin) {
        fprintf(f, "  GPU:     not built in (no CUDA toolkit when configured, or a sanitizer build)\n");
        return;
    }
    if (!gpu) {
        fprintf(f, "  GPU:     CUDA engine built (%s, loaded when a run may use a GPU); not loaded here: %s\n",
                mv_gpu_plugin, why);
        return;
    }
    bool ok = gpu->available(why, sizeof why);
    fprintf(f, "  GPU:     %s engine %s; %s%s\n", gpu->name, mv_gpu_engine ? "built in" : "loaded from its plugin",
            ok ? "a GPU is usable here" : "no GPU usable here: ", ok ? "" : why);
}
