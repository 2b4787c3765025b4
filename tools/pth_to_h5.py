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
             missing: they start from their initialisation, as in the authors' runs. A P without
             its trailing dot ('backbone') gets one, with a note: a key is a module path, so
             'backbonelayers.0...' is never what was meant. Without --prefix, keys that look like
             an encoder alone (top-level 'layers.*' or 'patch_embed.*', no 'backbone.*') draw a
             warning: maskvim would find none of them.
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
             two logits at entries 2t and 2t+1 of the class-major plane buffer (docs/math.md
             section 3). Their token_mask tensors are permuted into maskvim's spatial layout so
             that every token keeps exactly the logits it was trained with.
--token-mask-layout spatial
             the token_mask tensors are written as stored (maskvim's layout; or, for
             `maskvim eval --set mask.layout=official`, the authors' entries unpermuted).
             Nothing tells the two layouts apart in the values, so a file holding token_mask
             tensors needs one of the two, unless it records its layout: tools/h5_to_pth.py
             writes meta['token_mask_layout'] (and, with --wrap bare, the state_dict's
             _metadata['maskvim']), which is then used. Without either, exit 2 naming the file.
             An option that contradicts the record wins, with a warning.

A renamed key that lands on a key the file also holds is an error (exit 2, naming both). So is a
whole pickled model (torch.save(model)) in place of its state_dict: the message says to save
model.state_dict().
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

# VMamba v0 encoder names -> maskvim's (docs/math.md section 2), relative to the encoder root.
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
    subclass); the tensors never need it. It notes whether the object was an nn.Module (a whole
    model pickled instead of its state_dict), whose state is its __dict__ with '_parameters'."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        self.was_module = isinstance(state, dict) and "_parameters" in state and "_modules" in state


def absent_module(name):
    """A module whose every attribute is a subclass of Absent named as the class it stands for."""
    m = types.ModuleType(name)
    m.__path__ = []   # a package, so that its submodules are looked for (and stood in for) too
    classes = {}
    m.__getattr__ = lambda attr: classes.setdefault(attr, type(attr, (Absent,), {"__module__": name}))
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
                if stubs and not pickled_model(obj):
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


def pickled_model(obj):
    """"(class C)" or "under 'KEY' (class C)" when the file holds a whole model (torch.save(model))
    where a state_dict belongs, else None. Its tensors are the model's attributes, reachable only
    through its class, which may not import here; its state_dict() is the portable form."""
    places = [("", obj)] + [(f"under '{k}' ", obj[k]) for k in ("state_dict", "model")
                            if isinstance(obj, dict) and k in obj]
    for where, o in places:
        importable = isinstance(o, torch.nn.Module)
        if importable or getattr(o, "was_module", False):
            cls = type(o)
            return f"{where}(class {cls.__module__}.{cls.__qualname__}" + (")" if importable else ", not importable here)")
    return None


def recorded_layout(obj, sd):
    """The token-mask layout a .pth records (tools/h5_to_pth.py writes it), or None."""
    layout = None
    if isinstance(obj, dict) and isinstance(obj.get("meta"), dict):
        layout = obj["meta"].get("token_mask_layout")
    if layout is None:   # h5_to_pth --wrap bare: the state_dict's own metadata, which torch.save keeps
        layout = (getattr(sd, "_metadata", None) or {}).get("maskvim", {}).get("token_mask_layout")
    if layout is not None and layout not in ("spatial", "official"):
        raise ConvertError(f"it records token_mask_layout '{layout}', neither 'spatial' nor 'official'")
    return layout


def choose_layout(path, sd, given, recorded):
    """The layout to read the token masks in: the option, else the file's record. Nothing in the
    values tells the two apart, and the authors' checkpoints (official) and maskvim's (spatial)
    hold the same names and shapes, so a file with token masks and neither is refused rather
    than read in a guessed layout that would give every token wrong logits."""
    masks = sum(1 for k, t in sd.items() if torch.is_tensor(t) and k.endswith("token_mask"))
    if not masks:
        return given or "spatial", False
    if given:
        if recorded and given != recorded:
            print(f"pth_to_h5: warning: {path}: records token_mask_layout '{recorded}', "
                  f"--token-mask-layout {given} given: reading its token masks as {given}", file=sys.stderr)
        return given, False
    if recorded:
        return recorded, True
    raise ConvertError(f"holds {masks} token_mask tensors and does not record their layout: pass "
                       "--token-mask-layout official (a checkpoint of the authors' released code: their "
                       "masks are permuted into maskvim's layout) or --token-mask-layout spatial "
                       "(maskvim's layout, written as stored)")


def looks_like_bare_encoder(sd):
    """Whether the keys name a VMamba encoder saved alone: its top-level modules, no 'backbone.'."""
    keys = [k[len("module."):] if k.startswith("module.") else k for k in sd]
    return (not any(k.startswith("backbone.") for k in keys)
            and any(k.startswith(("layers.", "patch_embed.")) for k in keys))


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
        unwrapped = key.startswith("module.") and torch.is_tensor(t)
        if unwrapped:
            key = key[len("module."):]
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
        n["unwrapped"] += unwrapped   # the summary counts written tensors, not skipped entries
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
    ap.add_argument("--token-mask-layout", choices=["spatial", "official"], default=None)
    a = ap.parse_args()
    if a.prefix and not a.prefix.endswith("."):
        print(f"pth_to_h5: note: --prefix '{a.prefix}' taken as '{a.prefix}.' (keys are module paths)", file=sys.stderr)
        a.prefix += "."
    try:
        obj = load_checkpoint(a.input)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        print(f"pth_to_h5: {a.input}: cannot read as a PyTorch checkpoint ({e})", file=sys.stderr)
        return 2
    model = pickled_model(obj)
    if model:
        print(f"pth_to_h5: {a.input}: holds a pickled model object {model}, not a state_dict: in PyTorch, "
              "where the model's class imports, save its weights with torch.save(model.state_dict(), "
              "'weights.pth') and convert that file", file=sys.stderr)
        return 2
    sd = unwrap(obj)
    if not isinstance(sd, dict):
        print(f"pth_to_h5: {a.input}: no state_dict found", file=sys.stderr)
        return 2
    if not a.prefix and looks_like_bare_encoder(sd):
        print(f"pth_to_h5: warning: {a.input}: its keys name an encoder alone (top-level 'layers.*', "
              "'patch_embed.*', no 'backbone.*'), as VMamba's ImageNet checkpoints do; maskvim's model names "
              "them 'backbone.*', so it would find none of them: convert such a file with --prefix backbone.",
              file=sys.stderr)
    try:
        layout, from_file = choose_layout(a.input, sd, a.token_mask_layout, recorded_layout(obj, sd))
        tensors, n = plan(sd, a.prefix, a.naming, layout)
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
    recorded = f" (the file records the {layout} layout)" if from_file else ""
    print(f"{a.output}: {len(tensors)} tensors written, {n['renamed']} renamed{naming}, "
          f"{n['dropped']} classifier tensors dropped, {n['skipped']} entries skipped, "
          f"{n['permuted']} token masks permuted{recorded}{unwrapped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
