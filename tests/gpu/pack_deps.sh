#!/usr/bin/env bash
# Downloads (does not install) the Debian 12 packages that the whole project needs to build and
# run beyond a compiler, CMake and the CUDA toolkit, for a GPU machine that lacks them and cannot
# reach a package registry: libyaml, HDF5, OpenBLAS (OpenMP build), libpng, libjpeg, zlib,
# pkg-config, and the shared libraries those load (HDF5 pulls in libcurl and its TLS stack).
# MPI is left out: the CLI builds without it (one rank per process).
#
#   tests/gpu/pack_deps.sh [DIR]        # default DIR: <repo>/.deps (git-ignored)
#
# device_checks.sh uses DIR when CMake cannot configure the project with the machine's own
# libraries: it unpacks the packages into its build folder (never into /), points CMake and
# pkg-config there, and puts on the library path only the libraries the machine lacks.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${1:-$SRC/.deps}

DEV="libyaml-dev libhdf5-dev libopenblas-openmp-dev libopenblas-dev libpng-dev libjpeg62-turbo-dev
     zlib1g-dev pkgconf pkgconf-bin libpkgconf3"
RUNTIME="libyaml-0-2 libhdf5-103-1 libaec0 libsz2 libopenblas0-openmp libgfortran5 libquadmath0
     libpng16-16 libjpeg62-turbo zlib1g libcurl4 libbrotli1 libnghttp2-14 libidn2-0 libunistring2
     librtmp1 libgnutls30 libhogweed6 libnettle8 libgmp10 libp11-kit0 libffi8 libtasn1-6 libssh2-1
     libpsl5 libssl3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2
     libkeyutils1 libldap-2.5-0 libsasl2-2 libzstd1"

command -v apt-get >/dev/null || { echo "pack_deps.sh: needs apt-get (a Debian 12 machine)" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
rm -f ./*.deb
# shellcheck disable=SC2086
apt-get download $DEV $RUNTIME 2>&1 | grep -v '^Get:' || true
n=$(ls ./*.deb 2>/dev/null | wc -l)
want=$(echo $DEV $RUNTIME | wc -w)
[ "$n" -eq "$want" ] || { echo "pack_deps.sh: got $n of $want packages in $DIR" >&2; exit 1; }
echo "pack_deps.sh: $n packages, $(du -sh . | cut -f1), in $DIR"
