#!/usr/bin/env bash
# The PyTorch reference checks itself (tests/reference/maskvim_ref.py selftest): parameter
# counts, scan gradients against finite differences, a whole-model finite-difference check,
# the step/make-batch command line with compare_dump, and the per-op fixture generator.
set -euo pipefail
PY=${MV_PYTHON:-/usr/bin/python3}
SRC=${MV_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
TMP=${MV_TEST_TMP:-/tmp}/reference_selftest
mkdir -p "$TMP"
"$PY" "$SRC/tests/reference/maskvim_ref.py" selftest --tmp "$TMP"
echo "test_reference_selftest: passed"
