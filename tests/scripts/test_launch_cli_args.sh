#!/usr/bin/env bash
# The launcher's arguments: every option that `maskvim <cmd> --help` lists for experiment run,
# report, config and bench is one the command accepts (none answers "unknown option"), and
# empty values are refused instead of meaning "the file system's root" (`--out ""` used to
# put the rows of a sweep at /ROW); bench refuses sizes it cannot allocate instead of aborting;
# `maskvim --version` names the version, the commit and the libraries; `help COMMAND`; step's
# and bench's --preset.
set -euo pipefail
: "${MV_BIN:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
fail() { echo "FAIL: $*" >&2; exit 1; }
TMP="$MV_TEST_TMP/launch_cli_args"
rm -rf "$TMP"
mkdir -p "$TMP"
cd "$TMP"

# Options listed by --help: each given with a harmless value must not be unknown. Each call
# ends early (a missing file, a bad value), so nothing runs.
check_help() {   # check_help "CMD WORDS" EXTRA_ARGS...
    local cmd=$1; shift
    local help opts
    help=$($MV_BIN $cmd --help) || fail "$cmd --help exited non-zero"
    # the option table (lines starting with the option) and the usage lines ([--opt ...])
    opts=$(printf '%s\n' "$help" | grep -oE -- '^ {1,4}--[a-z][a-z-]*|\[--[a-z][a-z-]*' | tr -d ' [' | sort -u)
    [ -n "$opts" ] || fail "$cmd --help lists no option"
    for o in $opts; do
        [ "$o" = "--help" ] && continue
        out=$($MV_BIN $cmd "$o" x=1 "$@" 2>&1 || true)
        if printf '%s' "$out" | grep -qi "unknown option"; then fail "$cmd --help lists $o, which is unknown: $out"; fi
    done
}
check_help "experiment run" --jobs 0
check_help "report" --title
check_help "config" --out "$TMP/cfg.yaml"
check_help "bench" --iters 0

# Empty values.
cat >"$TMP/e.yaml" <<YAML
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
rows: [{name: zz_launch_cli_args_row}]
YAML
set +e
$MV_BIN experiment run "$TMP/e.yaml" --out "" --dry-run >"$TMP/o1.log" 2>&1; rc=$?
set -e
[ "$rc" = 2 ] || fail "--out \"\": exit $rc: $(cat "$TMP/o1.log")"
grep -q -- "--out needs a value" "$TMP/o1.log" || fail "--out \"\": $(cat "$TMP/o1.log")"
[ ! -e /zz_launch_cli_args_row ] || fail "a row directory was made at the root"
set +e
$MV_BIN experiment run "$TMP/e.yaml" --only "" --dry-run >"$TMP/o2.log" 2>&1; rc=$?
set -e
[ "$rc" = 2 ] || fail "--only \"\": exit $rc: $(cat "$TMP/o2.log")"
# A forgotten value: the next option is not taken as the value (`--out --dry-run` used to run
# the whole sweep, for real, in a directory called --dry-run), and an unknown option is called
# unknown (it used to read "--bogus needs a value").
expect2() {   # expect2 MESSAGE ARGS...: exit status 2 and MESSAGE on stderr
    local want=$1; shift
    set +e
    $MV_BIN "$@" >"$TMP/o3.log" 2>&1; rc=$?
    set -e
    [ "$rc" = 2 ] && grep -q -- "$want" "$TMP/o3.log" || fail "$*: exit $rc, wanted '$want': $(cat "$TMP/o3.log")"
}
expect2 "--out needs a value" experiment run "$TMP/e.yaml" --out --dry-run
[ ! -e "$TMP/--dry-run" ] || fail "--out --dry-run made a directory called --dry-run"
expect2 "--only needs a value" experiment run "$TMP/e.yaml" --only --dry-run
expect2 "unknown option '--bogus'" experiment run "$TMP/e.yaml" --bogus
expect2 "unknown option '--bogus'" experiment run --bogus
expect2 "no experiment file given" experiment run --dry-run
expect2 "unknown option '--bogus'" report "$TMP" --bogus
expect2 "--out needs a value" report "$TMP" --out --title t
expect2 "--out DIR is required" report "$TMP"
# bench: sizes that cannot be allocated (or overflow an int) are refused with a message, not
# an abort; a negative warm-up is refused.
set +e
$MV_BIN bench --scan 1,1,100000,100000,4 --iters 1 >"$TMP/b1.log" 2>&1; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "too large" "$TMP/b1.log" || fail "bench --scan too large: exit $rc: $(cat "$TMP/b1.log")"
set +e
$MV_BIN bench --warmup -1 >"$TMP/b2.log" 2>&1; rc=$?
set -e
[ "$rc" = 2 ] || fail "bench --warmup -1: exit $rc: $(cat "$TMP/b2.log")"
# Numbers are whole numbers (atoi took '99999999x2' as a batch of 99999999, whose activation
# sizes overflowed an int, and 'abc' as 0); a batch the model cannot index is refused.
expect2 "--batch '99999999x2': expected an integer in \[1, 4096\]" bench --batch 99999999x2
expect2 "--iters '1e3': expected an integer" bench --iters 1e3
expect2 "--warmup 'abc': expected an integer" bench --warmup abc
expect2 "--size wants HxW with sides in \[32, 16384\], got '64x64junk'" bench --size 64x64junk
set +e
$MV_BIN bench --batch 4096 --size 16384x16384 >"$TMP/b3.log" 2>&1; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "batch 4096x3x16384x16384 is too large" "$TMP/b3.log" || fail "bench huge batch: exit $rc: $(cat "$TMP/b3.log")"
set +e
$MV_BIN data bench-loader --dir "$TMP/bl" --size 4294967360x64 >"$TMP/b4.log" 2>&1; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "'4294967360x64' is not HxW" "$TMP/b4.log" || fail "bench-loader --size overflow: exit $rc: $(cat "$TMP/b4.log")"
[ ! -e "$TMP/bl" ] || fail "bench-loader wrote a split for a refused size"
# A size the generator cannot render, and a --threads list with a bad or empty item, are
# refused before the split is written (it takes seconds at the default size).
for args in "--size 8x8" "--threads 0" "--threads 1," "--threads 1,,2" "--count 0" "--crop 0x4" "--batch 0"; do
    set +e
    # shellcheck disable=SC2086
    $MV_BIN data bench-loader --dir "$TMP/bl" --count 1 $args >"$TMP/b5.log" 2>&1; rc=$?
    set -e
    [ "$rc" = 2 ] && grep -q -- "${args%% *}" "$TMP/b5.log" || fail "bench-loader $args: exit $rc, not 2: $(cat "$TMP/b5.log")"
    [ ! -e "$TMP/bl" ] || fail "bench-loader $args: the split was written before the refusal"
done
# A bad option value of data convert is a usage error (2), as everywhere.
for args in "--workers 0" "--samples-per-shard 0" "--limit 0"; do
    set +e
    # shellcheck disable=SC2086
    $MV_BIN data convert --dataset cityscapes --root "$TMP/none" --split val --out "$TMP/cv" $args >"$TMP/cv.log" 2>&1; rc=$?
    set -e
    [ "$rc" = 2 ] && grep -q -- "${args%% *}" "$TMP/cv.log" || fail "data convert $args: exit $rc, not 2: $(cat "$TMP/cv.log")"
done
# The data commands' numbers go through the same strict parser (sscanf's %d wrapped these to
# 64 and 1; strtoull read "-1" as 2^64-1).
expect2 "--size: '4294967360x64' is not HxW with sides in \[16, 8192\]" data synth --out "$TMP/sy" --count 1 --size 4294967360x64
[ ! -e "$TMP/sy" ] || fail "data synth wrote a split for a refused size"
expect2 "--seed: '-1' is not a non-negative integer" data synth --out "$TMP/sy" --count 1 --seed -1
expect2 "--severity '4294967297': severities are 1..5" data corrupt --in "$TMP/none" --out "$TMP/co" --severity 4294967297
expect2 "--severity '2-x': expected N, A-B, all or a comma-separated list of those" data corrupt --in "$TMP/none" --out "$TMP/co" --severity 2-x
expect2 "--seed: '+-3' is not a non-negative integer" data corrupt --in "$TMP/none" --out "$TMP/co" --seed +-3
expect2 "--count: '0' is not an integer in \[1, 1000000000\]" data synth --out "$TMP/sy" --count 0
expect2 "--threads: '0x10' is not an integer in \[1, 256\]" data corrupt --in "$TMP/none" --out "$TMP/co" --threads 0x10
expect2 "--resume '': give auto or the path of a checkpoint" train --resume ""

# Outputs written atomically (a temporary renamed over the target) refuse a target that is not
# a file: an existing pipe stays a pipe (as root, `--out /dev/null` used to become a regular
# file), and no temporary is left beside a folder.
mkfifo "$TMP/pipe" && mkdir -p "$TMP/outdir"
for target in "$TMP/pipe" "$TMP/outdir" ""; do
    set +e
    $MV_BIN config --out "$target" >"$TMP/w1.log" 2>&1; rc=$?
    $MV_BIN step --preset maskvim-nano --init-out "$target" >"$TMP/w2.log" 2>&1; rc2=$?
    set -e
    [ "$rc" = 1 ] && grep -qE "is a pipe|is a folder|an empty path" "$TMP/w1.log" || fail "config --out '$target': exit $rc: $(cat "$TMP/w1.log")"
    [ "$rc2" = 1 ] && grep -qE "is a pipe|is a folder|an empty path" "$TMP/w2.log" || fail "step --init-out '$target': exit $rc2: $(cat "$TMP/w2.log")"
done
[ -p "$TMP/pipe" ] || fail "a pipe given to --out was replaced"
ls "$TMP"/outdir.tmp* "$TMP"/pipe.tmp* >/dev/null 2>&1 && fail "temporaries left: $(ls "$TMP")"

# Mistyped commands, subcommands and options name the closest one the command knows (from its
# --help), on the message's one line; a word close to nothing gets no guess.
expect2 "maskvim: unknown command 'trian'; did you mean 'train'?" trian
expect2 "maskvim: unknown command 'xyz'$" xyz
expect2 "unknown subcommand 'convrt'; did you mean 'convert'?" data convrt
expect2 "unknown subcommand 'rn'; did you mean 'run'?" experiment rn
expect2 "maskvim train: unknown option '--resum'; did you mean '--resume'?" train --resum auto
# An option mistyped as the last argument is unknown, not one that needs a value.
expect2 "maskvim train: unknown option '--quite'; did you mean '--quiet'?" train --quite
expect2 "maskvim train: --set needs a value" train --set
# `--set KEY=VALUE` is the one form: `--set=KEY=VALUE` is refused by every command alike (config
# alone used to take it, while train, eval, step and bench called it unknown).
for cmd in config train eval step bench; do
    expect2 "maskvim $cmd: unknown option '--set=run.seed=7'" $cmd --set=run.seed=7 --checkpoint x
    expect2 "maskvim $cmd: unknown option '--set=run.seed=7'" $cmd --set=run.seed=7   # last, too
done
expect2 "unknown option '--dry-rn'; did you mean '--dry-run'?" experiment run "$TMP/e.yaml" --dry-rn
expect2 "maskvim config: unknown option '--ot'; did you mean '--out'?" config --ot x
expect2 "maskvim eval: unknown option '--checkpiont'; did you mean '--checkpoint'?" eval --checkpiont x
expect2 "maskvim report: unknown option '--titel'; did you mean '--title'?" report "$TMP" --titel t
set +e
$MV_BIN data convert --worker 2 >"$TMP/o4.log" 2>&1; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "convert: unknown option --worker; did you mean '--workers'?" "$TMP/o4.log" \
    || fail "data convert --worker: exit $rc: $(cat "$TMP/o4.log")"

# An experiment file given to `maskvim config` or `maskvim train` says what it is and which
# commands take it; `maskvim config FILE --row ROW` prints the row's configuration, which is
# the configuration `maskvim experiment run` resolves for it.
for cmd in config train; do
    set +e
    $MV_BIN $cmd "$TMP/e.yaml" >"$TMP/o5.log" 2>&1; rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$cmd on an experiment file: exit $rc: $(cat "$TMP/o5.log")"
    grep -q "$TMP/e.yaml: an experiment file (it has 'base:' at line 1), not a training configuration: \`maskvim experiment run $TMP/e.yaml\` trains its rows (with --dry-run: lists them" "$TMP/o5.log" \
        || fail "$cmd on an experiment file: $(cat "$TMP/o5.log")"
    [ "$(wc -l <"$TMP/o5.log")" = 1 ] || fail "$cmd on an experiment file: more than one line: $(cat "$TMP/o5.log")"
done
$MV_BIN config "$TMP/e.yaml" --row zz_launch_cli_args_row --set run.seed=7 >"$TMP/row.yaml" || fail "config --row"
grep -q 'work_dir: "runs/e/zz_launch_cli_args_row"' "$TMP/row.yaml" || fail "config --row: $(grep work_dir "$TMP/row.yaml")"
grep -q '^  seed: 7' "$TMP/row.yaml" || fail "config --row --set: $(grep seed "$TMP/row.yaml")"
$MV_BIN config "$MV_SRC/experiments/base/maskvim-nano_synthetic.yaml" --set run.work_dir=runs/e/zz_launch_cli_args_row \
    --set run.seed=7 >"$TMP/base.yaml" || fail "config of the base"
cmp -s "$TMP/row.yaml" "$TMP/base.yaml" || fail "config --row differs from the base with the row's overrides: $(diff "$TMP/row.yaml" "$TMP/base.yaml")"
# --set joins the row's resolution: a preset applies under the base's model keys (as in a file),
# and max_iters and warmup_iters lowered together validate once, whatever their order.
$MV_BIN config "$TMP/e.yaml" --row zz_launch_cli_args_row --set model.preset=maskvim-nano --set schedule.max_iters=100 \
    --set schedule.warmup_iters=50 >"$TMP/rowp.yaml" 2>"$TMP/rowp.log" || fail "config --row --set: $(cat "$TMP/rowp.log")"
$MV_BIN config "$MV_SRC/experiments/base/maskvim-nano_synthetic.yaml" --set run.work_dir=runs/e/zz_launch_cli_args_row \
    --set model.preset=maskvim-nano --set schedule.max_iters=100 --set schedule.warmup_iters=50 >"$TMP/basep.yaml" \
    || fail "config of the base with the preset"
cmp -s "$TMP/rowp.yaml" "$TMP/basep.yaml" || fail "config --row --set model.preset: $(diff "$TMP/rowp.yaml" "$TMP/basep.yaml")"
set +e
$MV_BIN config "$TMP/e.yaml" --row zz_launch_cli_args_rwo >"$TMP/o6.log" 2>&1; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "no row 'zz_launch_cli_args_rwo'; did you mean 'zz_launch_cli_args_row'?" "$TMP/o6.log" \
    || fail "config --row with an unknown row: exit $rc: $(cat "$TMP/o6.log")"
# --version: the first line names version and commit (the source tree's, when it is a git
# checkout); the OpenMP build of OpenBLAS, MPI and HDF5 are reported.
$MV_BIN --version >"$TMP/version.txt" || fail "--version exited non-zero"
head -1 "$TMP/version.txt" | grep -qE '^maskvim [0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-z.-]+\)$' \
    || fail "--version's first line: $(head -1 "$TMP/version.txt")"
if git -C "$MV_SRC" rev-parse --short=12 HEAD >"$TMP/head.txt" 2>/dev/null; then
    head -1 "$TMP/version.txt" | grep -q "$(cat "$TMP/head.txt")" || fail "--version does not name HEAD $(cat "$TMP/head.txt"): $(head -1 "$TMP/version.txt")"
fi
for want in "BLAS: .*OpenMP build" "MPI: " "HDF5: " "GPU: "; do
    grep -qE "^  $want" "$TMP/version.txt" || fail "--version lacks '$want': $(cat "$TMP/version.txt")"
done
$MV_BIN version | cmp -s - "$TMP/version.txt" || fail "'maskvim version' differs from --version"
# OpenBLAS kernels: on a CPU with AVX2 and FMA never a generic pre-AVX2 set (an OpenBLAS older
# than the CPU names it Prescott; maskvim restarts with the kernels the CPU runs), and a kernel
# set the user chose with OPENBLAS_CORETYPE is kept, with no note.
blas_line=$(env -u OPENBLAS_CORETYPE "$MV_BIN" --version | grep "^  BLAS:")
if grep -q " avx2 " /proc/cpuinfo && grep -q " fma " /proc/cpuinfo; then
    ! grep -qE " (Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Katmai|Northwood|Banias) " <<<"$blas_line" \
        || fail "generic OpenBLAS kernels on an AVX2 CPU: $blas_line"
fi
blas_line=$(OPENBLAS_CORETYPE=Prescott "$MV_BIN" --version | grep -A1 "^  BLAS:")
grep -q " Prescott " <<<"$blas_line" && ! grep -q "restarted" <<<"$blas_line" \
    || fail "OPENBLAS_CORETYPE=Prescott not kept: $blas_line"
# `maskvim help COMMAND` is COMMAND's help; step and bench take --preset or --config, not both,
# and name an unknown preset as --preset (it was reported as a --set nobody typed).
help=$($MV_BIN help train) || fail "help train exited $?"
head -1 <<<"$help" | grep -q "maskvim train" || fail "help train: $(head -2 <<<"$help")"
# ... and `help COMMAND SUBCOMMAND` the subcommand's (it printed the top-level usage).
$MV_BIN help data synth | head -1 | grep -q "^usage: maskvim data synth" || fail "help data synth: $($MV_BIN help data synth | head -1)"
$MV_BIN help experiment run | head -1 | grep -q "^usage: maskvim experiment run" || fail "help experiment run"
rc=0; $MV_BIN help nosuch >"$TMP/help.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "unknown command 'nosuch'" "$TMP/help.log" || fail "help nosuch: exit $rc: $(head -2 "$TMP/help.log")"
for cmd in step bench; do
    extra=(--init-out w.h5); [ $cmd = bench ] && extra=(--iters 1)
    rc=0; $MV_BIN $cmd --preset maskvim-nano --config x.yaml "${extra[@]}" >"$TMP/both.log" 2>&1 || rc=$?
    [ "$rc" = 2 ] && grep -q "not both" "$TMP/both.log" || fail "$cmd --preset and --config: exit $rc: $(cat "$TMP/both.log")"
    rc=0; $MV_BIN $cmd --preset maskvim-x "${extra[@]}" >"$TMP/preset.log" 2>&1 || rc=$?
    [ "$rc" = 2 ] && grep -q "^maskvim $cmd: --preset maskvim-x: unknown model preset" "$TMP/preset.log" ||
        fail "$cmd --preset maskvim-x: exit $rc: $(cat "$TMP/preset.log")"
done
# A model too large for memory is an error naming the parameters, not an abort ("internal
# error"), under a memory limit (without one, vm.overcommit_memory=1 would let it allocate).
source "$MV_SRC/tests/scripts/memory_limit.sh"
rc=0
with_memory_limit $MV_BIN bench --batch 1 --size 32x32 \
    --set model.dims=8192,8192,8192,8192 --set model.depths=64,64,64,64 --set model.ssm_ratio=8 >"$TMP/big.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "^maskvim bench: out of memory for the [0-9]* parameters of this model and their gradients" \
    "$TMP/big.log" || fail "a model too large for memory: exit $rc: $(cat "$TMP/big.log")"
echo "PASS: test_launch_cli_args"
