#!/usr/bin/env bash
# Every shipped experiment file (the CPU twins in experiments/cpu and the paper-scale files in
# experiments/paper) parses, every row resolves, and --dry-run lists the expected number of
# rows from a folder without any dataset, writing nothing. A file with `seeds:` lists one run per
# (row, seed): table6_components has 6 rows x 2 seeds.
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

rm -rf "$TMP"
echo "$passed passed, 0 failed"
