#!/usr/bin/env bash
# `maskvim report --out DIR` replaces its four files together or not at all: a write that fails
# half-way (here the file size limit, as a full disk, reached at report.html) leaves the previous
# report whole, with no new report.md or report.csv beside the old report.html and report.json,
# and no temporaries.
set -euo pipefail
: "${MV_BIN:?}" "${MV_TEST_TMP:=/tmp}"
TMP="$MV_TEST_TMP/report_atomic"; rm -rf "$TMP"; mkdir -p "$TMP/runs/r1" "$TMP/runs/r2"
fail() { echo "FAIL: $*"; exit 1; }
status() { echo "{\"row\": \"$1\", \"state\": \"finished\", \"iter\": 4, \"final\": {\"clear\": $2, \"fog\": $3}}" >"$TMP/runs/$1/status.json"; }
status r1 10.5 5.25
status r2 12.5 6.25
"$MV_BIN" report "$TMP/runs" --out "$TMP/out" >"$TMP/r1.log" 2>&1 || fail "report: $(cat "$TMP/r1.log")"
for f in md csv html json; do cp "$TMP/out/report.$f" "$TMP/before.$f"; done
md=$(stat -c %s "$TMP/out/report.md"); csv=$(stat -c %s "$TMP/out/report.csv"); html=$(stat -c %s "$TMP/out/report.html")
limit=$(( (md > csv ? md : csv) / 1024 + 1 ))   # KiB: report.md and report.csv fit, report.html must not
[ "$html" -gt $((limit * 1024)) ] || fail "report.html ($html bytes) fits in the $limit KiB report.md ($md) needs"
status r1 33.5 22.25   # another report
# under that file size limit (1 KiB blocks; SIGXFSZ ignored so that the write fails with EFBIG,
# as on a full disk) the report fails at report.html
if (trap '' XFSZ; ulimit -f "$limit"; exec "$MV_BIN" report "$TMP/runs" --out "$TMP/out") >"$TMP/r2.log" 2>&1; then
    fail "the report succeeded under a $limit KiB file size limit"
fi
for f in md csv html json; do
    cmp -s "$TMP/out/report.$f" "$TMP/before.$f" || fail "report.$f replaced by a report that failed half-way"
done
grep -q "no report file was replaced" "$TMP/r2.log" || fail "message: $(cat "$TMP/r2.log")"
ls "$TMP/out" | grep -q tmp && fail "temporaries left: $(ls "$TMP/out")"
# and a folder in the way of one of them is refused before anything is written
rm "$TMP/out/report.json"; mkdir "$TMP/out/report.json"
"$MV_BIN" report "$TMP/runs" --out "$TMP/out" >"$TMP/r3.log" 2>&1 && fail "a folder report.json was accepted"
cmp -s "$TMP/out/report.md" "$TMP/before.md" || fail "report.md replaced though report.json cannot be"
rmdir "$TMP/out/report.json"
"$MV_BIN" report "$TMP/runs" --out "$TMP/out" >"$TMP/r4.log" 2>&1 || fail "report: $(cat "$TMP/r4.log")"
grep -q "33.50" "$TMP/out/report.md" || fail "the new report not written"
echo "report atomic OK"
