#!/usr/bin/env bash
# The CPU speed figures of docs/performance.md, measured side by side in one run:
#   1. the training step of maskvim-nano, batch 2, 128x256: maskvim vs the PyTorch reference
#   2. the training step of maskvim-t, batch 2, 128x256: maskvim vs the PyTorch reference, and
#      maskvim alone at batch 1, 256x512 (per op, share of the sgemm peak): the reference cannot
#      train there (PyTorch's BatchNorm refuses batch 1). Batch 2 at 256x512 (the table's last
#      row) is left out for time, about 2 minutes a step for the reference: the same `run` line
#      with --batch 2 --size 256x512 measures it.
#   3. the selective scan, forward + backward: maskvim's SS2D core vs the reference's scan
# Usage: scripts/bench_cpu.sh [OUT_DIR]   (build first: cmake --build build)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results}
mkdir -p "$out"
bin=./build/maskvim
py=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
threads=$OMP_NUM_THREADS
echo "== $(date -u +%FT%TZ)  $(nproc) cores, OMP_NUM_THREADS=$threads, load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/summary.txt"

run() {   # name, maskvim args, torch args
    "$bin" bench "${@:2:$(($# - 2))}" --json "$out/$1.maskvim.json" | tee "$out/$1.maskvim.txt"
    "$py" tests/reference/bench_torch.py ${!#} --threads "$threads" | tail -1 >"$out/$1.torch.json"
    "$py" - "$out/$1.maskvim.json" "$out/$1.torch.json" "$1" <<'PY' | tee -a "$out/summary.txt"
import json, sys
c, t = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(f"{sys.argv[3]}: maskvim {c['ms_per_step']:.1f} ms/step ({c['peak_fraction']*100:.0f}% of sgemm peak "
      f"{c['sgemm_peak_gflops']:.0f} GFLOP/s), PyTorch reference {t['ms_per_step']:.1f} ms/step: "
      f"{t['ms_per_step'] / c['ms_per_step']:.2f}x")
PY
}
run nano_b2_128x256 --preset maskvim-nano --batch 2 --size 128x256 --iters 5 \
    "--preset maskvim-nano --batch 2 --size 128x256 --iters 3"
run t_b2_128x256 --preset maskvim-t --batch 2 --size 128x256 --iters 2 \
    "--preset maskvim-t --batch 2 --size 128x256 --iters 1"
"$bin" bench --preset maskvim-t --batch 1 --size 256x512 --iters 2 --json "$out/t_b1_256x512.maskvim.json" \
    | tee "$out/t_b1_256x512.maskvim.txt" | tail -3 | tee -a "$out/summary.txt"
"$bin" bench --scan 2,64,32,32,16 --iters 3 >"$out/scan.maskvim.json"
"$py" tests/reference/bench_torch.py --scan-only --B 2 --E 64 --L 1024 --N 16 --iters 2 --threads "$threads" | tail -1 >"$out/scan.torch.json"
"$py" - "$out/scan.maskvim.json" "$out/scan.torch.json" <<'PY' | tee -a "$out/summary.txt"
import json, sys
c, t = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(f"selective scan B=2 E=64 L=1024 N=16 (4 directions), forward+backward: maskvim {c['ms_per_step']:.1f} ms "
      f"(with the projections), PyTorch reference {t['ms_per_step']:.1f} ms: {t['ms_per_step'] / c['ms_per_step']:.0f}x")
PY
