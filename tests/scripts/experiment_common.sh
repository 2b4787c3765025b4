# Sourced by the experiment tests: a scratch folder, and the `set:` block of a tiny experiment
# (maskvim-nano, 64x64 crops, 16 synthetic training images of 64x128, 2 validation images,
# a checkpoint every iteration).
: "${MV_BIN:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
fail() { echo "FAIL: $*" >&2; exit 1; }

# exp_setup NAME: TMP becomes a fresh $MV_TEST_TMP/NAME.
exp_setup() {
    mkdir -p "$MV_TEST_TMP"
    TMP="$MV_TEST_TMP/$1"
    rm -rf "$TMP"
    mkdir -p "$TMP"
}

# tiny_sets MAX_ITERS KEEP_CKPTS "VAL SOURCES" [CKPT_EVERY]: the experiment file's `set:` list
# (a checkpoint every CKPT_EVERY iterations, default 1; 0: only the final one).
tiny_sets() {
    cat <<YAML
set:
  - model.crop=64,64
  - data.synthetic.size=64,128
  - data.scale=128,64
  - data.synthetic.train_count=16
  - data.synthetic.val_count=2
  - data.workers=1
  - schedule.warmup_iters=1
  - schedule.max_iters=$1
  - run.log_every=1
  - run.eval_every=0
  - run.ckpt_every=${4:-1}
  - run.keep_ckpts=$2
  - "data.val=[$3]"
YAML
}
