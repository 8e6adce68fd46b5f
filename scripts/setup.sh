#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root, or with sudo) to build and test
# Caldera Service, then configures and builds it. Idempotent: run it again at any time.
#
#   scripts/setup.sh [extra cmake args...]
#
# Environment:
#   CALDERA_BUILD_DIR   build directory (default: build)
#   CALDERA_BUILD_TYPE  Release (default), Debug, RelWithDebInfo
#   CALDERA_CUDA        ON/OFF; default ON when nvcc is found, else OFF
#   CALDERA_SANITIZE    ON to build with AddressSanitizer + UBSan (default OFF)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
BUILD_DIR=${CALDERA_BUILD_DIR:-build}
BUILD_TYPE=${CALDERA_BUILD_TYPE:-Release}

log() { printf '[setup] %s\n' "$*"; }

# --- 1. Debian packages ------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "setup.sh: run as root (or install sudo) to install Debian packages" >&2; exit 1
  fi
fi
mapfile -t PACKAGES < <(cat scripts/debian-packages.txt scripts/debian-test-packages.txt \
  | grep -v -e '^#' -e '^[[:space:]]*$')
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "all ${#PACKAGES[@]} Debian packages present"
fi

# --- 2. Python tools for tests (S3 server, numpy cross-checks) ---------------
VENV="$ROOT/.venv"
PY_REQS="$ROOT/scripts/python-test-requirements.txt"
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$PY_REQS" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating Python test environment in .venv"
  # Prefer Debian's interpreter so the venv works on a fresh machine.
  PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$PY_REQS"
  echo "$want" > "$stamp"
fi
# gRPC stubs of the Python client (client/python/caldera_client/_proto, not in git).
"$VENV/bin/python" "$ROOT/client/python/generate_stubs.py"

# --- 3. Configure and build --------------------------------------------------
CUDA=${CALDERA_CUDA:-}
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$CUDA" ]; then
  if [ -n "$NVCC" ]; then CUDA=ON; else CUDA=OFF; fi
fi
cuda_args=(-DCALDERA_CUDA="$CUDA")
if [ "$CUDA" = "ON" ] && [ -n "$NVCC" ]; then cuda_args+=(-DCMAKE_CUDA_COMPILER="$NVCC"); fi
# Compiler cache (scripts/ccache-env.sh): a rebuild, or a fresh clone in
# another folder on the same machine (CI), compiles only what changed.
# shellcheck source=scripts/ccache-env.sh
. "$ROOT/scripts/ccache-env.sh"
log "configuring $BUILD_DIR ($BUILD_TYPE, CUDA=$CUDA, SANITIZE=${CALDERA_SANITIZE:-OFF})"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
  -DCALDERA_SANITIZE="${CALDERA_SANITIZE:-OFF}" \
  "${cuda_args[@]}" "${CALDERA_CCACHE_ARGS[@]}" "$@" >/dev/null
log "building"
cmake --build "$BUILD_DIR" -j "$(nproc)"
log "done: binaries in $BUILD_DIR/bin"
