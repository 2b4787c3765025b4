// Loading the CUDA backend on demand (see mv_gpu_plugin in engine.h): the CLI maps cuBLAS,
// NCCL and the GPU model only when a run may use a GPU, so the commands that never do (config,
// data, report, --help) and the runs on machines without a driver start at once.
#include "core/engine.h"
#include "core/error.h"
#include <dlfcn.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *mv_gpu_plugin = NULL;

static bool g_tried = false;
static const mv_engine *g_loaded = NULL;
static char g_why[PATH_MAX + 640] = "";

// DIR/NAME with DIR the running executable's folder (the build or install folder both hold
// maskvim beside its plugin). False when that folder cannot be known.
static bool beside_executable(char *path, size_t n, const char *name) {
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return false;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return false;
    *slash = '\0';
    return snprintf(path, n, "%s/%s", exe, name) < (int)n;
}

static void load(void) {
    // MV_GPU_PLUGIN names another plugin file, and skips the driver check: the plugin then
    // loads on a machine without a GPU too (where it reports the missing driver itself), which
    // is how CI checks that it links against this executable.
    const char *forced = getenv("MV_GPU_PLUGIN");
    char path[PATH_MAX + 64];
    if (forced && forced[0]) {
        snprintf(path, sizeof path, "%s", forced);
    } else {
        // Without the driver's library no GPU can be used, and cudart would only say so after
        // cuBLAS and NCCL had been mapped and initialised.
        if (!dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
            snprintf(g_why, sizeof g_why, "no NVIDIA driver (libcuda.so.1 cannot be loaded)");
            return;
        }
        if (!beside_executable(path, sizeof path, mv_gpu_plugin)) {
            snprintf(g_why, sizeof g_why, "the CUDA backend %s: cannot find the executable's folder", mv_gpu_plugin);
            return;
        }
    }
    // RTLD_NOW: a symbol the plugin needs from this executable and cannot find fails here,
    // with the linker's message, and not in the middle of a training step.
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(g_why, sizeof g_why, "the CUDA backend cannot be loaded: %s", dlerror());
        return;
    }
    const mv_engine *(*entry)(const mv_engine_abi *, char *, size_t);
    *(void **)&entry = dlsym(h, MV_GPU_PLUGIN_ENTRY);
    if (!entry) {
        snprintf(g_why, sizeof g_why, "%.4000s is not maskvim's CUDA backend (no %s)", path, MV_GPU_PLUGIN_ENTRY);
        dlclose(h);
        return;
    }
    mv_engine_abi here = MV_ENGINE_ABI_HERE;
    char why[256] = "";
    g_loaded = entry(&here, why, sizeof why);
    if (!g_loaded) snprintf(g_why, sizeof g_why, "%.4000s: %s", path, why);
    // The handle stays open for the life of the process: the engine's code lives there.
}

const mv_engine *engine_gpu(char *why, size_t n) {
    if (mv_gpu_engine) return mv_gpu_engine;
    if (!mv_gpu_plugin) {
        snprintf(why, n, "this maskvim was built without the CUDA backend");
        return NULL;
    }
    if (!g_tried) {
        g_tried = true;
        load();
    }
    if (!g_loaded) snprintf(why, n, "%s", g_why);
    return g_loaded;
}
