#!/usr/bin/env python3
"""Compares the root datasets (weights, buffers) of two maskvim weight/checkpoint files.

usage: compare_weights.py A.h5 B.h5 [--exact | --rtol R | --init I.h5 --rel-l2 R --drift D]
--exact: every tensor bit-identical.
--rtol R: max|a-b| / max|a| below R for each tensor.
--init I --rel-l2 R --drift D: two training runs from the same initial weights I agree when
  the whole parameter vector (but the token-mask logits) differs by less than R relative
  (||a-b|| / ||a||), and no tensor's difference exceeds D times how far training moved it
  (||a-b|| / ||a-i||, per tensor): float rounding stays far below both, a logic error in any one
  tensor's gradient (a bucket not reduced, a statistic not synchronised) does not. Per tensor the
  L2, not the largest element: AdamW moves an element by about its learning rate whatever the
  size of its gradient, so one whose gradient is at the rounding floor (a ReLU that passes one
  tiny value) may step the other way in the other run; as a largest element that read as 23% of
  the tensor's movement (decode_head.bottleneck.conv.weight, 2 ranks x 1 against 1 x 2 in a
  sanitizer build), as an L2 it is 0.2%.
Exits 0 when they agree, 1 otherwise (listing the worst tensors)."""
import sys

import h5py
import numpy as np


def main():
    a_path, b_path = sys.argv[1], sys.argv[2]
    exact = "--exact" in sys.argv
    rtol = float(sys.argv[sys.argv.index("--rtol") + 1]) if "--rtol" in sys.argv else 0.0
    if "--init" in sys.argv:
        return trajectories(a_path, b_path, sys.argv[sys.argv.index("--init") + 1],
                            float(sys.argv[sys.argv.index("--rel-l2") + 1]), float(sys.argv[sys.argv.index("--drift") + 1]))
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        ka = {k for k in a.keys() if isinstance(a[k], h5py.Dataset)}
        kb = {k for k in b.keys() if isinstance(b[k], h5py.Dataset)}
        if ka != kb:
            print("key sets differ:", sorted(ka ^ kb)[:10])
            return 1
        worst = []
        for k in sorted(ka):
            x, y = np.asarray(a[k], dtype=np.float64), np.asarray(b[k], dtype=np.float64)
            if x.shape != y.shape:
                print(f"{k}: shapes {x.shape} vs {y.shape}")
                return 1
            if exact:
                if not np.array_equal(x, y):
                    worst.append((float(np.max(np.abs(x - y))), k))
            else:
                scale = max(float(np.max(np.abs(x))), 1e-12)
                err = float(np.max(np.abs(x - y))) / scale if x.size else 0.0
                if err >= rtol:
                    worst.append((err, k))
        if worst:
            worst.sort(reverse=True)
            for err, k in worst[:10]:
                print(f"DIFFER {k}: {err:.3g}")
            print(f"{len(worst)} of {len(ka)} tensors differ")
            return 1
        print(f"{len(ka)} tensors agree ({'bit-identical' if exact else f'rtol {rtol:g}'})")
        return 0


def trajectories(a_path, b_path, i_path, rel_l2, drift):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b, h5py.File(i_path, "r") as i:
        num = den = 0.0
        worst = []
        for k in i.keys():
            if not isinstance(i[k], h5py.Dataset):
                continue   # a training checkpoint's `train` group (AdamW moments, cursor)
            if "running_" in k:
                continue   # BatchNorm statistics: state, compared through the parameters they shape
            x, y, z = (np.asarray(f[k], dtype=np.float64) for f in (a, b, i))
            if "token_mask" not in k:
                # The mask logits learn at lr x 10000 (docs/math.md section 6): AdamW turns rounding
                # in their tiny gradients into steps of that size, which would dominate the L2
                # (they stay in the per-tensor check below, against their large movement).
                num += float(np.sum((x - y) ** 2))
                den += float(np.sum(x ** 2))
            if "psp_modules.0." in k:
                continue   # BatchNorm over B values of a 1x1 map: rounding amplified by 1/std (L2 still counts it)
            moved = float(np.linalg.norm(x - z))
            worst.append((float(np.linalg.norm(x - y)) / max(moved, 1e-30), k))
        worst.sort(reverse=True)
        rel = (num / max(den, 1e-300)) ** 0.5
        print(f"relative L2 difference of the parameters (but the mask logits): {rel:.3g} (limit {rel_l2:g})")
        for d, k in worst[:5]:
            print(f"  {k}: difference / movement (L2) {d:.3g} (limit {drift:g})")
        return 0 if rel < rel_l2 and worst[0][0] < drift else 1


if __name__ == "__main__":
    sys.exit(main())
