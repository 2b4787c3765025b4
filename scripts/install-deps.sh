#!/usr/bin/env bash
# Installs the Debian packages maskvim builds and tests with (needs root or sudo). Packages
# already installed are left alone, so running it again is quick and changes nothing.
# chromium renders `maskvim report` pages headlessly in tests/scripts/test_report_cli.sh (the
# screenshot check); it is optional: when it cannot be installed the check is skipped.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libopenblas-openmp-dev libhdf5-dev libyaml-dev libpng-dev libjpeg-dev
      libopenmpi-dev openmpi-bin libcriterion-dev
      python3 python3-torch python3-h5py python3-numpy iproute2)
optional=(chromium)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
missing_opt=()
for p in "${optional[@]}"; do installed "$p" || missing_opt+=("$p"); done
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_opt[@]} -eq 0 ]; then echo "install-deps: all packages present"; exit 0; fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ${#missing_opt[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing_opt[*]} (optional)"
    $SUDO apt-get install -y -q --no-install-recommends "${missing_opt[@]}" ||
        echo "install-deps: warning: could not install ${missing_opt[*]}; the report screenshot check will be skipped"
fi
