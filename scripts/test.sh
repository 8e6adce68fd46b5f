#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test. This is the command CI runs.
#
#   scripts/test.sh [ctest args...]
#
# Stages, each timed (a summary of their durations is printed at the end):
#   setup      scripts/setup.sh: Debian packages, .venv, configure, build
#   tests      every test of the main build (ctest -j, label unit and integration)
#   sanitize   the unit tests again under AddressSanitizer + UBSan (CI, or CALDERA_SANITIZE_TESTS=1)
#   fuzz       each libFuzzer target for CALDERA_FUZZ_SECONDS (CI, or CALDERA_FUZZ_TESTS=1)
# Every build goes through ccache when it is installed (scripts/ccache-env.sh), so
# a rebuild, or CI's fresh clone on a machine that built before, compiles only
# what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${CALDERA_BUILD_DIR:-build}
export CALDERA_FIXTURES_DIR=${CALDERA_FIXTURES_DIR:-$(pwd)/models}

stage_names=()
stage_seconds=()
stage_started=0
stage_begin() {
  stage_started=$(date +%s)
  echo "[test] ==== stage $1: $2"
  stage_names+=("$1")
}
stage_end() {
  local took=$(($(date +%s) - stage_started))
  stage_seconds+=("$took")
  echo "[test] ==== stage ${stage_names[-1]} took ${took} s"
}
summary() {
  local total=0 i
  echo "[test] stage durations:"
  for i in "${!stage_seconds[@]}"; do
    printf '[test]   %-9s %5d s\n' "${stage_names[$i]}" "${stage_seconds[$i]}"
    total=$((total + stage_seconds[$i]))
  done
  printf '[test]   %-9s %5d s (%d min)\n' total "$total" $((total / 60))
}
trap summary EXIT

# The main build: setup.sh configures with -DCALDERA_CUDA=ON whenever nvcc is
# found (CI has nvcc but no GPU), so the CUDA backend compiles on every run.
# Its kernel bodies run on the host in backend_test (label unit, built with
# or without CUDA); the device tests (label gpu) skip with "skipped: no CUDA
# device" where none is visible. On a GPU machine: scripts/gpu-check.sh.
stage_begin setup "scripts/setup.sh (packages, .venv, build)"
scripts/setup.sh
if grep -q '^CALDERA_CUDA:BOOL=ON' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
  echo "[test] CUDA backend built (CALDERA_CUDA=ON); device tests skip without a GPU"
else
  echo "[test] CUDA backend not built (no nvcc); the host-side kernel-body tests still run"
fi
stage_end
# shellcheck source=scripts/ccache-env.sh
. scripts/ccache-env.sh

# Tests run in parallel (ctest -j): one BLAS thread each avoids oversubscribing
# the cores, which makes OpenBLAS's spinning threads crawl.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
stage_begin tests "the test suite (fixtures: $CALDERA_FIXTURES_DIR)"
ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j "$(nproc)" "$@"
stage_end

# The unit tests again under AddressSanitizer + UBSan (optimised, with debug
# info). On by default in CI; CALDERA_SANITIZE_TESTS=1/0 forces it on/off.
if [ "${CALDERA_SANITIZE_TESTS:-${CI:-0}}" != "0" ] && [ "${CALDERA_SANITIZE_TESTS:-}" != "0" ]; then
  ASAN_DIR=${CALDERA_ASAN_BUILD_DIR:-build-asan}
  stage_begin sanitize "the unit tests with AddressSanitizer + UBSan in $ASAN_DIR"
  cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCALDERA_SANITIZE=ON \
    -DCALDERA_CUDA=OFF -DCALDERA_BUILD_BENCH=OFF "${CALDERA_CCACHE_ARGS[@]}" >/dev/null
  cmake --build "$ASAN_DIR" --target unit_tests -j "$(nproc)"
  echo "[test] running the unit tests under AddressSanitizer + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0" \
    ctest --test-dir "$ASAN_DIR" -L unit --output-on-failure --no-tests=error -j "$(nproc)"
  stage_end
fi

# Every libFuzzer target (tests/fuzz, clang) for CALDERA_FUZZ_SECONDS (default
# 30) each, from the checked-in corpus, as many at once as there are cores. On
# by default in CI; CALDERA_FUZZ_TESTS=1/0 forces it on/off. A crash fails the
# run and leaves its reproducer under build-fuzz/crashes/.
if [ "${CALDERA_FUZZ_TESTS:-${CI:-0}}" != "0" ] && [ "${CALDERA_FUZZ_TESTS:-}" != "0" ]; then
  stage_begin fuzz "each target for ${CALDERA_FUZZ_SECONDS:-30} s (clang, libFuzzer)"
  CALDERA_FUZZ_JOBS=${CALDERA_FUZZ_JOBS:-$(nproc)} scripts/fuzz.sh "${CALDERA_FUZZ_SECONDS:-30}"
  stage_end
fi
