#!/usr/bin/env bash
# Installs the Debian packages maskvim builds and tests with (needs root or sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libopenblas-openmp-dev libhdf5-dev libyaml-dev libpng-dev libjpeg-dev
      libopenmpi-dev openmpi-bin libcriterion-dev
      python3 python3-torch python3-h5py python3-numpy iproute2)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "install-deps: all packages present"; exit 0; fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
