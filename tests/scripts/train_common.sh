# Sourced by the training tests: a tiny but complete run (maskvim-nano, synthetic data written
# once into a shared cache, every random draw switched on: Gumbel noise, Dropout2d, drop path).
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
export MV_SYNTH_CACHE="$MV_TEST_TMP/synth_cache"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
TRAIN_SETS=(--set model.crop=64,64 --set data.synthetic.size=64,128 --set data.scale=128,64
            --set data.synthetic.train_count=16 --set data.synthetic.val_count=2 --set data.workers=1
            --set schedule.warmup_iters=2 --set schedule.max_iters=6 --set optim.lr=3e-4
            --set run.log_every=1 --set run.eval_every=0 --set run.ckpt_every=2 --set run.keep_ckpts=0
            --set data.val=[synthetic:clear] --quiet)
compare() { "$MV_PYTHON" "$MV_SRC/tests/scripts/compare_weights.py" "$@"; }
# same_training DIR_A DIR_B: two finished TRAIN_SETS runs reached the same parameters: their
# iter_6 checkpoints within the equivalence tolerances (relative L2 below 1e-5, no tensor off by
# more than 10% of how far it moved from the shared initialisation, both as L2 norms; made
# here); prints both last logged losses. Status 1 when they differ.
same_training() {
    local init
    init="$(dirname "$1")/init.h5"
    "$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 0 --init-out "$init" >/dev/null 2>&1
    compare "$1/iter_6.h5" "$2/iter_6.h5" --init "$init" --rel-l2 1e-5 --drift 0.1 || return 1
    local la lb
    la=$(grep -o '"loss_total": [0-9.e+-]*' "$1/metrics.jsonl" | tail -1)
    lb=$(grep -o '"loss_total": [0-9.e+-]*' "$2/metrics.jsonl" | tail -1)
    echo "last logged loss: $(basename "$1") ${la#*: }, $(basename "$2") ${lb#*: }"
}
