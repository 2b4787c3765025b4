#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds, and trains + evaluates
# MaskViM (maskvim-nano) on the built-in synthetic domains on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
exec ./build/maskvim train experiments/quickstart.yaml "$@"
