// OpenBLAS's kernel choice: a CPU its version does not recognise gets the generic kernels.
#pragma once

// OpenBLAS picks its kernels once, when the library loads, from the CPU it recognises. A CPU
// newer than the OpenBLAS release (Debian 12's 0.3.21 names recent Xeons "Prescott") gets its
// generic SSE3 kernels: about 4x slower GEMMs, and other digits, than the AVX-512 kernels the
// CPU runs. Then this restarts the process (the same pid and arguments: under mpirun too) with
// OPENBLAS_CORETYPE naming the kernels its instructions allow: SkylakeX (AVX-512) or Haswell
// (AVX2 and FMA). Nothing happens when OPENBLAS_CORETYPE is set (the user's choice, or this
// restart's), when the kernels are already newer, under valgrind, or on another architecture.
// Call first in main.
void blas_kernel_check(char **argv);
// After such a restart, a line for --version saying so (the kernels OpenBLAS chose and those
// used); NULL otherwise.
const char *blas_kernel_note(void);
