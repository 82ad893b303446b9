#!/usr/bin/env bash
# Installs every Debian package prunelab needs to build, test and run.
# Idempotent: packages already present are skipped; safe to run on a new lab machine.
# Usage: cluster/install-deps.sh            (as root, or with sudo available)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-pthread
  librocksdb-dev
  libzmq3-dev cppzmq-dev
  capnproto libcapnp-dev
  libboost-dev
  libgtest-dev libgmock-dev
  libyaml-cpp-dev nlohmann-json3-dev
  libcli11-dev libfmt-dev libspdlog-dev libsodium-dev
  zlib1g-dev
  dataset-fashion-mnist libstb-dev
  libsentencepiece-dev fortunes
  python3-torch python3-torchvision python3-onnx
  libopencv-dnn-dev
  clang-14 libclang-rt-14-dev
  python3-distributed
  chromium
  slurmctld slurmd slurm-client munge
  prometheus
  iproute2 iptables libnetfilter-queue-dev python3-yaml curl systemd
  gdb
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: not root and no sudo; install these packages by hand: ${PACKAGES[*]}" >&2
    exit 1
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
else
  echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch must use OpenBLAS, not the reference BLAS (about 50x slower for Linear layers).
if command -v update-alternatives >/dev/null 2>&1; then
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    cand=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-pthread | head -1 || true)
    if [ -n "$cand" ]; then $SUDO update-alternatives --set "$alt" "$cand" >/dev/null; fi
  done
fi
echo "install-deps: done"
