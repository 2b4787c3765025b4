#!/usr/bin/env bash
# eval and predict without a configuration FILE take the configuration saved in the training
# checkpoint (--set on top) and say so on stderr: the same JSON and the same prediction files as
# with the run's config.yaml, for a run whose model.crop, data.scale and data.val are not the
# built-in default's; a relative data.val folder of the run is taken from the current folder
# (from elsewhere: an error that says so); a plain weights file keeps the built-in default and
# says so. Under mpirun, predict divides the images among the ranks: each output written once,
# the same files as one process writes.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
TMP="$MV_TEST_TMP/eval_saved_config"; rm -rf "$TMP"; mkdir -p "$TMP/scratch" "$TMP/imgs"
fail() { echo "FAIL: $*"; exit 1; }
cd "$TMP"
# A real split folder, given to training by a relative path.
"$MV_BIN" data synth --out synth --domains fog --count 2 --size 64x128 --split val >/dev/null 2>&1
"$MV_BIN" train "${TRAIN_SETS[@]}" --set schedule.max_iters=2 --set schedule.warmup_iters=1 \
    --set data.val=[synth/fog/val] --set run.select_domain=fog --set run.work_dir=runs/r >train.log 2>&1 ||
    fail "training: $(tail -3 train.log)"
# 1. eval: from the checkpoint's configuration, identical to eval with the run's config.yaml.
"$MV_BIN" eval --checkpoint runs/r --json a.json >a.log 2>a.err || fail "eval without FILE: $(tail -3 a.err)"
grep -q "configuration from the checkpoint (runs/r/iter_2.h5)" a.err || fail "no note on the configuration: $(cat a.err)"
"$MV_BIN" eval runs/r/config.yaml --checkpoint runs/r --json b.json >b.log 2>b.err || fail "eval with FILE: $(tail -3 b.err)"
! grep -q "configuration from the checkpoint" b.err || fail "the note appears with FILE: $(cat b.err)"
cmp -s a.json b.json || fail "eval without FILE differs from eval with the run's config.yaml: $(cat a.json b.json)"
grep -q '"domain": "fog"' a.json || fail "not the run's data.val: $(cat a.json)"
# --set applies on top of the saved configuration; a data.val without the run's selection domain
# (fog) is taken (evaluation selects nothing).
"$MV_BIN" eval --checkpoint runs/r --set data.val=[synthetic:clear] --set data.synthetic.val_count=1 \
    --json c.json >/dev/null 2>c.err || fail "eval with --set: $(tail -3 c.err)"
grep -q "with --set on top" c.err || fail "the note does not mention --set: $(cat c.err)"
grep -q '"domain": "clear"' c.json || fail "--set data.val not applied: $(cat c.json)"
# A --set that the configuration check refuses is named as the --set, not as the checkpoint's text.
"$MV_BIN" eval --checkpoint runs/r --set data.test_mode=slide --set data.test_crop=32,32 --set data.test_stride=50,50 \
    >/dev/null 2>d.err && fail "a stride beyond the window accepted"
grep -q "^maskvim eval: --set on the configuration saved in runs/r/iter_2.h5: data.test_stride: vertical step 50" d.err ||
    fail "the refusal of a --set: $(cat d.err)"
# Two configuration files: refused (the first was ignored).
"$MV_BIN" eval nowhere.yaml runs/r/config.yaml --checkpoint runs/r >/dev/null 2>e.err && fail "two FILEs accepted"
grep -q "more than one configuration file ('nowhere.yaml', 'runs/r/config.yaml')" e.err || fail "two FILEs: $(cat e.err)"
# From another folder the run's relative data.val is not there: refused, saying why; nothing written.
(cd scratch && env -u MV_SYNTH_CACHE "$MV_BIN" eval --checkpoint ../runs/r >s.log 2>s.err) && fail "a missing relative data.val accepted"
grep -q "relative to the folder training ran in" scratch/s.err || fail "the error does not explain: $(cat scratch/s.err)"
[ -z "$(ls scratch | grep -v '^s\.')" ] || fail "eval from another folder wrote: $(ls scratch)"
# A plain weights file has no saved configuration: the built-in default, said on stderr.
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 0 --init-out plain.h5 >/dev/null 2>&1
"$MV_BIN" eval --checkpoint plain.h5 --set model.crop=64,64 --set data.scale=128,64 --set data.val=[synth/fog/val] \
    >/dev/null 2>p.err || fail "eval of a plain weights file: $(tail -3 p.err)"
grep -q "the built-in default" p.err || fail "no note on the default configuration: $(cat p.err)"
# 2. predict: without FILE the same files as with the run's config.yaml.
for d in rain fog clear dusk painted; do
  "$MV_BIN" data synth --preview "imgs/$d.png" --domains "$d" --size 64x128 --preview-count 1 >/dev/null 2>&1
done
"$MV_BIN" predict --checkpoint runs/r --input imgs --out p0 --format color,trainid >p0.log 2>p0.err \
    || fail "predict without FILE: $(tail -3 p0.err)"
grep -q "configuration from the checkpoint" p0.err || fail "no note on the configuration: $(cat p0.err)"
"$MV_BIN" predict runs/r/config.yaml --checkpoint runs/r --input imgs --out p1 --format color,trainid >/dev/null 2>&1 \
    || fail "predict with FILE"
diff -r p0 p1 >/dev/null || fail "predict without FILE differs from predict with the run's config.yaml"
# --masks between images leaves them inputs (the next image was read as a configuration file).
"$MV_BIN" predict --checkpoint runs/r --input imgs/fog.png --masks imgs/rain.png --out pm >/dev/null 2>pm.err ||
    fail "predict with --masks among the inputs: $(tail -3 pm.err)"
[ -f pm/fog_pred.png ] && [ -f pm/rain_pred.png ] || fail "--masks among the inputs: $(ls pm)"
[ "$(ls p0 | wc -l)" -eq 10 ] || fail "expected 10 prediction files, got $(ls p0)"
# 3. predict under two ranks: each image predicted once, the files of one process.
if command -v mpirun >/dev/null 2>&1 && grep -q "Built with MPI: yes" <<<"$("$MV_BIN" bench-allreduce --help)"; then
  source "$MV_SRC/tests/scripts/mpi_common.sh"
  mpi_sanitizer_env "$TMP"   # Open MPI's own allocations kept until exit are not ours to report
  OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe "${MPI_ENV[@]}" -x OMP_NUM_THREADS -x MV_SYNTH_CACHE "$MV_BIN" predict \
      --checkpoint runs/r --input imgs --out p2 --format color,trainid >p2.log 2>p2.err || fail "predict, 2 ranks: $(tail -5 p2.err)"
  [ "$(grep -c '^\[' p2.log)" -eq 5 ] || fail "expected 5 progress lines (one per image), got: $(cat p2.log)"
  for i in 1 2 3 4 5; do
    [ "$(grep -c "^\[$i/5\]" p2.log)" -eq 1 ] || fail "image $i predicted $(grep -c "^\[$i/5\]" p2.log) times: $(cat p2.log)"
  done
  diff -r p0 p2 >/dev/null || fail "2-rank predictions differ from 1-rank ones"
  echo "3 passed, 0 failed"
else
  echo "2 passed, 0 failed (2-rank predict skipped: no MPI)"
fi
