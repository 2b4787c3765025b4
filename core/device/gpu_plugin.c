// The entry point of libmaskvim_gpu.so, the CUDA backend the `maskvim` CLI loads on demand
// (core/engine_plugin.c). The plugin holds the GPU model, the kernels, cuBLAS and NCCL; the
// library's CPU code (configuration, checkpoints, MPI) it takes from the executable.
#include "core/engine.h"
#include <stdio.h>
#include <string.h>

const mv_engine *mv_gpu_plugin_engine(const mv_engine_abi *host, char *why, size_t n) {
    mv_engine_abi mine = MV_ENGINE_ABI_HERE;
    if (memcmp(host, &mine, sizeof mine) != 0) {
        snprintf(why, n, "built from another version of maskvim than this executable (rebuild both)");
        return NULL;
    }
    return mv_cuda_engine();
}
