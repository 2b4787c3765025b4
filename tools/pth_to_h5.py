#!/usr/bin/env python3
"""Converts a PyTorch checkpoint (.pth) into a maskvim weights file (HDF5, one float32 dataset
per state_dict key, PyTorch shapes).

  pth_to_h5.py IN.pth OUT.h5 [--prefix backbone.] [--naming auto|v0|maskvim]
                             [--token-mask-layout spatial|official]

Accepted inputs: a bare state_dict, or a dict holding it under 'state_dict' (mmseg/mmengine)
or 'model' (VMamba's ImageNet checkpoints). Non-tensor entries and BatchNorm's
num_batches_tracked are skipped; float tensors are written as float32, with their shapes
unchanged. A leading 'module.' (a model saved wrapped in DataParallel or
DistributedDataParallel) is removed from every key, as mmengine's load_checkpoint does
(its default revise_keys).

--prefix P   prepend P to every key: VMamba's ImageNet checkpoints name the encoder's tensors
             without the 'backbone.' of a segmentation model. Their classifier (top-level
             'norm.*', 'head.*', 'classifier.*') is dropped. maskvim then reports the decoder's
             tensors, the encoder's output norms (outnorm0..3) and the encoder's token masks as
             missing: they start from their initialisation, as in the authors' runs.
--naming auto (default)
             rename the encoder names of early VMamba code ("v0", e.g. the ImageNet checkpoint
             vssmtiny_dp01_ckpt_epoch_292.pth of the authors' recipe) to maskvim's, wherever
             they occur, exactly as the authors' MaskVSSM._load_from_state_dict does:
               patch_embed.proj.*                  -> patch_embed.0.*
               patch_embed.norm.*                  -> patch_embed.2.*
               layers.i.blocks.j.ln_1.*            -> layers.i.blocks.j.norm.*
               layers.i.blocks.j.self_attention.*  -> layers.i.blocks.j.op.*
             The keys are taken relative to the encoder root: the whole key with --prefix, the
             part after 'backbone.' without it. Every other v0 name (the SS2D tensors, the
             downsample 'layers.i.downsample.{norm,reduction}.*') is already maskvim's, with
             the same shape, so nothing is reshaped. Inputs in maskvim's naming pass unchanged.
--naming v0  the same, but the input must hold v0 names (an error otherwise).
--naming maskvim
             rename nothing.
--token-mask-layout official
             the checkpoint comes from the authors' released code, whose blocks read token t's
             two logits at entries 2t and 2t+1 of the class-major plane buffer (SPEC.md
             section 3). Their token_mask tensors are permuted into maskvim's spatial layout so
             that every token keeps exactly the logits it was trained with.

A renamed key that lands on a key the file also holds is an error (exit 2, naming both).
The summary line gives the tensors written, renamed, dropped and skipped.
"""
import argparse
import os
import re
import sys
import types

import h5py
import numpy as np
import torch

# VMamba v0 encoder names -> maskvim's (SPEC.md section 2), relative to the encoder root.
V0_RENAMES = (
    (re.compile(r"^patch_embed\.proj\."), "patch_embed.0."),
    (re.compile(r"^patch_embed\.norm\."), "patch_embed.2."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+)\.ln_1\."), r"\1.norm."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+)\.self_attention\."), r"\1.op."),
)
# Top-level entries of an ImageNet classifier that the encoder has no use for.
CLASSIFIER = ("norm", "head", "classifier")


class ConvertError(Exception):
    pass


class Absent(dict):
    """Stands in for a class a checkpoint pickled that this machine cannot import (VMamba's
    ImageNet checkpoints carry their training configuration as a yacs CfgNode, a dict
    subclass); the tensors never need it."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        pass


def absent_module(name):
    """A module whose every attribute is Absent, standing in for one this machine lacks."""
    m = types.ModuleType(name)
    m.__path__ = []   # a package, so that its submodules are looked for (and stood in for) too
    m.__getattr__ = lambda attr: Absent
    return m


def load_checkpoint(path):
    """torch.load, with the modules of pickled classes this machine lacks stood in for by
    absent_module (torch 1.13 ignores a custom pickle_module, so the import itself is answered).
    weights_only is off (torch 2.6 turns it on by default and refuses such classes): converting
    a checkpoint trusts it, as loading it in PyTorch would."""
    stubs = []
    try:
        for _ in range(64):
            try:
                obj = torch.load(path, map_location="cpu", weights_only=False)
                if stubs:
                    tops = sorted({name.split(".")[0] for name in stubs})
                    print(f"pth_to_h5: {path}: left out the objects pickled from {', '.join(tops)} "
                          "(not installed here; they are not tensors)", file=sys.stderr)
                return obj
            except ModuleNotFoundError as e:
                if not e.name or e.name in sys.modules:
                    raise
                sys.modules[e.name] = absent_module(e.name)
                stubs.append(e.name)
        raise ConvertError("too many modules missing")
    finally:
        for name in stubs:
            sys.modules.pop(name, None)


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


def rename_v0(rel):
    """The maskvim name of an encoder-relative key, or None when it is not a v0 name."""
    for pattern, repl in V0_RENAMES:
        if pattern.match(rel):
            return pattern.sub(repl, rel, count=1)
    return None


def plan(sd, prefix, naming, layout):
    """[(output name, tensor, source key)] and the counts, without writing anything."""
    root = "" if prefix else "backbone."
    out, seen = [], {}
    n = dict(renamed=0, dropped=0, skipped=0, permuted=0, unwrapped=0)
    for key, t in sd.items():
        src = key
        # DataParallel's 'module.': the authors' code loads through mmengine's load_checkpoint,
        # which strips it (revise_keys=[(r'^module\.', '')]); kept, no key would match maskvim's,
        # and the v0 renames below (anchored at 'backbone.' or the root) would miss too.
        if key.startswith("module.") and torch.is_tensor(t):
            key = key[len("module."):]
            n["unwrapped"] += 1
        if not torch.is_tensor(t) or key.endswith("num_batches_tracked") or not t.is_floating_point():
            n["skipped"] += 1
            if torch.is_tensor(t) and not key.endswith("num_batches_tracked"):
                # A weight stored as integers is not a weight maskvim can use: say which,
                # since maskvim will then report it missing.
                print(f"pth_to_h5: skipping '{key}': {t.dtype} is not a floating-point type", file=sys.stderr)
            continue
        if prefix and key.split(".")[0] in CLASSIFIER:
            n["dropped"] += 1
            continue
        name = key
        if naming != "maskvim" and key.startswith(root):
            new = rename_v0(key[len(root):])
            if new is not None:
                name = root + new
                n["renamed"] += 1
        name = prefix + name
        if name in seen:
            raise ConvertError(f"'{src}' and '{seen[name]}' both become '{name}' "
                               "(the file mixes VMamba v0 and maskvim names, or keys with and without 'module.')")
        seen[name] = src
        t = t.detach().to(torch.float32)
        if name.endswith("token_mask") and layout == "official":
            t = official_to_spatial(t)
            n["permuted"] += 1
        out.append((name, t, src))
    if naming == "v0" and n["renamed"] == 0:
        raise ConvertError("--naming v0, but no key has a VMamba v0 name "
                           f"({root or 'top level'}: patch_embed.proj, patch_embed.norm, "
                           "layers.i.blocks.j.ln_1, layers.i.blocks.j.self_attention)")
    return out, n


def write_atomically(path, write, errors=(OSError, ValueError)):
    """Runs write(tmp) on a temporary beside `path` (its folder made if needed) and renames it
    to `path` when complete, so that an interrupted or failed write leaves no file that a reader
    would take for a whole one. Returns the error message, or None."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
        return None
    except errors as e:
        return str(e)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--naming", choices=["auto", "v0", "maskvim"], default="auto")
    ap.add_argument("--token-mask-layout", choices=["spatial", "official"], default="spatial")
    a = ap.parse_args()
    try:
        sd = unwrap(load_checkpoint(a.input))
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        print(f"pth_to_h5: {a.input}: cannot read as a PyTorch checkpoint ({e})", file=sys.stderr)
        return 2
    if not isinstance(sd, dict):
        print(f"pth_to_h5: {a.input}: no state_dict found", file=sys.stderr)
        return 2
    try:
        tensors, n = plan(sd, a.prefix, a.naming, a.token_mask_layout)
        if not tensors:
            raise ConvertError(f"no floating-point tensor to write ({n['skipped']} entries skipped, "
                               f"{n['dropped']} classifier tensors dropped): not a state_dict of weights")
    except ConvertError as e:
        print(f"pth_to_h5: {a.input}: {e}", file=sys.stderr)
        return 2
    def write(tmp):
        with h5py.File(tmp, "w") as f:
            for name, t, _ in tensors:
                f.create_dataset(name, data=t.numpy().astype(np.float32))

    error = write_atomically(a.output, write)
    if error:
        print(f"pth_to_h5: {a.output}: cannot write ({error})", file=sys.stderr)
        return 2
    naming = " (VMamba v0 names)" if n["renamed"] else ""
    unwrapped = f", 'module.' removed from {n['unwrapped']} keys" if n["unwrapped"] else ""
    print(f"{a.output}: {len(tensors)} tensors written, {n['renamed']} renamed{naming}, "
          f"{n['dropped']} classifier tensors dropped, {n['skipped']} entries skipped, "
          f"{n['permuted']} token masks permuted{unwrapped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
