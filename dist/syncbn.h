// Synchronised BatchNorm across ranks: the BatchNorm op (kernels/cpu) computes per-channel
// partial sums over its own images and hands them to a reduce callback, which sums them over
// all ranks, so every rank normalises with the statistics of the global batch:
//   forward:  (count, sum x, sum x^2) per channel
//   backward: (sum dy, sum dy * xhat) per channel
// In evaluation BatchNorm uses its running statistics and calls no callback. The model's one
// reducer (mv_run_ctx.reduce) also sums the ratio loss's statistics (its global mean), so the
// callback says nothing about which sum it makes.
#pragma once
#include "dist/comm.h"

// The model's reduce callback on the CPU path: in-place sum over ranks of buf[0..n); ctx is the
// mv_comm* (NULL or a single rank: nothing to do). A callback cannot return an error, and a rank
// that cannot reduce would leave the others waiting, so a failure ends the job through
// comm_abort with the all-reduce's own message.
void syncbn_reduce_cb(void *ctx, double *buf, int n);
