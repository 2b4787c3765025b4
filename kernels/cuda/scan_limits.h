// The largest SSM state size (model.d_state) the GPU's selective scan takes: a position's N
// states sit in the lanes of one warp. Shared by the kernels and the engine's check before a
// model is put on the GPU (a plain C header: the CPU-only build includes it too).
#pragma once
#define MV_GPU_MAX_D_STATE 32
