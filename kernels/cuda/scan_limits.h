// The largest SSM state size (model.d_state) the GPU's selective scan takes: a channel's N
// states sit in at most 8 lanes of 4 states each. Shared by the kernels and the engine's check before a
// model is put on the GPU (a plain C header: the CPU-only build includes it too).
#pragma once
#define MV_GPU_MAX_D_STATE 32
