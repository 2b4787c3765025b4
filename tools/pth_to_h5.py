#!/usr/bin/env python3
"""Converts a PyTorch checkpoint (.pth) into a maskvim weights file (HDF5, one float32 dataset
per state_dict key, PyTorch shapes).

  pth_to_h5.py IN.pth OUT.h5 [--prefix backbone.] [--token-mask-layout spatial|official]

Accepted inputs: a bare state_dict, or a dict holding it under 'state_dict' (mmseg/mmengine)
or 'model' (VMamba's ImageNet checkpoints). Non-tensor entries and BatchNorm's
num_batches_tracked are skipped; float tensors are written as float32.

--prefix P   prepend P to every key: VMamba's ImageNet checkpoints name the encoder's tensors
             without the 'backbone.' of a segmentation model; their classifier ('classifier.*',
             'head.*') is dropped. maskvim then reports the decoder's tensors and the encoder's
             output norms as missing (they start from their initialisation).
--token-mask-layout official
             the checkpoint comes from the authors' released code, whose blocks read token t's
             two logits at entries 2t and 2t+1 of the class-major plane buffer (SPEC.md
             section 3). Their token_mask tensors are permuted into maskvim's spatial layout so
             that every token keeps exactly the logits it was trained with.
"""
import argparse
import sys

import h5py
import numpy as np
import torch


def unwrap(obj):
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
    return obj


def official_to_spatial(t):
    """(1, h*w, 2) in the released layout -> (1, h*w, 2) in the spatial layout.

    Released: the planes are P[:, :, c]; flattened class-major they form F = [P[:,0], P[:,1]],
    and token t reads F[2t] (keep) and F[2t+1] (drop). Spatial: token t reads Q[t, 0], Q[t, 1].
    So Q = F viewed as (h*w, 2)."""
    return t.permute(0, 2, 1).reshape(t.shape[0], -1).reshape(t.shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--token-mask-layout", choices=["spatial", "official"], default="spatial")
    a = ap.parse_args()
    try:
        sd = unwrap(torch.load(a.input, map_location="cpu"))
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        print(f"pth_to_h5: {a.input}: cannot read as a PyTorch checkpoint ({e})", file=sys.stderr)
        return 2
    if not isinstance(sd, dict):
        print(f"pth_to_h5: {a.input}: no state_dict found", file=sys.stderr)
        return 2
    written = skipped = permuted = 0
    with h5py.File(a.output, "w") as f:
        for key, t in sd.items():
            if not torch.is_tensor(t) or key.endswith("num_batches_tracked") or not t.is_floating_point():
                skipped += 1
                if torch.is_tensor(t) and not key.endswith("num_batches_tracked"):
                    # A weight stored as integers is not a weight maskvim can use: say which,
                    # since maskvim will then report it missing.
                    print(f"pth_to_h5: skipping '{key}': {t.dtype} is not a floating-point type", file=sys.stderr)
                continue
            if a.prefix and key.split(".")[0] in ("classifier", "head"):
                skipped += 1
                continue
            name = a.prefix + key
            t = t.detach().to(torch.float32)
            if name.endswith("token_mask") and a.token_mask_layout == "official":
                t = official_to_spatial(t)
                permuted += 1
            f.create_dataset(name, data=t.numpy().astype(np.float32))
            written += 1
    print(f"{a.output}: {written} tensors written, {skipped} entries skipped, {permuted} token masks permuted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
