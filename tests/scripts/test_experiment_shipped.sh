#!/usr/bin/env bash
# Every shipped experiment file (the CPU twins in experiments/cpu and the paper-scale files in
# experiments/paper) parses, every row resolves, and --dry-run lists the expected number of
# rows from a folder without any dataset, writing nothing. A file with `seeds:` lists one run per
# (row, seed): table6_components has 6 rows x 2 seeds. The paper-scale files ask for the paper's
# global batch of 4 (`global_batch:`). Then every row's resolved configuration is
# held against what the paper's table row varies and the authors' recipe (docs/math.md sections 5-7),
# and the paper's numbers and column domains that `maskvim report FILE` prints against docs/math.md.
set -euo pipefail
: "${MV_BIN:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
mkdir -p "$MV_TEST_TMP"
TMP="$MV_TEST_TMP/experiment_shipped"
rm -rf "$TMP"
mkdir -p "$TMP"
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0

# Every shipped experiment file (CPU twins and paper scale) parses and every row resolves,
#    with --dry-run from a folder without any dataset (the paper's data/ need not exist).
declare -A ROWS=([cpu/table2_corruptions]=1 [cpu/table3_cityscapes]=3 [cpu/table4_mapillary]=3 [cpu/table5_gtav]=3
                 [cpu/table6_components]=12 [cpu/table7_lambda]=12 [cpu/table8_losses]=4 [cpu/figure5_lambda]=9
                 [paper/table2_cityscapes_c]=1 [paper/table3_cityscapes]=1 [paper/table4_mapillary]=1
                 [paper/table5_gtav]=1 [paper/table6_components]=6 [paper/table7_lambda]=12 [paper/table8_losses]=4
                 [paper/figure5_lambda]=9)
mkdir -p "$TMP/nodata"
nfiles=0
for f in "$MV_SRC"/experiments/cpu/*.yaml "$MV_SRC"/experiments/paper/*.yaml; do
    key=$(basename "$(dirname "$f")")/$(basename "$f" .yaml)
    [ -n "${ROWS[$key]:-}" ] || fail "$key: a shipped experiment file this test does not know (add its row count)"
    (cd "$TMP/nodata" && "$MV_BIN" experiment run "$f" --dry-run) >"$TMP/shipped.log" 2>&1 || fail "$f: $(cat "$TMP/shipped.log")"
    n=$(grep -c "^   overrides:" "$TMP/shipped.log")
    [ "$n" = "${ROWS[$key]}" ] || fail "$f: $n runs, expected ${ROWS[$key]}"
    [ -z "$(ls -A "$TMP/nodata")" ] || fail "$f: the dry run wrote $(ls -A "$TMP/nodata")"
    nfiles=$((nfiles + 1))
done
[ "$nfiles" = "${#ROWS[@]}" ] || fail "$nfiles shipped files, expected ${#ROWS[@]}"
passed=$((passed + 1))

# Every paper-scale file asks for the paper's global batch (docs/math.md section 6: 4 = 2 ranks x 2
# images) with `global_batch: 4`: a sweep without the launcher (one rank, batch 2) warns, naming
# the remedy, and one under `--launcher "mpirun -np 2"` does not.
for f in "$MV_SRC"/experiments/paper/*.yaml; do
    grep -Eq "^global_batch: 4( |$)" "$f" || fail "$f: no global_batch: 4 (the paper's global batch)"
    (cd "$TMP/nodata" && "$MV_BIN" experiment run "$f" --dry-run) >"$TMP/gb.log" 2>&1 || fail "$f: $(cat "$TMP/gb.log")"
    grep -q "asks for global_batch 4, but every row trains with 1 rank (no --launcher) x data.batch_per_rank 2 = 2, not that batch: run the sweep with --launcher \"mpirun -np 2\"" "$TMP/gb.log" ||
        fail "$f: --dry-run on one rank does not warn: $(head -3 "$TMP/gb.log")"
    (cd "$TMP/nodata" && "$MV_BIN" experiment run "$f" --dry-run --launcher "mpirun -np 2") >"$TMP/gb.log" 2>&1 || fail "$f: $(cat "$TMP/gb.log")"
    ! grep -q "asks for global_batch" "$TMP/gb.log" || fail "$f: warns on 2 ranks: $(head -3 "$TMP/gb.log")"
done
passed=$((passed + 1))

# Table 2 scores severity 5 (the protocol of the peers it prints, docs/experiments.md).
for f in paper/table2_cityscapes_c cpu/table2_corruptions; do
    y="$MV_SRC/experiments/$f.yaml"
    grep -Eq "^severities: \[5\]( |$)" "$y" || fail "$f: Table 2 is scored at severity 5: $(grep severities "$y")"
done
passed=$((passed + 1))

# 2. What every row of every shipped file trains is what the paper's table row varies (docs/math.md
#    sections 5-7): each row's configuration as `maskvim config FILE --row ROW` resolves it is
#    compared key by key with the paper's setting written out below (the authors' recipe for
#    every paper-scale row, MaskViM's defaults for every key a row does not vary, the varied
#    keys themselves, the authors' optim.rules, the training dataset and the evaluated ones:
#    the source first, then exactly the table's targets).
# 3. The paper's numbers that `maskvim report FILE` prints are docs/math.md's, cell by cell, and
#    each column's domain is the one standing for the paper's column label (C cityscapes/clear,
#    B bdd100k/dusk, M mapillary/fog, G gtav/rain, S synthia/painted). The report is made from one
#    faked finished run per file (and a second seed's run where the file has `seeds:`, which is
#    printed beside its row's paper numbers too); every other row is listed as not run, with its
#    paper numbers.
#    Its source column is headed "<domain> (source)" once, also where the file labels it `source`.
# 4. The other methods' published rows (`peers:`) of Tables 2-5 are docs/math.md section 7.1's, every
#    one, by name and number, in report.json's "peers" (and in no other file's); they are neither
#    rows nor runs (--dry-run lists none of them). The mean column stands where the paper prints
#    Avg: first in Table 2 (after our source column), last elsewhere.
PY="${MV_PYTHON:-python3}"
"$PY" - "$MV_BIN" "$MV_SRC" "$TMP" <<'PY'
import json, os, re, subprocess, sys
BIN, SRC, TMP = sys.argv[1:4]
errors = []
def err(msg): errors.append(msg)

def run(*args):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, cwd=os.path.join(TMP, "nodata"))
    if p.returncode: raise SystemExit("FAIL: maskvim %s: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout

def flat(text):
    """`maskvim config` output as {section.key: value}, data.train / data.val as lists of names."""
    out, sec, key = {}, None, None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"): continue
        m = re.match(r"^(\w+):\s*$", line)
        if m: sec = m.group(1); continue
        m = re.match(r"^  (\w+):\s*(.*)$", line)
        if m:
            key = m.group(1)
            if m.group(2): out["%s.%s" % (sec, key)] = m.group(2).strip('"')
            else: out["%s.%s" % (sec, key)] = []
            continue
        m = re.match(r'^    - \{name: "([^"]*)"', line) or re.match(r"^    - (\{match: .*\})$", line)
        if m and isinstance(out.get("%s.%s" % (sec, key)), list): out["%s.%s" % (sec, key)].append(m.group(1))
    return out

# ---- docs/math.md section 6: the authors' recipe, for every paper-scale row
RECIPE = {"model.preset": "maskvim-t", "model.crop": "[512, 1024]", "model.dims": "[96, 192, 384, 768]",
          "model.depths": "[2, 2, 9, 2]", "model.drop_path": "0.3", "model.decoder_drop_path": "0.1",
          "model.aux_weight": "0.4", "data.batch_per_rank": "2", "data.scale": "[2048, 1024]",
          "data.ratio_range": "[0.5, 2]", "data.cat_max_ratio": "0.75", "data.flip_prob": "0.5",
          "data.photometric": "true", "data.test_mode": "whole", "optim.lr": "6.0e-05",
          "optim.betas": "[0.9, 0.999]", "optim.eps": "1.0e-08", "optim.weight_decay": "0.01",
          "schedule.warmup_iters": "1500", "schedule.warmup_start": "1.0e-06", "schedule.max_iters": "20000",
          "schedule.power": "1", "schedule.eta_min": "0", "run.init_weights": "pretrained/vmamba_tiny_imagenet.h5"}
# ---- docs/math.md sections 3 and 5: MaskViM's own settings, kept by every row that does not vary them
MASKVIM = {"model.head": "uper", "model.context": "ppm", "model.decoder_depths": "[1, 1, 1]",
           "mask.encoder_stages": "[true, true, true]", "mask.decoder": "true", "mask.lambda": "0.5",
           "mask.alpha1": "1", "mask.alpha2": "1", "mask.tau": "1", "mask.gamma": "4", "mask.noise": "true"}
# ---- what each table row varies (Tables 6-8, Figure 5; docs/math.md section 7)
ROWS = {
    "table6": {"vmamba_linear": {"model.head": "linear", "mask.encoder_stages": "[false, false, false]", "mask.decoder": "false"},
               "mask_all_stages": {"model.head": "linear", "mask.encoder_stages": "[true, true, true, true]", "mask.decoder": "false"},
               "mask_stages_1-3": {"model.head": "linear", "mask.decoder": "false"},
               "maskvim": {}, "mask_d_no_mask": {"mask.decoder": "false"}, "no_multiscale": {"model.context": "vss"}},
    "table7": {"lambda_0.9-0.7-0.5": {"mask.lambda": "[0.9, 0.7, 0.5]"}, "lambda_0.8-0.6-0.4": {"mask.lambda": "[0.8, 0.6, 0.4]"},
               "lambda_0.5-0.7-0.9": {"mask.lambda": "[0.5, 0.7, 0.9]"}, "lambda_0.4-0.6-0.8": {"mask.lambda": "[0.4, 0.6, 0.8]"},
               "lambda_0.5-0.5-0.5": {"mask.lambda": "[0.5, 0.5, 0.5]"},
               "depths_2-2-2": {"model.decoder_depths": "[2, 2, 2]"}, "depths_1-2-2": {"model.decoder_depths": "[1, 2, 2]"},
               "depths_1-1-2": {"model.decoder_depths": "[1, 1, 2]"},
               "alpha_20-10": {"mask.alpha1": "20", "mask.alpha2": "10"}, "alpha_10-5": {"mask.alpha1": "10", "mask.alpha2": "5"},
               "alpha_5-1": {"mask.alpha1": "5", "mask.alpha2": "1"}, "maskvim": {}},
    "table8": {"ce": {"mask.alpha1": "0", "mask.alpha2": "0"}, "ce+ratio": {"mask.alpha2": "0"},
               "ce+position": {"mask.alpha1": "0"}, "all": {}},
    "figure5": {"lambda_0.%d" % i: {"mask.lambda": "0.%d" % i} for i in range(1, 10)},
    "table2": {"maskvim": {}}, "table3": {"maskvim": {}}, "table4": {"maskvim": {}}, "table5": {"maskvim": {}},
}
# ---- the paper's datasets (docs/math.md section 7) and the synthetic domain standing in for each
PAPER_DOMAIN = {"C": "cityscapes", "B": "bdd100k", "M": "mapillary", "G": "gtav", "S": "synthia"}
CPU_DOMAIN = {"C": "clear", "B": "dusk", "M": "fog", "G": "rain", "S": "painted"}
# source, then the targets in the paper's column order
SPLITS = {"table2": ("C", ""), "table3": ("C", "BMGS"), "table4": ("M", "GSCB"), "table5": ("G", "CBMS"),
          "table6": ("C", "BMGS"), "table7": ("C", "BMGS"), "table8": ("C", "BMGS"), "figure5": ("C", "BMGS")}
CORR = ["Motion", "Defocus", "Glass", "Gauss-blur", "Gauss-noise", "Impulse", "Shot", "Speckle",
        "Bright", "Contrast", "Saturate", "JPEG", "Snow", "Spatter", "Fog", "Frost"]
CORR_NAME = ["motion_blur", "defocus_blur", "glass_blur", "gaussian_blur", "gaussian_noise", "impulse_noise",
             "shot_noise", "speckle_noise", "brightness", "contrast", "saturate", "jpeg_compression", "snow",
             "spatter", "fog", "frost"]
# ---- the paper's numbers (docs/math.md sections 7 and 7.1), per row, in the table's column order + Avg
PAPER = {
    "table2": {"maskvim": [53.5, 52.4, 42.9, 44.6, 14.9, 16.5, 19.0, 53.0, 75.0, 63.4, 71.8, 42.2,
                           30.4, 56.6, 65.4, 30.6, 45.8]},
    "table3": {"maskvim": [56.4, 66.6, 54.3, 34.6, 53.0]},
    "table4": {"maskvim": [60.8, 38.8, 73.1, 62.0, 58.7]},
    "table5": {"maskvim": [43.3, 42.9, 50.9, 35.3, 43.1]},
    "table6": {"vmamba_linear": [50.9, 61.3, 47.2, 27.4, 46.7], "mask_all_stages": [49.6, 59.5, 45.8, 25.2, 45.1],
               "mask_stages_1-3": [51.7, 62.9, 48.6, 29.1, 48.1], "maskvim": [56.4, 66.6, 54.3, 34.6, 53.0],
               "mask_d_no_mask": [53.7, 65.1, 50.7, 32.4, 50.5], "no_multiscale": [52.6, 63.7, 49.8, 30.5, 49.2]},
    "table7": {"lambda_0.9-0.7-0.5": [54.7, 64.1, 48.9, 31.6, 49.8], "lambda_0.8-0.6-0.4": [52.3, 65.4, 46.5, 27.6, 48.0],
               "lambda_0.5-0.7-0.9": [48.2, 57.3, 44.7, 23.0, 43.3], "lambda_0.4-0.6-0.8": [47.9, 56.8, 44.5, 24.1, 43.3],
               "lambda_0.5-0.5-0.5": [48.3, 58.1, 45.4, 25.6, 44.4], "depths_2-2-2": [56.1, 65.9, 51.8, 34.2, 52.0],
               "depths_1-2-2": [56.5, 66.9, 51.7, 34.1, 52.3], "depths_1-1-2": [56.3, 66.3, 51.8, 34.3, 52.2],
               "alpha_20-10": [53.8, 63.3, 49.7, 31.5, 49.6], "alpha_10-5": [55.1, 65.7, 51.3, 33.7, 51.4],
               "alpha_5-1": [55.5, 66.9, 51.7, 34.1, 52.1], "maskvim": [56.4, 66.6, 54.3, 34.6, 53.0]},
    "table8": {"ce": [40.8, 50.7, 36.7, 19.1, 36.8], "ce+ratio": [49.1, 58.6, 45.3, 29.2, 45.6],
               "ce+position": [48.6, 59.1, 44.5, 28.4, 45.2], "all": [56.4, 66.6, 54.3, 34.6, 53.0]},
    "figure5": {},   # a plot only: no cell has a number
}

# ---- docs/math.md section 7.1: the published rows of the other methods, in docs/math.md's column order
# (Table 2: Avg first, then the 16 corruptions; Tables 3-5: the four targets, then Avg); None: "-"
_ = None
PEERS = {
    "table2": {"Mask2former-T": [41.6, 51.5, 49.4, 38.2, 46.2, 9.6, 9.8, 13.5, 44.4, 74.2, 60.0, 70.0, 23.3, 23.7, 59.4, 65.4, 27.3],
               "HGFormer-T": [43.9, 52.9, 53.9, 39.0, 49.5, 12.1, 12.3, 18.2, 46.3, 75.0, 60.0, 71.2, 27.2, 29.4, 60.6, 65.0, 29.1]},
    "table3": {"IBN R50": [48.6, 57.0, 45.1, 26.1, 44.2], "SW R50": [48.5, 55.8, 44.9, 26.1, 43.8],
               "DRPC R50": [49.9, 56.3, 45.6, 26.6, 44.6], "RobustNet R50": [50.7, 58.6, 45.0, 26.2, 45.1],
               "GTR R50": [50.8, 57.2, 45.8, 26.5, 45.0], "WildNet R50": [50.9, 58.8, 47.0, 28.0, 46.2],
               "ISW R50": [50.7, 58.6, 45.0, 26.2, 45.1], "SiamDoGe R50": [51.5, 59.0, 45.1, 26.7, 45.6],
               "DIRL R50": [51.8, _, 46.5, 26.5, _], "SAN-SAW R50": [53.0, 59.8, 47.3, 28.3, 47.1],
               "BlindNet R50": [51.8, 60.2, 48.0, 28.5, 47.1], "Mask2former R50": [46.8, 61.6, 48.0, 31.2, 46.9],
               "HGFormer R50": [51.5, 61.6, 50.4, 30.1, 48.4], "Mask2former Swin-T": [51.3, 65.3, 50.6, 34.0, 50.3],
               "HGFormer Swin-T": [53.4, 66.9, 51.3, 33.6, 51.3]},
    "table4": {"IBN": [30.7, 27.0, 42.8, 31.0, 32.9], "SW": [28.5, 27.4, 40.7, 30.5, 31.8],
               "DRPC": [33.0, 29.6, 46.2, 32.9, 35.4], "GTR": [32.9, 30.3, 45.8, 32.6, 35.4],
               "ISW": [33.4, 30.2, 46.4, 32.6, 35.6], "SAN-SAW": [34.0, 31.6, 48.7, 34.6, 37.2],
               "Mask2former R50": [55.8, 37.7, 65.6, 56.4, 53.9], "HGFormer R50": [59.2, 37.4, 67.1, 59.1, 55.7],
               "Mask2former Swin-T": [57.8, 40.1, 68.2, 59.1, 56.3], "HGFormer Swin-T": [60.1, 39.5, 69.3, 61.0, 57.5]},
    "table5": {"IBN": [33.9, 32.3, 37.8, 27.9, 33.0], "RobustNet": [37.3, 35.2, 40.3, 28.3, 35.3],
               "WildNet": [44.6, 38.4, 46.1, 31.3, 40.1], "SiamDoGe": [43.0, 37.5, 40.6, 28.3, 37.4],
               "DIRL": [41.0, 39.2, 41.6, _, _], "SAN-SAW": [39.8, 37.3, 41.9, 30.8, 37.5],
               "BlindNet": [45.7, 41.3, 47.1, 31.4, 41.4], "SHADE": [44.7, 39.3, 43.3, _, _],
               "HRDA MiT-B2": [46.9, 42.8, 47.2, _, _], "DAFormer MiT-B2": [46.3, 41.5, 46.8, _, _]},
}

def base_row(name):
    return re.sub(r"_seed\d+$", "", name)   # the twins' hand-written seed rows of Tables 3-5

def byname_names(rep):
    return [x["name"] for x in rep["runs"]] + [x["name"] for x in rep.get("rows", [])]

nfiles = 0
for scale in ("paper", "cpu"):
    folder = os.path.join(SRC, "experiments", scale)
    for fn in sorted(os.listdir(folder)):
        if not fn.endswith(".yaml"): continue
        path = os.path.join(folder, fn)
        table = fn.split("_")[0]
        where = "%s/%s" % (scale, fn)
        if table not in ROWS: err("%s: no paper table %s known to this test" % (where, table)); continue
        nfiles += 1
        dom = PAPER_DOMAIN if scale == "paper" else CPU_DOMAIN
        src, tgts = SPLITS[table]
        dry = run("experiment", "run", path, "--dry-run")
        runs = [l.split()[0] for l in dry.splitlines() if l and not l.startswith((" ", "maskvim experiment:"))]
        if "train alike" in dry: err("%s: %s" % (where, dry.splitlines()[0]))
        rows = []
        for r in runs:
            row = base_row(r.split("@")[0])
            if row not in rows: rows.append(row)
        if sorted(rows) != sorted(ROWS[table]):
            err("%s: rows %s, the paper's table has %s" % (where, rows, sorted(ROWS[table])))
        for r in runs:
            cfg = flat(run("config", path, "--row", r))
            want = dict(MASKVIM)
            if scale == "paper": want.update(RECIPE)
            else: want["model.preset"] = "maskvim-nano"
            want.update(ROWS[table].get(base_row(r.split("@")[0]), {}))
            m = re.search(r"(?:_seed|@)(\d+)$", r)
            want["run.seed"] = m.group(1) if m else "0"
            want["run.select_domain"] = dom[src]
            # docs/math.md section 6: no weight decay on norms, the mask logits learn 10000x faster
            rules = ['{match: "norm", lr_mult: 1, decay_mult: 0}', '{match: "token_mask", lr_mult: 10000, decay_mult: 1}']
            if cfg.get("optim.rules") != rules:
                err("%s row %s: optim.rules are %s, the authors' %s" % (where, r, cfg.get("optim.rules"), rules))
            for k, v in want.items():
                if cfg.get(k) != v: err("%s row %s: %s is %r, the paper's row has %r" % (where, r, k, cfg.get(k), v))
            if cfg.get("data.train") != [dom[src]]:
                err("%s row %s: trains on %s, the paper's table on %s (%s)" % (where, r, cfg.get("data.train"), src, dom[src]))
            # the source first (it selects checkpoints), then exactly the targets: a domain that is
            # no target would be evaluated for nothing (it is in neither the sweep's nor the
            # report's mean, docs/experiments.md)
            val = [dom[src]] + [dom[t] for t in tgts]
            got_val = cfg.get("data.val") or []
            if got_val[:1] != val[:1] or sorted(got_val[1:]) != sorted(val[1:]):
                err("%s row %s: evaluates %s, the paper's table %s" % (where, r, cfg.get("data.val"), val))
        # the report made from one faked finished run (the first), every other row not run
        rdir = os.path.join(TMP, "runs_%s_%s" % (scale, table))
        fake = [runs[0]] + [r for r in runs if "@" in r][:1]   # and a second seed's run, with `seeds:`
        for r in fake:
            os.makedirs(os.path.join(rdir, r))
            run("config", path, "--row", r, "--out", os.path.join(rdir, r, "config.yaml"))
            with open(os.path.join(rdir, r, "status.json"), "w") as f:
                json.dump({"row": r, "state": "finished", "iter": 1, "final": {dom[src]: 10.0}}, f)
        out = os.path.join(TMP, "report_%s_%s" % (scale, table))
        run("report", path, "--runs", rdir, "--out", out)
        rep = json.load(open(os.path.join(out, "report.json")))
        cols = rep["columns"]
        if cols[0]["role"] != "source" or cols[0]["domain"] != dom[src]:
            err("%s: the report's first column is %s, the source is %s" % (where, cols[0], dom[src]))
        heads = re.findall(r"^\| run \|(.*)$", open(os.path.join(out, "report.md")).read(), re.M)
        if not heads or heads[0].split("|")[0].strip() != "%s (source)" % dom[src]:
            err("%s: report.md heads the source column %r, not '%s (source)'" % (where, heads[0].split("|")[0].strip() if heads else None, dom[src]))
        labels = list(tgts) if table != "table2" else CORR
        domains = [dom[t] for t in tgts] if table != "table2" else CORR_NAME
        targets = [c for c in cols if c["role"] == "target"]
        got = [(c["domain"], c["label"]) for c in targets]
        wantc = [(d, "%s (%s)" % (d, l)) for d, l in zip(domains, labels)]
        if got != wantc: err("%s: the report's columns are %s, the paper's %s" % (where, got, wantc))
        mean = [c for c in cols if c["role"] == "mean"]
        if not mean or mean[0]["label"] != "Avg": err("%s: the mean column is %s, the paper's is Avg" % (where, mean))
        # where the paper prints Avg: first in the paper file of Table 2 (after our source column)
        mean_at = 1 if (scale, table) == ("paper", "table2") else len(cols) - 1
        if [c["role"] for c in cols].index("mean") != mean_at:
            err("%s: the mean column is column %d of %s, expected %d" % (where, [c["role"] for c in cols].index("mean"), [c["label"] for c in cols], mean_at))
        # the other methods' published rows, in docs/math.md's column order, and nowhere among the rows
        spec_cols = (["mean"] + domains) if table == "table2" else (domains + ["mean"])
        want_peers = PEERS.get(table, {}) if scale == "paper" else {}
        got_peers = {x["name"]: [x["cells"][d]["paper"] for d in spec_cols] for x in rep.get("peers", [])}
        if [x["name"] for x in rep.get("peers", [])] != list(want_peers):
            err("%s: the report's peers are %s, docs/math.md's %s" % (where, [x["name"] for x in rep.get("peers", [])], list(want_peers)))
        for name, want in want_peers.items():
            if got_peers.get(name) != want: err("%s peer %s: the report prints %s, docs/math.md gives %s" % (where, name, got_peers.get(name), want))
            if name in dry or name in byname_names(rep): err("%s: peer %s is listed as a row or run" % (where, name))
        if want_peers and "## Published results of other methods (not run here)" not in open(os.path.join(out, "report.md")).read():
            err("%s: report.md has no block of published peers" % where)
        byname = {x["name"]: x for x in rep["runs"]}
        # every row is listed (not run but the first), the second seed's run too
        names = [r for r in runs if "@" not in r] + fake[1:]
        for name in names:
            row = base_row(name.split("@")[0])
            if name not in byname: err("%s: the report does not list %s" % (where, name)); continue
            cells = byname[name]["cells"]
            gotp = [cells[d]["paper"] for d in domains] + [cells["mean"]["paper"]]
            wantp = PAPER[table].get(row, [None] * (len(domains) + 1))
            if gotp != wantp: err("%s row %s: the report prints the paper's numbers %s, docs/math.md gives %s" % (where, name, gotp, wantp))
        for x in rep.get("rows", []):   # with `seeds:`, the rows of means and spreads
            gotp = [x["cells"][d]["paper"] for d in domains] + [x["cells"]["mean"]["paper"]]
            wantp = PAPER[table].get(x["name"], [None] * (len(domains) + 1))
            if gotp != wantp: err("%s row %s (seeds): the report prints the paper's numbers %s, docs/math.md gives %s" % (where, x["name"], gotp, wantp))
if nfiles != 16: err("%d shipped files checked, expected 16" % nfiles)
for e in errors: print("FAIL: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
passed=$((passed + 1))

rm -rf "$TMP"
echo "$passed passed, 0 failed"
