// Synchronised BatchNorm across ranks: the BatchNorm op (kernels/cpu) computes per-channel
// partial sums over its own images and hands them to a reduce callback, which sums them over
// all ranks, so every rank normalises with the statistics of the global batch:
//   forward:  (count, sum x, sum x^2) per channel
//   backward: (sum dy, sum dy * xhat) per channel
// In evaluation BatchNorm uses its running statistics and calls no callback.
#pragma once
#include "dist/comm.h"

// In-place sum over ranks of buf[0..n). 0, or -1 with a message.
int syncbn_allreduce(mv_comm *c, double *buf, int n);
// The BatchNorm op's callback: ctx is the mv_comm* (NULL or a single rank: nothing to do).
// A callback cannot return an error, and a rank that cannot reduce would leave the others
// waiting, so a failure ends the job through comm_abort.
void syncbn_reduce_cb(void *ctx, double *buf, int n);
