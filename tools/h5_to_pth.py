#!/usr/bin/env python3
"""Converts a maskvim weights file or training checkpoint (HDF5) into a PyTorch checkpoint (.pth)
that mmsegmentation/mmengine's load_checkpoint and plain torch.load read.

  h5_to_pth.py IN.h5 OUT.pth [--token-mask-layout spatial|official] [--prefix-strip backbone.]
                             [--wrap state_dict|model|bare] [--bare]

Input: the float datasets at the root of the file, one per state_dict key (a weights file, an
iter_N.h5 or best.h5 checkpoint). A checkpoint's group 'train/' (AdamW moments, loader cursor,
checksums) is not exported as tensors; its step, iteration, seed and configuration text go into
the meta. Every tensor is written as float32 with its shape unchanged, bit for bit.

Output: {"state_dict": OrderedDict(name -> float32 tensor), "meta": {...}}, as mmengine saves
checkpoints (no optimizer state: the file is for load_from / testing, not for resuming an
mmengine run). meta holds 'source' (the input path), 'converter', 'token_mask_layout' (the
layout the token masks were written in, which pth_to_h5.py reads back, so that a file goes out
and back bit for bit without options) and, from a training checkpoint, 'iter' (train/iter:
iterations done, as mmengine counts them), 'step' (train/step), 'seed' (train/seed) and
'config_yaml' (train/config_yaml, the resolved configuration). Only plain Python types and
tensors are pickled, so torch.load(..., weights_only=True) reads it.

--wrap state_dict (default without --prefix-strip)
             {"state_dict": ..., "meta": ...}, as mmengine saves (load_checkpoint, load_from).
--wrap model (default with --prefix-strip)
             {"model": ..., "meta": ...}, as VMamba's ImageNet checkpoints hold their weights:
             the encoder loaders of the authors' code (MaskVSSM.load_pretrained) and of VMamba
             (Backbone_VSSM.load_pretrained) read ckpt["model"], and quietly load nothing when it
             is absent.
--wrap bare, --bare
             the state_dict (an OrderedDict) alone, without a wrapper or meta; the token-mask
             layout goes into its _metadata['maskvim'] (the attribute torch.save keeps for
             load_state_dict, whose modules read only their own 'version' from it).
--token-mask-layout official
             permute every '*token_mask' tensor from maskvim's spatial layout into the layout of
             the authors' released code (token t's logits at entries 2t and 2t+1 of the
             class-major plane buffer, docs/math.md section 3): the exact inverse of pth_to_h5.py's
             --token-mask-layout official, derived from the same function.
--prefix-strip P
             write only the keys that start with P, with P removed (e.g. 'backbone.': an
             encoder-only export in the naming of VMamba's own checkpoints), under "model"
             unless --wrap says otherwise.

BatchNorm: PyTorch's nn.BatchNorm2d has a buffer num_batches_tracked that maskvim does not keep.
One is added for every key ending in 'running_mean' (int64, 0-dim), so that a strict
load_state_dict finds every key. Its value is the checkpoint's train/step when present, else 0:
PyTorch counts one per training forward of the layer, and maskvim runs each BatchNorm once per
optimizer step, so this is the count PyTorch would hold after the same training. With momentum
0.1 (the authors' configuration and maskvim's) PyTorch never reads it; it only matters for
momentum=None (a cumulative average).

A training checkpoint's weights are checked against its stored checksum first, as maskvim checks
them (a second or so per 10 million parameters): a damaged tensor exported here would load
everywhere, its checksum left behind.

An unreadable file, a damaged checkpoint, a non-float dataset at the root, a file with no tensors at its root (or none
under --prefix-strip), or a token_mask that is not (B, h*w, 2) exits with status 2 and a message
naming the file. The output is written to a temporary beside it and renamed when complete.
The summary line gives the tensors written, num_batches_tracked added, token masks permuted and
the meta's iter.
"""
import argparse
import collections
import os
import sys

import h5py
import numpy as np

# torch (and pth_to_h5, which imports it) is imported only once the input has been read: the
# import takes seconds, and a wrong file should be reported at once.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # pth_to_h5, beside this file


class ExportError(Exception):
    pass


def spatial_to_official(t):
    """(B, h*w, 2) in the spatial layout -> (B, h*w, 2) in the released layout: the inverse of
    pth_to_h5.official_to_spatial, obtained from it by permuting entry indices (a pure gather /
    scatter of the values, so exact) rather than by writing the permutation a second time."""
    import torch
    from pth_to_h5 import official_to_spatial
    # idx[i] = the released-layout entry that spatial entry i comes from; scatter it back there.
    idx = official_to_spatial(torch.arange(t.numel()).reshape(t.shape)).reshape(-1)
    out = torch.empty(t.numel(), dtype=t.dtype)
    out[idx] = t.reshape(-1)
    return out.reshape(t.shape)


# The weights checksum of a training checkpoint (core/checkpoint.c, tensor_hash): every root
# dataset's float32 bits hashed with its name (FNV-1a of the name, then four multiply-rotate
# lanes over 8-float words, the tail float by float into lane 0, a final mix), summed mod 2^64.
_M64 = (1 << 64) - 1
_P1, _P2 = 0x9e3779b185ebca87, 0xc2b2ae3d27d4eb4f
SALT_WEIGHT = 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(x):
    x ^= x >> 33
    x = (x * 0xff51afd7ed558ccd) & _M64
    x ^= x >> 33
    x = (x * 0xc4ceb9fe1a85ec53) & _M64
    return x ^ (x >> 33)


def tensor_hash(salt, name, a):
    h = salt ^ 0xcbf29ce484222325
    for c in name.encode():
        h = ((h ^ c) * 0x100000001b3) & _M64
    bits = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    n = bits.size
    whole = n - n % 8
    words = bits[:whole].view(np.uint64)   # two floats per word, in the host's order as memcpy reads them
    lanes = [h, h ^ _P1, h ^ _P2, h ^ ((_P1 + _P2) & _M64)]
    for j in range(4):
        lane = lanes[j]
        for v in words[j::4].tolist():
            lane = (_rotl((lane + v * _P2) & _M64, 31) * _P1) & _M64
        lanes[j] = lane
    for v in bits[whole:].view(np.uint32).tolist():
        lanes[0] = (_rotl((lanes[0] + v * _P2) & _M64, 31) * _P1) & _M64
    return _fmix(lanes[0] ^ _rotl(lanes[1], 7) ^ _rotl(lanes[2], 12) ^ _rotl(lanes[3], 18) ^ n)


def check_weights(f):
    """A training checkpoint's weights against train/checksum/weights, as maskvim checks them
    before loading (a plain weights file has none): ExportError when they differ, since a damaged
    tensor exported here would load everywhere without its checksum."""
    want = scalar(f, "train/checksum/weights")
    if want is None:
        return
    got = 0
    for key in f.keys():
        obj = f[key]
        if isinstance(obj, h5py.Dataset) and not key.endswith(".num_batches_tracked"):
            got = (got + tensor_hash(SALT_WEIGHT, key, np.array(obj[()], dtype=np.float32))) & _M64
    if got != want:
        raise ExportError("the weights do not match their checksum (corrupt file): not exported")


def scalar(f, name):
    """A scalar dataset of the file as a Python int/str, or None when the file lacks it."""
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset) or obj.shape != ():
        return None
    v = obj[()]
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.integer):
        return int(v)
    return None


def read(path, layout, prefix):
    """[(name, float32 array or int)], meta and counts from the HDF5 file; ExportError on a file
    that is not a maskvim weights file or checkpoint."""
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        raise ExportError(f"cannot read as HDF5 ({e})")
    try:
        with f:
            return collect(f, path, layout, prefix)
    except (OSError, KeyError, ValueError, TypeError) as e:   # a damaged file (truncated, ...)
        raise ExportError(f"cannot read ({e})")


def collect(f, path, layout, prefix):
    """The entries, meta and counts of the open file (see read)."""
    entries = []
    n = dict(tensors=0, permuted=0, bn=0, groups=[])
    step = scalar(f, "train/step")
    n["nbt"] = step if step is not None else 0
    keys = list(f.keys())
    for key in keys:
        obj = f[key]
        if not isinstance(obj, h5py.Dataset):
            if key != "train":
                n["groups"].append(key)
            continue
        if obj.dtype.kind != "f":
            raise ExportError(f"dataset '{key}' is {obj.dtype}, not a floating-point tensor "
                              "(a maskvim weights file holds float32 datasets only)")
        if prefix is not None and not key.startswith(prefix):
            continue
        name = key[len(prefix):] if prefix is not None else key
        a = np.array(obj[()], dtype=np.float32, order="C")   # 0-dim stays 0-dim
        if key.endswith("token_mask") and layout == "official":
            if a.ndim != 3 or a.shape[2] != 2:
                raise ExportError(f"'{key}' has shape {a.shape}, not (B, h*w, 2) as a token_mask "
                                  "must for --token-mask-layout official")
            n["permuted"] += 1
        entries.append((name, a))
        n["tensors"] += 1
        # num_batches_tracked after the BatchNorm's last buffer, as PyTorch orders them
        # (running_mean decides what is a BatchNorm).
        if key.endswith("running_mean") and key[: -len("running_mean")] + "running_var" not in f:
            bn = name[: -len("running_mean")]
        elif key.endswith("running_var") and key[: -len("running_var")] + "running_mean" in f:
            bn = name[: -len("running_var")]
        else:
            continue
        entries.append((bn + "num_batches_tracked", n["nbt"]))
        n["bn"] += 1
    if n["tensors"] == 0:
        if prefix is not None and any(isinstance(f[k], h5py.Dataset) for k in keys):
            raise ExportError(f"no tensor at its root starts with '{prefix}'")
        raise ExportError("no tensors at its root (not a maskvim weights file or checkpoint)")
    check_weights(f)
    meta = {"source": path, "converter": "maskvim tools/h5_to_pth.py", "token_mask_layout": layout}
    for name, field in (("iter", "train/iter"), ("step", "train/step"), ("seed", "train/seed"),
                        ("config_yaml", "train/config_yaml")):
        v = scalar(f, field)
        if v is not None:
            meta[name] = v
    return entries, meta, n


def state_dict(entries, layout):
    """OrderedDict(name -> float32 tensor, or int64 0-dim tensor for num_batches_tracked)."""
    import torch
    sd = collections.OrderedDict()
    for name, a in entries:
        if isinstance(a, int):
            sd[name] = torch.tensor(a, dtype=torch.int64)
            continue
        t = torch.from_numpy(a)
        if name.endswith("token_mask") and layout == "official":
            t = spatial_to_official(t)
        sd[name] = t
    return sd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--token-mask-layout", choices=["spatial", "official"], default="spatial")
    ap.add_argument("--prefix-strip", default=None, metavar="P")
    ap.add_argument("--wrap", choices=["state_dict", "model", "bare"], default=None)
    ap.add_argument("--bare", action="store_true", help="the same as --wrap bare")
    a = ap.parse_args()
    if a.bare and a.wrap not in (None, "bare"):
        print(f"h5_to_pth: --bare and --wrap {a.wrap} contradict each other", file=sys.stderr)
        return 2
    wrap = "bare" if a.bare else a.wrap or ("model" if a.prefix_strip is not None else "state_dict")
    try:
        entries, meta, n = read(a.input, a.token_mask_layout, a.prefix_strip)
    except ExportError as e:
        print(f"h5_to_pth: {a.input}: {e}", file=sys.stderr)
        return 2
    if n["groups"]:
        print(f"h5_to_pth: {a.input}: left out the groups {', '.join(n['groups'])} (not tensors)", file=sys.stderr)
    import torch
    sd = state_dict(entries, a.token_mask_layout)
    if wrap == "bare":
        # No meta to hold the layout: the state_dict's _metadata does, as torch.save keeps it.
        sd._metadata = {"maskvim": {"token_mask_layout": a.token_mask_layout}}
        obj = sd
    else:
        obj = {wrap: sd, "meta": meta}
    from pth_to_h5 import write_atomically

    def write(tmp):
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())

    error = write_atomically(a.output, write, (OSError, RuntimeError))
    if error:
        print(f"h5_to_pth: {a.output}: cannot write ({error})", file=sys.stderr)
        return 2
    it = f", meta iter {meta['iter']}" if "iter" in meta and wrap != "bare" else ""
    value = f" (value {n['nbt']})" if n["bn"] else ""
    under = {"state_dict": "", "model": ", under 'model'", "bare": ", a bare state_dict"}[wrap]
    print(f"{a.output}: {n['tensors']} tensors written, {n['bn']} num_batches_tracked added{value}, "
          f"{n['permuted']} token masks permuted{it}{under}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
