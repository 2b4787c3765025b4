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
