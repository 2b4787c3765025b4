// The build's identity (core/build_info.h). MV_VERSION and MV_GIT_COMMIT come from the header
// cmake/build_info.cmake generates at every build; the libraries are asked at run time.
#include "core/build_info.h"
#include "core/engine.h"
#include "data/shard.h"
#include "dist/comm.h"
#include "mv_build_info.h"
#include <cblas.h>
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

void mv_build_report(FILE *f) {
    fprintf(f, "maskvim %s (commit %s)\n", MV_VERSION, MV_GIT_COMMIT);
    fprintf(f, "  build:   %s, gcc %s, %s%s\n", MV_BUILD_TYPE, __VERSION__, vector_isa(), sanitizers());
    fprintf(f, "  OpenMP:  %d thread%s\n", omp_get_max_threads(), omp_get_max_threads() == 1 ? "" : "s");
    // OpenBLAS's parallel mode: 2 is its OpenMP build (one thread pool with ours), 1 its
    // pthread build (which fights OpenMP for the cores), 0 single-threaded.
    int par = openblas_get_parallel();
    fprintf(f, "  BLAS:    %s (%s)\n", openblas_get_config(),
            par == 2 ? "OpenMP build" : par == 1 ? "pthread build: install libopenblas-openmp-dev" : "sequential build");
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
