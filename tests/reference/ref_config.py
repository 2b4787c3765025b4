# The MaskViM configuration of the PyTorch reference: presets (docs/math.md section 1) and the
# `--set key=value` overrides, using the same key names as the C side's model_config_set.
import copy

# Settings shared by every preset (docs/math.md sections 1, 3, 5, 6).
_COMMON = dict(
    ssm_ratio=2,
    decoder_depths=[1, 1, 1],
    num_classes=19,
    drop_path=0.3,            # encoder stochastic depth, linear over blocks
    decoder_drop_path=0.1,    # decoder stochastic depth, linear from the coarsest lateral
    dropout=0.1,              # Dropout2d before both conv_seg layers
    aux_weight=0.4,
    avg_non_ignore=False,
    head="uper",              # uper: the mask decoder | linear: SegFormer-style all-MLP head
    context="ppm",            # lateral 3 of the mask decoder: ppm | vss (one VSS block)
    mask_encoder=[True, True, True, False],   # per encoder stage 0..3
    mask_decoder=True,
    lambda_per_stage=False,
    lambda_count=1,           # values given to mask.lambda (1: uniform; 3 or 4: per stage)
    lam=[0.5, 0.5, 0.5, 0.5],
    alpha1=1.0,
    alpha2=1.0,
    tau=1.0,
    gamma=4.0,
    mask_mode="residual",     # residual: x*m + x   zero: x*m
    mask_layout="spatial",    # spatial | official (docs/math.md section 3)
    mask_noise=True,          # Gumbel noise in training
    ratio_sync=True,          # only matters with several ranks; accepted for symmetry
)

PRESETS = {
    "maskvim-t": dict(dims=[96, 192, 384, 768], depths=[2, 2, 9, 2], d_state=16,
                      decoder_channels=512, aux_channels=256, crop=[512, 1024]),
    "maskvim-s": dict(dims=[96, 192, 384, 768], depths=[2, 2, 27, 2], d_state=16,
                      decoder_channels=512, aux_channels=256, crop=[512, 1024]),
    "maskvim-b": dict(dims=[128, 256, 512, 1024], depths=[2, 2, 27, 2], d_state=16,
                      decoder_channels=256, aux_channels=256, crop=[512, 1024]),
    "maskvim-nano": dict(dims=[16, 32, 64, 128], depths=[1, 1, 2, 1], d_state=4,
                         decoder_channels=32, aux_channels=16, crop=[64, 64]),
}


def preset(name):
    """Returns a fresh config dict for preset `name` (ValueError listing presets if unknown)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (presets: {', '.join(PRESETS)})")
    cfg = copy.deepcopy(_COMMON)
    cfg.update(copy.deepcopy(PRESETS[name]))
    cfg["preset"] = name
    return cfg


def _bool(text):
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: '{text}'")


def _ints(text, n):
    parts = text.replace("x", ",").split(",")
    vals = [int(p) for p in parts]
    if len(vals) != n:
        raise ValueError(f"expected {n} integers, got '{text}'")
    return vals


def _choice(text, options):
    if text not in options:
        raise ValueError(f"'{text}' is not one of {', '.join(options)}")
    return text


def set_key(cfg, key, value):
    """Applies one override `key=value` (text) to cfg in place; ValueError names the bad key."""
    v = value.strip()
    try:
        if key == "model.dims":
            cfg["dims"] = _ints(v, 4)
        elif key == "model.depths":
            cfg["depths"] = _ints(v, 4)
        elif key == "model.d_state":
            cfg["d_state"] = int(v)
        elif key == "model.ssm_ratio":
            cfg["ssm_ratio"] = int(v)
        elif key == "model.decoder_channels":
            cfg["decoder_channels"] = int(v)
        elif key == "model.aux_channels":
            cfg["aux_channels"] = int(v)
        elif key == "model.decoder_depths":
            cfg["decoder_depths"] = _ints(v, 3)
        elif key == "model.num_classes":
            cfg["num_classes"] = int(v)
        elif key == "model.crop":
            cfg["crop"] = _ints(v, 2)
        elif key == "model.drop_path":
            cfg["drop_path"] = float(v)
        elif key == "model.decoder_drop_path":
            cfg["decoder_drop_path"] = float(v)
        elif key == "model.dropout":
            cfg["dropout"] = float(v)
        elif key == "model.aux_weight":
            cfg["aux_weight"] = float(v)
        elif key == "model.avg_non_ignore":
            cfg["avg_non_ignore"] = _bool(v)
        elif key == "model.head":
            cfg["head"] = _choice(v, ("uper", "linear"))
        elif key == "model.context":
            cfg["context"] = _choice(v, ("ppm", "vss"))
        elif key == "mask.encoder":
            on = _bool(v)
            cfg["mask_encoder"] = [on, on, on, False]
        elif key == "mask.encoder_stages":
            parts = [_bool(p) for p in v.strip("[]").split(",")]
            if len(parts) not in (3, 4):
                raise ValueError("expected 3 or 4 booleans")
            cfg["mask_encoder"] = parts + [False] * (4 - len(parts))
        elif key == "mask.decoder":
            cfg["mask_decoder"] = _bool(v)
        elif key == "mask.lambda":
            vals = [float(p) for p in v.strip("[]").split(",")]
            if len(vals) == 1:
                cfg["lam"] = vals * 4
                cfg["lambda_per_stage"] = False
            elif len(vals) in (3, 4):
                cfg["lam"] = vals + vals[-1:] * (4 - len(vals))
                cfg["lambda_per_stage"] = True
            else:
                raise ValueError("expected 1, 3 or 4 values")
            cfg["lambda_count"] = len(vals)
        elif key == "mask.alpha1":
            cfg["alpha1"] = float(v)
        elif key == "mask.alpha2":
            cfg["alpha2"] = float(v)
        elif key == "mask.tau":
            cfg["tau"] = float(v)
        elif key == "mask.gamma":
            cfg["gamma"] = float(v)
        elif key == "mask.mode":
            cfg["mask_mode"] = _choice(v, ("residual", "zero"))
        elif key == "mask.layout":
            cfg["mask_layout"] = _choice(v, ("spatial", "official"))
        elif key == "mask.noise":
            cfg["mask_noise"] = _bool(v)
        elif key == "mask.ratio_sync":
            cfg["ratio_sync"] = _bool(v)
        else:
            raise KeyError(key)
    except KeyError:
        raise ValueError(f"unknown key '{key}'") from None
    except ValueError as e:
        raise ValueError(f"{key}: bad value '{value}': {e}") from None


def apply_sets(cfg, items):
    """Applies a list of 'key=value' strings in order."""
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got '{item}'")
        k, v = item.split("=", 1)
        set_key(cfg, k.strip(), v)
    validate(cfg)
    return cfg


def validate(cfg):
    """Refuses what the C side's model_config_validate and key ranges refuse (docs/config.md), so
    that the yardstick never accepts a configuration `maskvim` rejects: the two sides must agree
    on which settings exist, not only on what the accepted ones compute."""
    ch, cw = cfg["crop"]
    if not (32 <= ch <= 16384 and 32 <= cw <= 16384) or ch % 32 or cw % 32:
        raise ValueError(f"model.crop {ch}x{cw}: both sides must be multiples of 32 in [32, 16384]")
    ranges = dict(dims=(1, 8192), depths=(1, 64), decoder_depths=(1, 16))
    for name, (lo, hi) in ranges.items():
        if any(x <= 0 for x in cfg[name]):
            raise ValueError(f"model.{name}: every entry must be positive")
        if any(not lo <= x <= hi for x in cfg[name]):
            raise ValueError(f"model.{name}: every entry must be in [{lo}, {hi}]")
    for name in ("d_state", "decoder_channels", "aux_channels", "num_classes", "ssm_ratio"):
        if cfg[name] <= 0:
            raise ValueError(f"model.{name} must be positive")
    for name, lo, hi in (("d_state", 1, 64), ("ssm_ratio", 1, 8), ("decoder_channels", 1, 8192),
                         ("aux_channels", 1, 8192), ("num_classes", 2, 255)):
        if not lo <= cfg[name] <= hi:
            raise ValueError(f"model.{name} = {cfg[name]} is out of range [{lo}, {hi}]")
    if cfg["head"] == "linear" and cfg["mask_decoder"]:
        raise ValueError("the linear head has no decoder blocks to mask: set mask.decoder=false")
    if cfg["head"] == "linear" and cfg["context"] != "ppm":
        raise ValueError("model.context = vss replaces the mask decoder's pyramid pooling: it needs model.head=uper")
    for name in ("tau", "gamma"):
        if not 0.0 < cfg[name] <= 1000.0:
            raise ValueError(f"mask.{name} = {cfg[name]} is out of range (0, 1000]")
    for name in ("drop_path", "decoder_drop_path", "dropout"):
        if not 0.0 <= cfg[name] < 1.0:
            raise ValueError(f"model.{name} must be in [0, 1)")
    if not 0.0 <= cfg["aux_weight"] <= 1000.0:
        raise ValueError(f"model.aux_weight = {cfg['aux_weight']} is out of range [0, 1000]")
    for name in ("alpha1", "alpha2"):
        if not 0.0 <= cfg[name] <= 1e6:
            raise ValueError(f"mask.{name} = {cfg[name]} is out of range [0, 1e6]")
    if any(not 0.0 <= v <= 1.0 for v in cfg["lam"]):
        raise ValueError(f"mask.lambda {cfg['lam'][:cfg['lambda_count']]}: every value must be in [0, 1]")
    if cfg["lambda_per_stage"] and cfg["mask_encoder"][3] and cfg["lambda_count"] < 4:
        raise ValueError(f"mask.lambda gives {cfg['lambda_count']} per-stage values but stage 3 is masked: "
                         "give four, or one for the uniform lambda")
    if cfg["lambda_per_stage"] and not cfg["mask_encoder"][3] and cfg["lambda_count"] > 3:
        raise ValueError(f"mask.lambda gives {cfg['lambda_count']} per-stage values but stage 3 is not masked, "
                         "so the last would be ignored: give three, or mask stage 3 too")


def deterministic(cfg):
    """Switches off every random draw: dropout, drop path and Gumbel noise."""
    cfg["drop_path"] = 0.0
    cfg["decoder_drop_path"] = 0.0
    cfg["dropout"] = 0.0
    cfg["mask_noise"] = False
    return cfg
